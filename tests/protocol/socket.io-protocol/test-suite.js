// Socket.IO's protocol test suite (github.com/socketio/socket.io-protocol, test-suite/,
// commit 4f633dd), adapted to Tidings; MIT licence in LICENSE. Every change is marked
// "TIDINGS:"; README.md says what differs from the reference app and why.
const isNodejs = typeof window === "undefined";

if (isNodejs) {
  // make the tests runnable in both the browser and Node.js
  await import("./node-imports.js");
}

const { expect } = chai;

// TIDINGS: the server, a token it accepts, a feed the token may read, and the timers
// (Tidings' heartbeat minimum is 1 s) come from the environment
const URL = process.env.TIDINGS_URL;
const WS_URL = URL.replace("http", "ws");
const TOKEN = process.env.TIDINGS_TOKEN;
const FEED = process.env.TIDINGS_FEED;

const PING_INTERVAL = Number(process.env.TIDINGS_PING_INTERVAL_MS);
const PING_TIMEOUT = Number(process.env.TIDINGS_PING_TIMEOUT_MS);
const CONNECT_TIMEOUT = Number(process.env.TIDINGS_CONNECT_TIMEOUT_MS);
// TIDINGS: waits that race the server's own timers get this much more
const MARGIN = 100;

function sleep(delay) {
  return new Promise((resolve) => setTimeout(resolve, delay));
}

function waitFor(socket, eventType) {
  return new Promise((resolve) => {
    socket.addEventListener(
      eventType,
      (event) => {
        resolve(event);
      },
      { once: true }
    );
  });
}

function waitForPackets(socket, count) {
  const packets = [];

  return new Promise((resolve) => {
    const handler = (event) => {
      if (event.data === "2") {
        // ignore PING packets
        return;
      }
      packets.push(event.data);
      if (packets.length === count) {
        socket.removeEventListener("message", handler);
        resolve(packets);
      }
    };
    socket.addEventListener("message", handler);
  });
}

