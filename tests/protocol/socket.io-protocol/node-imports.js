// TIDINGS: Node's own fetch (Node 18+) instead of node-fetch; the rest as upstream
import { WebSocket } from "ws";
import chai from "chai";
import chaiString from "chai-string";

chai.use(chaiString);

globalThis.WebSocket = WebSocket;
globalThis.chai = chai;
