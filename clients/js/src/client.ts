import { io, type Socket } from "socket.io-client";

import { Emitter } from "./emitter.js";
import { TidingsError } from "./errors.js";
import { Feed } from "./feed.js";
import { Rest } from "./rest.js";
import { MemoryStorage, type TidingsStorage } from "./storage.js";
import { ReactionWatch, type WatchAck } from "./reactions.js";
import { Subscription, type SubscribeAck } from "./subscription.js";
import { TokenClock } from "./token.js";
import type {
  Activity,
  ClientEvents,
  ConnectionState,
  FeedUpdate,
  NewActivity,
  PresenceEvent,
  PresencePage,
  Reaction,
  ReactionEvent,
  ReactionEventType,
  Recovered,
  SubscribeOptions,
  TidingsOptions,
} from "./types.js";

type Ack = { ok: boolean; error?: unknown; [key: string]: unknown };

/** `timer.unref()` where there is one (Node), so a forgotten client does not hold a process. */
function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

/**
 * A Tidings client: REST through `fetch`, live feeds through one Socket.IO connection, opened on
 * the first subscribe (or presence / publish).
 */
export class Tidings extends Emitter<ClientEvents> {
  readonly rest: Rest;
  private readonly options: TidingsOptions;
  private readonly storage: TidingsStorage;
  private readonly prefix: string;
  private token: string | undefined;
  private tokenPending: Promise<string> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private socket: Socket | undefined;
  private readonly subscriptions = new Set<Subscription>();
  private readonly watches = new Set<ReactionWatch>();
  private waiters: Array<() => void> = [];
  private disconnectedAt: number | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryDelay = 0;
  private current: ConnectionState = "idle";
  private closed = false;
  private refusal: TidingsError | undefined; // the server refused to connect, for good
  private readonly clock: TokenClock;

  constructor(options: TidingsOptions) {
    super();
    if (!options.url || !options.apiKey) throw new Error("Tidings needs url and apiKey");
    if (!options.token && !options.getToken) throw new Error("Tidings needs token or getToken");
    this.options = options;
    this.clock = new TokenClock(options.now ?? Date.now);
    this.token = options.token;
    this.storage = options.storage ?? new MemoryStorage();
    this.prefix = options.storagePrefix ?? "tidings:";
    const base = options.url.replace(/\/+$/, "");
    const fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.rest = new Rest(base, options.apiKey, (fresh) => this.tokenFor(fresh), fetcher, (ms) => this.clock.serverTime(ms));
    if (this.token) this.schedule(this.token);
  }

  /** The connection's state: idle (no socket yet), connecting, connected, disconnected, closed. */
  get state(): ConnectionState {
    return this.current;
  }

  feed(id: string): Feed {
    return new Feed(id, this);
  }

  /** Members of a presence feed's room (a raid room), a page at a time. */
  async presence(feed: string, options: { limit?: number; cursor?: string | null } = {}): Promise<PresencePage> {
    const payload: Record<string, unknown> = { feed };
    if (options.limit !== undefined) payload.limit = options.limit;
    if (options.cursor) payload.cursor = options.cursor;
    const ack = await this.call("presence", payload);
    return ack as unknown as PresencePage;
  }

  /** Add an activity over the socket (the low-latency path); resolves once it is stored. */
  async publish(feed: string, activity: NewActivity): Promise<Activity> {
    const ack = await this.call("publish", { feed, activity });
    return ack.activity as Activity;
  }

