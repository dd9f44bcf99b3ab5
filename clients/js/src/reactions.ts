/**
 * One activity's reactions, live (`reaction.watch`), with the recovery feeds have: after a
 * reconnect or a `resync` the watch is sent again with `since` (the newest reaction id seen, or
 * the server's `cursor`) and what changed meanwhile is handed over. Each change once: one that
 * came both live and in `missed` is dropped the second time. A hard-deleted reaction missed
 * while away is told only by the counts of the next change handed over.
 */
import type { Reaction, ReactionEvent, ReactionEventType } from "./types.js";

const SEEN = 5000; // reactions whose last state is remembered
const PAGES = 50; // most `since` pages read in one catch-up (`more`)
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7/;

export interface WatchAck {
  ok: boolean;
  missed?: Reaction[];
  more?: boolean;
  cursor?: string;
  reaction_counts?: Record<string, number>;
}

/** What a watch needs from its client. */
export interface WatchLink {
  watch(activityId: string, since: string | undefined): Promise<WatchAck>;
  unwatch(watch: ReactionWatch): Promise<void>;
  failed(error: unknown): void;
}

export class ReactionWatch {
  readonly activityId: string;
  private since: string | undefined;
  private readonly states = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    activityId: string,
    private readonly handler: (event: ReactionEvent) => void,
    private readonly link: WatchLink,
    since?: string,
  ) {
    this.activityId = activityId;
    this.since = since;
  }

  get active(): boolean {
    return !this.closed;
  }

  /** The newest reaction id (or cursor) after which every change reached this watch. */
  get lastId(): string | undefined {
    return this.since;
  }

  start(): Promise<void> {
    return this.enqueue();
  }

  /** Connected again, or told to resync: watch again from `since`. */
  recover(): void {
    if (this.closed) return;
    this.enqueue().catch((error: unknown) => this.link.failed(error));
  }

  async unwatch(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.link.unwatch(this);
  }

  live(type: ReactionEventType, data: { reaction: Reaction; reaction_counts?: Record<string, number> }): void {
    if (!this.closed) this.hand(type, data.reaction, data.reaction_counts ?? {});
  }

  private enqueue(): Promise<void> {
    const run = this.chain.then(() => this.catchUp());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async catchUp(): Promise<void> {
    for (let page = 0; page < PAGES && !this.closed; page++) {
      const since = this.since;
      const ack = await this.link.watch(this.activityId, since);
      const counts = ack.reaction_counts ?? {};
      for (const reaction of ack.missed ?? []) {
        const type = reaction.deleted_at ? "reaction.deleted" : this.states.has(reaction.id) ? "reaction.updated" : "reaction.added";
        this.hand(type, reaction, counts);
      }
      this.advance(ack.cursor);
      if (!ack.more || this.since === since) return;
    }
  }

  private hand(type: ReactionEventType, reaction: Reaction, counts: Record<string, number>): void {
    const state = JSON.stringify([reaction.updated_at, reaction.deleted_at ?? null, type === "reaction.deleted"]);
    if (this.states.get(reaction.id) === state) return; // came both live and in `missed`
    this.states.delete(reaction.id);
    this.states.set(reaction.id, state);
    if (this.states.size > SEEN) this.states.delete(this.states.keys().next().value as string);
    if (type === "reaction.added") this.advance(reaction.id);
    this.handler({ type, activity_id: this.activityId, reaction, reaction_counts: counts });
  }

  private advance(id: string | undefined): void {
    if (id && V7.test(id) && (this.since === undefined || id > this.since)) this.since = id;
  }
}