async function initLongPollingSession() {
  const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`);
  const content = await response.text();
  return JSON.parse(content.substring(1)).sid;
}

// TIDINGS: Tidings connects with a token and sends no "auth" echo after the handshake
async function initSocketIOConnection() {
  const socket = new WebSocket(
    `${WS_URL}/socket.io/?EIO=4&transport=websocket`
  );
  socket.binaryType = "arraybuffer";

  await waitFor(socket, "message"); // Engine.IO handshake

  socket.send(`40${JSON.stringify({ token: TOKEN })}`);

  const { data } = await waitFor(socket, "message"); // Socket.IO handshake
  expect(data).to.startsWith("40");

  return socket;
}

// TIDINGS: the next packet that is not a ping (pings are answered)
function nextPacket(socket) {
  return new Promise((resolve) => {
    const handler = (event) => {
      if (event.data === "2") {
        socket.send("3");
        return;
      }
      socket.removeEventListener("message", handler);
      resolve(event.data);
    };
    socket.addEventListener("message", handler);
  });
}

// TIDINGS: what Tidings answers instead of the reference app's echoes: an event it serves,
// sent with an ack id, is acknowledged; the ack, being the next packet, proves that the
// packets sent before it were parsed whole
async function expectSubscribeAck(socket, ackId) {
  socket.send(`42${ackId}${JSON.stringify(["subscribe", { feed: FEED }])}`);
  const data = await nextPacket(socket);
  expect(data).to.startsWith(`43${ackId}[`);
  const [ack] = JSON.parse(data.substring(2 + String(ackId).length));
  expect(ack).to.include({ ok: true, feed: FEED });
}

// TIDINGS: the close of a socket that answers pings: the server closed it on purpose,
// not for a ping timeout (the suite's "close" tests pass either way otherwise)
function closedByServer(socket) {
  socket.addEventListener("message", (event) => {
    if (event.data === "2") socket.send("3");
  });
  return waitFor(socket, "close");
}

// TIDINGS: an error ack of Tidings: InputException (code 4)
function expectInputError(data, ackId) {
  expect(data).to.startsWith(`43${ackId}[`);
  const [ack] = JSON.parse(data.substring(2 + String(ackId).length));
  expect(ack.ok).to.eql(false);
  expect(ack.error).to.include({ code: 4, exception: "InputException" });
}

describe("Engine.IO protocol", () => {
  describe("handshake", () => {
    describe("HTTP long-polling", () => {
      it("should successfully open a session", async () => {
        const response = await fetch(
          `${URL}/socket.io/?EIO=4&transport=polling`
        );

        expect(response.status).to.eql(200);

        const content = await response.text();

        expect(content).to.startsWith("0");

        const value = JSON.parse(content.substring(1));

        expect(value).to.have.all.keys(
          "sid",
          "upgrades",
          "pingInterval",
          "pingTimeout",
          "maxPayload"
        );
        expect(value.sid).to.be.a("string");
        expect(value.upgrades).to.eql(["websocket"]);
        expect(value.pingInterval).to.eql(PING_INTERVAL);
        expect(value.pingTimeout).to.eql(PING_TIMEOUT);
        expect(value.maxPayload).to.eql(1000000);
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        const response = await fetch(`${URL}/socket.io/?transport=polling`);

        expect(response.status).to.eql(400);

        const response2 = await fetch(
          `${URL}/socket.io/?EIO=abc&transport=polling`
        );

        expect(response2.status).to.eql(400);
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        const response = await fetch(`${URL}/socket.io/?EIO=4`);

        expect(response.status).to.eql(400);

        const response2 = await fetch(`${URL}/socket.io/?EIO=4&transport=abc`);

        expect(response2.status).to.eql(400);
      });

      it("should fail with an invalid request method", async () => {
        const response = await fetch(
          `${URL}/socket.io/?EIO=4&transport=polling`,
          {
            method: "post",
          }
        );

        expect(response.status).to.eql(400);

        const response2 = await fetch(
          `${URL}/socket.io/?EIO=4&transport=polling`,
          {
            method: "put",
          }
        );

        expect(response2.status).to.eql(400);
      });
    });

    describe("WebSocket", () => {
      it("should successfully open a session", async () => {
        const socket = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=websocket`
        );

        const { data } = await waitFor(socket, "message");

        expect(data).to.startsWith("0");

        const value = JSON.parse(data.substring(1));

        expect(value).to.have.all.keys(
          "sid",
          "upgrades",
          "pingInterval",
          "pingTimeout",
          "maxPayload"
        );
        expect(value.sid).to.be.a("string");
        expect(value.upgrades).to.eql([]);
        expect(value.pingInterval).to.eql(PING_INTERVAL);
        expect(value.pingTimeout).to.eql(PING_TIMEOUT);
        expect(value.maxPayload).to.eql(1000000);

        socket.close();
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        const socket = new WebSocket(
          `${WS_URL}/socket.io/?transport=websocket`
        );

        if (isNodejs) {
          socket.on("error", () => {});
        }

        waitFor(socket, "close");

        const socket2 = new WebSocket(
          `${WS_URL}/socket.io/?EIO=abc&transport=websocket`
        );

        if (isNodejs) {
          socket2.on("error", () => {});
        }

        waitFor(socket2, "close");
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4`);

        if (isNodejs) {
          socket.on("error", () => {});
        }

        waitFor(socket, "close");

        const socket2 = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=abc`
        );

        if (isNodejs) {
          socket2.on("error", () => {});
        }

        waitFor(socket2, "close");
      });
    });
  });

  describe("heartbeat", function () {
    this.timeout(4 * (PING_INTERVAL + PING_TIMEOUT)); // TIDINGS: scaled (was 5000)

    describe("HTTP long-polling", () => {
      it("should send ping/pong packets", async () => {
        const sid = await initLongPollingSession();

        for (let i = 0; i < 3; i++) {
          const pollResponse = await fetch(
            `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`
          );

          expect(pollResponse.status).to.eql(200);

          const pollContent = await pollResponse.text();

          expect(pollContent).to.eql("2");

          const pushResponse = await fetch(
            `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`,
            {
              method: "post",
              body: "3",
            }
          );

          expect(pushResponse.status).to.eql(200);
        }
      });

      it("should close the session upon ping timeout", async () => {
        const sid = await initLongPollingSession();

        await sleep(PING_INTERVAL + PING_TIMEOUT + MARGIN); // TIDINGS: + MARGIN

        const pollResponse = await fetch(
          `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`
        );

        expect(pollResponse.status).to.eql(400);
      });
    });

    describe("WebSocket", () => {
      it("should send ping/pong packets", async () => {
        const socket = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=websocket`
        );

        await waitFor(socket, "message"); // handshake

        for (let i = 0; i < 3; i++) {
          const { data } = await waitFor(socket, "message");

          expect(data).to.eql("2");

          socket.send("3");
        }

        socket.close();
      });

      it("should close the session upon ping timeout", async () => {
        const socket = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=websocket`
        );

        await waitFor(socket, "close"); // handshake
      });
    });
  });

  describe("close", () => {
    describe("HTTP long-polling", () => {
      it("should forcefully close the session", async () => {
        const sid = await initLongPollingSession();

        const [pollResponse] = await Promise.all([
          fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`),
          fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
            method: "post",
            body: "1",
          }),
        ]);

        expect(pollResponse.status).to.eql(200);

        const pullContent = await pollResponse.text();

        expect(pullContent).to.eql("6");

        const pollResponse2 = await fetch(
          `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`
        );

        expect(pollResponse2.status).to.eql(400);
      });
    });

    describe("WebSocket", () => {
      it("should forcefully close the session", async () => {
        const socket = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=websocket`
        );

        await waitFor(socket, "message"); // handshake

        socket.send("1");

        await waitFor(socket, "close");
      });
    });
  });

  describe("upgrade", () => {
    it("should successfully upgrade from HTTP long-polling to WebSocket", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`
      );

      await waitFor(socket, "open");

      // send probe
      socket.send("2probe");

      const probeResponse = await waitFor(socket, "message");

      expect(probeResponse.data).to.eql("3probe");

      // complete upgrade
      socket.send("5");
    });

    it("should ignore HTTP requests with same sid after upgrade", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`
      );

      await waitFor(socket, "open");
      socket.send("2probe");
      socket.send("5");

      const pollResponse = await fetch(
        `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`
      );

      expect(pollResponse.status).to.eql(400);
    });

    it("should ignore WebSocket connection with same sid after upgrade", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`
      );

      await waitFor(socket, "open");
      socket.send("2probe");
      socket.send("5");

      const socket2 = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`
      );

      await waitFor(socket2, "close");
    });
  });
});

