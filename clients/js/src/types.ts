import type { TidingsStorage } from "./storage.js";

/** An activity as stored: `id`, `actor`, `verb`, `object`, `time`, `origin` and custom fields. */
export interface Activity {
  id: string;
  actor: string;
  verb: string;
  object: string;
  time?: string;
  foreign_id?: string | null;
  target?: string | null;
  origin?: string | null;
  to?: string[];
  [field: string]: unknown;
}

/** What `addActivity` and `publish` take: the server adds `id` and `origin`. */
export interface NewActivity {
  actor: string;
  verb: string;
  object: string;
  time?: string;
  foreign_id?: string;
  target?: string;
  to?: string[];
  [field: string]: unknown;
}

/** `feed.update`, as the server sends it. */
export interface FeedUpdate {
  feed: string;
  new: Activity[];
  deleted: string[];
  deleted_foreign_ids: Array<[string, string] | string>;
  published_at?: string;
  unseen?: number;
  unread?: number;
}

export type TokenSource = () => string | Promise<string>;

export interface TidingsOptions {
  /** The server, e.g. "https://feeds.example.com" (no path). */
  url: string;
  apiKey: string;
  /** A JWT for this user (a user token, a scoped token; a server token on a backend). */
  token?: string;
  /** Called for a token when there is none, before a token's `exp`, and on `token.expired`. */
  getToken?: TokenSource;
  /** Keeps the last delivered id per feed (default: memory). */
  storage?: TidingsStorage;
  /** Prefix of the storage keys (default "tidings:"). */
  storagePrefix?: string;
  /** socket.io-client transports; React Native: ["websocket"]. */
  transports?: Array<"websocket" | "polling" | "webtransport">;
  /** Reconnection delays of socket.io-client (ms; defaults 500 and 5000). */
  reconnectionDelay?: number;
  reconnectionDelayMax?: number;
  /** Bound of every socket ack wait (ms, default 10000). */
  ackTimeout?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** The device's clock, ms since the epoch (default: Date.now). */
  now?: () => number;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "disconnected" | "closed";

export interface Removed {
  feed: string;
  ids: string[];
  foreignIds: Array<[string, string] | string>;
}

export interface SubscribeOptions {
  /** Start after this activity id (else: the stored last id, else: only what comes next). */
  since?: string;
  /** Activities removed from the feed. */
  onRemoved?: (removed: Removed) => void;
  /** An activity delivered before came again with other content (an update), or the raw
   * update of a notification feed's counts (`unseen`/`unread`). */
  onUpdate?: (activity: Activity | null, update: FeedUpdate) => void;
  onError?: (error: unknown) => void;
  /** For a presence feed (raid rooms): this member's info object (≤ 1 KB of JSON). */
  presence?: { info?: Record<string, unknown> };
}

export interface PresenceMember {
  user_id: string;
  info: Record<string, unknown> | null;
  connections: number;
}

export interface PresencePage {
  feed: string;
  count: number;
  members: PresenceMember[];
  cursor: string | null;
}

export interface PresenceEvent {
  type: "join" | "leave";
  feed: string;
  user_id: string;
  info?: Record<string, unknown> | null;
}

/** Measured by the SDK on each catch-up of a subscription (initial subscribe included). */
export interface Recovered {
  feed: string;
  /** Activities handed to onActivity by this catch-up (missed + paged + buffered live). */
  delivered: number;
  /** Further pages (subscribes with `since`) read because an ack said `more`. */
  pages: number;
  /** From the start of the catch-up (the (re)connect or the resync) to its end, ms. */
  ms: number;
  reason: "subscribe" | "connect" | "resync" | "retry";
}

export interface ClientEvents extends Record<string, unknown> {
  state: ConnectionState;
  error: unknown;
  token: string;
  recovered: Recovered;
  presence: PresenceEvent;
  resync: { reason?: string };
}

/** A reaction as REST answers it (Stream's shape). */
export interface Reaction {
  id: string;
  kind: string;
  activity_id: string;
  user_id: string;
  data: Record<string, unknown>;
  parent: string;
  created_at: string;
  updated_at: string;
  deleted_at?: string;
  [key: string]: unknown;
}

export type ReactionEventType = "reaction.added" | "reaction.updated" | "reaction.deleted";

/** What `watchReactions`' handler gets: one change of the activity's reactions. */
export interface ReactionEvent {
  type: ReactionEventType;
  activity_id: string;
  reaction: Reaction;
  /** The activity's counts read after the change. */
  reaction_counts: Record<string, number>;
}