  async subscribe(
    feed: string,
    onActivity: (activity: Activity) => void,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.closed) throw new Error("this Tidings client is closed");
    const subscription = new Subscription(feed, onActivity, options, {
      subscribe: (name, since, presence) => this.subscribeAck(name, since, presence),
      unsubscribe: (sub) => this.drop(sub),
      read: (name, query) => this.feed(name).get(query),
      loadLast: async (name) => (await this.storage.getItem(this.prefix + name)) ?? undefined,
      saveLast: (name, id) => {
        void Promise.resolve(this.storage.setItem(this.prefix + name, id)).catch((e: unknown) => this.emit("error", e));
      },
      recovered: (report) => this.emit("recovered", report),
    });
    this.subscriptions.add(subscription);
    this.open();
    try {
      await subscription.start();
    } catch (error) {
      this.subscriptions.delete(subscription);
      throw error;
    }
    return subscription;
  }

  /**
   * Hear an activity's reactions live: `handler` once per change, also for the changes made
   * while the socket was away (the watch is sent again with `since` after every reconnect and
   * resync). Resolves after the first ack; `watch.unwatch()` stops it.
   */
  async watchReactions(activityId: string, handler: (event: ReactionEvent) => void, options: { since?: string } = {}): Promise<ReactionWatch> {
    if (this.closed) throw new Error("this Tidings client is closed");
    const watch = new ReactionWatch(activityId, handler, {
      watch: async (id, since) => (await this.call("reaction.watch", since === undefined ? { activity_id: id } : { activity_id: id, since })) as WatchAck,
      unwatch: async (w) => {
        this.watches.delete(w);
        if ([...this.watches].some((other) => other.activityId === w.activityId)) return;
        if (this.socket?.connected) await this.call("reaction.unwatch", { activity_id: w.activityId }).catch(() => undefined);
      },
      failed: (error) => this.emit("error", error),
    }, options.since);
    this.watches.add(watch);
    try {
      await watch.start();
    } catch (error) {
      this.watches.delete(watch);
      throw error;
    }
    return watch;
  }

  /** Close the socket and every subscription; the client cannot be used again. */
  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.retryTimer);
    for (const subscription of this.subscriptions) void subscription.unsubscribe();
    this.subscriptions.clear();
    this.watches.clear();
    this.socket?.disconnect();
    this.setState("closed");
    for (const wake of this.waiters.splice(0)) wake();
  }

  // ------------------------------------------------------------------------------ tokens

  /** The current token; a new one from getToken when asked `fresh`, when there is none, or
   * when it expires within a second (TokenClock). */
  private async tokenFor(fresh: boolean): Promise<string> {
    const stale = this.token !== undefined && this.clock.stale();
    if (this.token && !fresh && !(stale && this.options.getToken)) return this.token;
    const getToken = this.options.getToken;
    if (!getToken) {
      if (this.token) return this.token;
      throw new Error("no token, and no getToken to ask for one");
    }
    this.tokenPending ??= (async () => {
      try {
        const token = await getToken();
        this.token = token;
        this.schedule(token);
        this.emit("token", token);
        return token;
      } finally {
        this.tokenPending = undefined;
      }
    })();
    return this.tokenPending;
  }

  private schedule(token: string): void {
    clearTimeout(this.refreshTimer);
    this.clock.arrive(token);
    const delay = this.clock.refreshDelay();
    if (delay === undefined || !this.options.getToken || this.closed) return;
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
    unref(this.refreshTimer);
  }

  /** A new token from getToken, handed to the connected socket (`token.refresh`). */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    try {
      const token = await this.tokenFor(true);
      const socket = this.socket;
      if (!socket?.connected) return; // the next connect sends it
      const ack = (await socket.timeout(this.ackTimeout).emitWithAck("token.refresh", { token })) as Ack;
      if (!ack.ok) throw TidingsError.from(ack.error);
      const dropped = Array.isArray(ack.dropped) ? (ack.dropped as string[]) : [];
      for (const subscription of this.subscriptions) {
        if (dropped.includes(subscription.feed)) {
          this.subscriptions.delete(subscription);
          void subscription.unsubscribe();
          this.emit("error", new TidingsError(`the new token may not read ${subscription.feed}: unsubscribed`, { code: 17, exception: "NotAllowedException" }));
        }
      }
    } catch (error) {
      this.emit("error", error);
    }
  }

  // ------------------------------------------------------------------------------ socket

  private get ackTimeout(): number {
    return this.options.ackTimeout ?? 10_000;
  }

  private setState(state: ConnectionState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit("state", state);
  }

  private open(): Socket {
    if (this.socket) return this.socket;
    const socket = io(this.options.url, {
      auth: (cb: (data: object) => void) => {
        this.tokenFor(false).then(
          (token) => cb({ token }),
          (error: unknown) => {
            this.emit("error", error);
            cb({ token: "" });
          },
        );
      },
      transports: this.options.transports,
      reconnectionDelay: this.options.reconnectionDelay ?? 500,
      reconnectionDelayMax: this.options.reconnectionDelayMax ?? 5000,
      autoConnect: false,
    });
    this.socket = socket;
    socket.on("connect", () => this.connected());
    socket.on("disconnect", (reason) => this.lost(reason));
    socket.on("connect_error", (error) => this.refused(error));
    socket.on("feed.update", (update: FeedUpdate) => {
      for (const subscription of this.subscriptions) {
        if (subscription.feed === update?.feed) subscription.live(update);
      }
    });
    socket.on("resync", (data: { reason?: string }) => {
      this.emit("resync", data ?? {});
      for (const subscription of this.subscriptions) subscription.recover("resync");
      for (const watch of this.watches) watch.recover();
    });
    for (const type of ["reaction.added", "reaction.updated", "reaction.deleted"] as const) {
      socket.on(type, (data: { activity_id?: string; reaction: Reaction; reaction_counts?: Record<string, number> }) => {
        for (const watch of this.watches) if (watch.activityId === data?.activity_id) watch.live(type as ReactionEventType, data);
      });
    }
    socket.on("token.expired", () => void this.refresh());
    socket.on("presence.join", (data: Omit<PresenceEvent, "type">) => this.emit("presence", { ...data, type: "join" }));
    socket.on("presence.leave", (data: Omit<PresenceEvent, "type">) => this.emit("presence", { ...data, type: "leave" }));
    this.setState("connecting");
    socket.connect();
    return socket;
  }

  private connected(): void {
    this.retryDelay = 0;
    this.refusal = undefined;
    this.setState("connected");
    const since = this.disconnectedAt;
    this.disconnectedAt = undefined;
    // every subscription, the ones still starting too (theirs queues behind the start)
    for (const subscription of this.subscriptions) subscription.recover("connect", since);
    if (since !== undefined) for (const watch of this.watches) watch.recover();
    for (const wake of this.waiters.splice(0)) wake();
  }

  private lost(reason: string): void {
    this.disconnectedAt ??= Date.now();
    for (const subscription of this.subscriptions) subscription.disconnected();
    if (this.closed) return;
    this.setState("disconnected");
    // The server closed this socket itself (its token expired unrefreshed, say): socket.io does
    // not reconnect then, so this client does, with a fresh token when it can get one.
    if (reason === "io server disconnect") this.reconnectLater(Boolean(this.options.getToken));
  }

  private refused(error: Error & { data?: unknown }): void {
    this.disconnectedAt ??= Date.now();
    if (this.closed) return;
    this.setState("disconnected");
    const socket = this.socket;
    if (socket && !socket.active) {
      // refused by the server (not a network failure, which socket.io retries by itself)
      const refusal = TidingsError.from(error.data ?? { detail: error.message });
      if (refusal.isTokenError && this.options.getToken) {
        this.token = undefined; // ask getToken on the next connect
        this.reconnectLater(false);
      } else {
        // nothing this client can do: what waits for the connection fails with the reason
        this.refusal = refusal;
        this.emit("error", refusal);
        for (const wake of this.waiters.splice(0)) wake();
      }
    }
  }

  private reconnectLater(freshToken: boolean): void {
    clearTimeout(this.retryTimer);
    this.retryDelay = Math.min(Math.max(this.retryDelay * 2, 250), this.options.reconnectionDelayMax ?? 5000);
    this.retryTimer = setTimeout(() => {
      if (this.closed) return;
      if (freshToken) this.token = undefined;
      this.setState("connecting");
      this.socket?.connect();
    }, this.retryDelay);
    unref(this.retryTimer);
  }

  private async whenConnected(): Promise<Socket> {
    for (;;) {
      if (this.closed) throw new Error("this Tidings client is closed");
      const socket = this.open();
      if (socket.connected) return socket;
      if (this.refusal && !socket.active) throw this.refusal;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** An event with an ack; `{ok: false}` acks become TidingsErrors. */
  private async call(event: string, payload: unknown): Promise<Ack> {
    const socket = await this.whenConnected();
    const ack = (await socket.timeout(this.ackTimeout).emitWithAck(event, payload)) as Ack;
    if (!ack?.ok) throw TidingsError.from(ack?.error);
    return ack;
  }

  /** `subscribe` until an ack comes: a socket that drops meanwhile is waited for again. */
  private async subscribeAck(feed: string, since: string | undefined, presence: unknown): Promise<SubscribeAck> {
    const payload: Record<string, unknown> = { feed };
    if (since !== undefined) payload.since = since;
    if (presence !== undefined) payload.presence = presence;
    for (;;) {
      const socket = await this.whenConnected();
      try {
        return (await socket.timeout(this.ackTimeout).emitWithAck("subscribe", payload)) as SubscribeAck;
      } catch (error) {
        if (this.closed || error instanceof TidingsError) throw error;
        if (socket.connected) await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  private async drop(subscription: Subscription): Promise<void> {
    this.subscriptions.delete(subscription);
    const others = [...this.subscriptions].some((s) => s.feed === subscription.feed);
    const socket = this.socket;
    if (others || !socket?.connected || this.closed) return;
    try {
      await socket.timeout(this.ackTimeout).emitWithAck("unsubscribe", { feed: subscription.feed });
    } catch {
      // gone meanwhile: a new connection does not subscribe it again
    }
  }
}

export type { Recovered };