describe("Socket.IO protocol", () => {
  describe("connect", () => {
    // TIDINGS: the reference app accepts a connect without auth; Tidings refuses it (44 with
    // {message, data: {code, detail, exception}}) and closes the connection
    it("should refuse a connection to the main namespace without a token", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40");

      const { data } = await waitFor(socket, "message");

      expect(data).to.startsWith("44");

      const refusal = JSON.parse(data.substring(2));

      expect(refusal).to.have.all.keys("message", "data");
      expect(refusal.data).to.include({ code: 3, exception: "SignatureException" });

      await closedByServer(socket); // TIDINGS: pings answered
    });

    // TIDINGS: with a payload: a token. The reference app echoes the payload in an "auth"
    // event; Tidings sends nothing after the handshake, and serves the socket's events
    it("should allow connection to the main namespace with a payload", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send(`40${JSON.stringify({ token: TOKEN })}`);

      const { data } = await waitFor(socket, "message");

      expect(data).to.startsWith("40");

      const handshake = JSON.parse(data.substring(2));

      expect(handshake).to.have.all.keys("sid");
      expect(handshake.sid).to.be.a("string");

      await expectSubscribeAck(socket, 1);

      socket.close();
    });

    // TIDINGS: a payload that is not a token Tidings accepts is refused
    it("should refuse a connection to the main namespace with an invalid token", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send('40{"token":"123"}');

      const { data } = await waitFor(socket, "message");

      expect(data).to.startsWith("44{");

      await closedByServer(socket); // TIDINGS: pings answered
    });

    // TIDINGS: Tidings serves the main namespace only: a custom one is refused as node's
    // server refuses one it does not serve (the reference app serves "/custom")
    it("should refuse connection to a custom namespace", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40/custom,");

      const { data } = await waitFor(socket, "message");

      expect(data).to.eql('44/custom,{"message":"Invalid namespace"}');
    });

    it("should refuse connection to a custom namespace with a payload", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send(`40/custom,${JSON.stringify({ token: TOKEN })}`);

      const { data } = await waitFor(socket, "message");

      expect(data).to.eql('44/custom,{"message":"Invalid namespace"}');
    });

    it("should disallow connection to an unknown namespace", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40/random");

      const { data } = await waitFor(socket, "message");

      expect(data).to.eql('44/random,{"message":"Invalid namespace"}');
    });

    it("should disallow connection with an invalid handshake", async () => {
      const socket = new WebSocket(
        `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("4abc");

      await closedByServer(socket); // TIDINGS: pings answered
    });

    // TIDINGS: the client answers pings, so that the connect timeout, not the ping timeout,
    // is what closes the connection
    it("should close the connection if no handshake is received", async function () {
      this.timeout(CONNECT_TIMEOUT + 2000);
      const socket = new WebSocket(
          `${WS_URL}/socket.io/?EIO=4&transport=websocket`
      );
      const opened = Date.now();

      await closedByServer(socket);

      expect(Date.now() - opened).to.be.at.least(CONNECT_TIMEOUT - MARGIN);
    });
  });

  describe("disconnect", () => {
    // TIDINGS: the reference app keeps the Engine.IO session open (its next packet is a
    // ping); Tidings closes the connection, as the official client does itself once it has
    // left its last namespace
    it("should disconnect from the main namespace", async () => {
      const socket = await initSocketIOConnection();

      socket.send("41");

      await closedByServer(socket); // TIDINGS: pings answered
    });

    // TIDINGS: "/custom" is refused (above); the main namespace is unaffected by the custom
    // one's connect and disconnect, and answers the next event (the reference app echoes it)
    it("should connect then disconnect from a custom namespace", async () => {
      const socket = await initSocketIOConnection();

      socket.send("40/custom");

      const data = await nextPacket(socket);
      expect(data).to.eql('44/custom,{"message":"Invalid namespace"}');

      socket.send("41/custom");
      socket.send('42["message","message to main namespace"]');

      await expectSubscribeAck(socket, 2);
    });
  });

  describe("message", () => {
    // TIDINGS: an event Tidings does not serve gets no answer (the reference app echoes it
    // as "message-back"); the next event is answered in order
    it("should send a plain-text packet", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42["message",1,"2",{"3":[true]}]');

      await expectSubscribeAck(socket, 3);
    });

    // TIDINGS: Tidings takes no binary data: both attachments are read and the event
    // dropped; the next text packet is parsed as a packet, not as an attachment
    it("should send a packet with binary attachments", async () => {
      const socket = await initSocketIOConnection();

      socket.send(
        '452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
      );
      socket.send(Uint8Array.from([1, 2, 3]));
      socket.send(Uint8Array.from([4, 5, 6]));

      await expectSubscribeAck(socket, 4);

      socket.close();
    });

    // TIDINGS: an event with an ack id is acknowledged with that id; Tidings' events take
    // one argument, so three are refused with InputException (the reference app echoes them)
    it("should send a plain-text packet with an ack", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42456["subscribe",1,"2",{"3":[false]}]');

      const data = await nextPacket(socket);

      expectInputError(data, 456);
    });

    // TIDINGS: a binary event with an ack id is acknowledged (a text ack: binary data is
    // refused with InputException) once both attachments are read
    it("should send a packet with binary attachments and an ack", async () => {
      const socket = await initSocketIOConnection();

      socket.send(
        '452-789["subscribe",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
      );
      socket.send(Uint8Array.from([1, 2, 3]));
      socket.send(Uint8Array.from([4, 5, 6]));

      const data = await nextPacket(socket);

      expectInputError(data, 789);

      await expectSubscribeAck(socket, 5);

      socket.close();
    });

    it("should close the connection upon invalid format (unknown packet type)", async () => {
      const socket = await initSocketIOConnection();

      socket.send("4abc");

      await closedByServer(socket); // TIDINGS: pings answered
    });

    // TIDINGS: a payload that is not an array is an event Tidings answers with an error
    // ack (InputException), not a reason to close: the socket stays connected
    it("should answer an invalid payload format with an error ack", async () => {
      const socket = await initSocketIOConnection();

      socket.send("42{}");
      socket.send("426{}");

      const data = await nextPacket(socket);

      expectInputError(data, 6);

      await expectSubscribeAck(socket, 7);
    });

    it("should close the connection upon invalid format (invalid ack id)", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42abc["message-with-ack",1,"2",{"3":[false]}]');

      await closedByServer(socket); // TIDINGS: pings answered
    });
  });
});
