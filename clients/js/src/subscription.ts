import { TidingsError } from "./errors.js";
import type { Activity, FeedUpdate, Recovered, SubscribeOptions } from "./types.js";

const SEEN = 5000; // ids remembered for dedupe (missed and live overlap, repeats)
const RECENT = 32; // a catch-up starts where it stood RECENT hand-overs ago (see sinceForCatchUp)
const BUFFER = 10_000; // live events kept while catching up; past that, catch up again
/** Below every activity id: `since` of a feed that was empty when first subscribed. */
export const FLOOR = "00000000-0000-7000-8000-000000000000";

export interface SubscribeAck {
  ok: boolean;
  feed?: string;
  missed?: Activity[];
  more?: boolean;
  error?: unknown;
}

/** What a subscription needs from its client. */
export interface Link {
  subscribe(feed: string, since: string | undefined, presence: unknown): Promise<SubscribeAck>;
  unsubscribe(subscription: Subscription): Promise<void>;
  /** REST read of the feed, newest first, as Stream answers (the first catch-up's anchor). */
  read(feed: string, query: Record<string, string | number>): Promise<{ results: unknown[] }>;
  loadLast(feed: string): Promise<string | undefined>;
  saveLast(feed: string, id: string): void;
  recovered(report: Recovered): void;
}

/** A stable text of an activity (keys sorted), to tell a repeat from an update. */
function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/**
 * One feed, delivered exactly once and in order. The invariant: every activity of the feed with
 * an id up to `last` has been handed to the app. Live events are handed over at once only while
 * in sync; after a disconnect or a `resync` they wait while the subscription re-subscribes with
 * `since`, hands over `missed`, pages the rest with further subscribes (`since`: the last id of
 * the page before, so a grouped feed comes activity by activity, never group by group), and
 * only then are the waiting events handed over (those already delivered are dropped by id).
 * A reconnect or a `resync` catches up whatever the subscription is doing: one that comes
 * while the first subscribe is under way queues a catch-up behind it.
 */
export class Subscription {
  readonly feed: string;
  private last: string | undefined;
  private readonly seen = new Map<string, string>();
  private recent: string[] = []; // for each of the last RECENT hand-overs: min(last before, id)
  private buffer: FeedUpdate[] = [];
  private overflowed = false;
  private synced = false;
  private epoch = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private queued = false;

  constructor(
    feed: string,
    private readonly onActivity: (activity: Activity) => void,
    private readonly options: SubscribeOptions,
    private readonly link: Link,
  ) {
    this.feed = feed;
    this.last = options.since;
  }

  /** The last activity id handed to the app. */
  get lastId(): string | undefined {
    return this.last === FLOOR ? undefined : this.last;
  }

  get active(): boolean {
    return !this.closed;
  }

  /** The first subscribe: resolves after its ack (and the hand-over of what it brought). It is
   * queued at once, so that a recovery asked for meanwhile runs after it. */
  async start(): Promise<void> {
    try {
      await this.enqueue(async () => {
        if (this.last === undefined) this.last = await this.link.loadLast(this.feed);
        await this.catchUp("subscribe", Date.now(), true);
      });
    } catch (error) {
      this.closed = true; // refused: a recovery queued behind it has nothing to do
      throw error;
    }
  }

  async unsubscribe(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.buffer = [];
    await this.link.unsubscribe(this);
  }

  /** The socket went away: stop handing over live events until caught up again. */
  disconnected(): void {
    this.synced = false;
    this.epoch += 1;
  }

  /** Connected again, or told to `resync`: catch up from `last`. */
  recover(reason: Recovered["reason"], since?: number): void {
    if (this.closed) return;
    this.synced = false;
    this.epoch += 1;
    const started = since ?? Date.now();
    if (this.queued) return; // a catch-up waits already: it will start from the latest `last`
    this.queued = true;
    void this.enqueue(() => {
      this.queued = false;
      return this.catchUp(reason, started, false);
    }).catch(() => undefined);
  }

  /** A `feed.update` for this feed. */
  live(update: FeedUpdate): void {
    if (this.closed) return;
    if (!this.synced) {
      if (this.buffer.length >= BUFFER) {
        this.buffer = [];
        this.overflowed = true;
      } else {
        this.buffer.push(update);
      }
      return;
    }
    void this.enqueue(async () => {
      this.handOver(update);
    }).catch(() => undefined);
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(work);
    this.chain = run.catch((error: unknown) => this.fail(error));
    return run;
  }

  private fail(error: unknown): void {
    if (this.options.onError) this.options.onError(error);
  }

  private async catchUp(reason: Recovered["reason"], started: number, first: boolean): Promise<void> {
    if (this.closed) return;
    const epoch = this.epoch;
    const since = first ? this.last : this.sinceForCatchUp();
    let ack: SubscribeAck;
    try {
      ack = await this.link.subscribe(this.feed, since, this.options.presence);
    } catch (error) {
      if (first) throw error;
      // No answer (the socket went away meanwhile): the next connect catches up again.
      this.fail(error);
      return;
    }
    if (!ack.ok) {
      const error = TidingsError.from(ack.error);
      if (first) throw error;
      this.fail(error);
      return;
    }
    if (first && this.last === undefined) await this.anchor();
    let delivered = 0;
    let pages = 0;
    for (;;) {
      const missed = ack.missed ?? [];
      for (const activity of missed) delivered += this.deliver(activity) ? 1 : 0;
      if (!ack.more || !missed.length || this.closed) break;
      // The rest, a page at a time, from the last one of this page: entries, not groups.
      ack = await this.link.subscribe(this.feed, missed[missed.length - 1]!.id, this.options.presence);
      if (!ack.ok) throw TidingsError.from(ack.error);
      pages += 1;
    }
    if (this.closed) return;
    if (this.overflowed) {
      this.overflowed = false;
      this.buffer = [];
      return this.catchUp("retry", started, false);
    }
    const waiting = this.buffer;
    this.buffer = [];
    for (const update of waiting) delivered += this.handOver(update);
    if (epoch === this.epoch) this.synced = true;
    this.link.recovered({ feed: this.feed, delivered, pages, ms: Date.now() - started, reason });
  }

  /**
   * Where a catch-up starts: where the subscription stood RECENT hand-overs ago (or below, if
   * one of them had a lower id), not at the highest id. Ids sort by activity time, and live
   * events can come out of id order (fanout jobs of a batch finish in any order; an activity
   * may be backdated): an activity whose event was lost below the highest id handed over is
   * then still found. What comes again is dropped by id (`seen` holds more).
   */
  private sinceForCatchUp(): string | undefined {
    let since = this.last;
    for (const id of this.recent) if (since === undefined || id < since) since = id;
    return since;
  }

  /**
   * A subscription that starts from "what comes next" still needs a position to recover from,
   * or what is stored while it is disconnected would be lost: the feed's newest id when it
   * subscribed (read after the subscribe joined the room, so nothing falls in between), or
   * FLOOR for an empty feed.
   */
  private async anchor(): Promise<void> {
    try {
      const page = await this.link.read(this.feed, { limit: 1 });
      const newest = (page.results[0] as { id?: unknown } | undefined)?.id;
      this.last = typeof newest === "string" ? newest : FLOOR;
    } catch (error) {
      this.fail(error); // recoveries then start from the first activity delivered
    }
  }

  /** A live update: new activities (or updates of delivered ones), removals, counts. */
  private handOver(update: FeedUpdate): number {
    let delivered = 0;
    // an update may carry several activities (a batch add), in no set order: oldest first
    const added = [...(update.new ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const activity of added) delivered += this.deliver(activity, update) ? 1 : 0;
    if ((update.deleted?.length ?? 0) > 0 || (update.deleted_foreign_ids?.length ?? 0) > 0) {
      this.options.onRemoved?.({
        feed: this.feed,
        ids: update.deleted ?? [],
        foreignIds: update.deleted_foreign_ids ?? [],
      });
    }
    if ((update.new?.length ?? 0) === 0 && (update.unseen !== undefined || update.unread !== undefined)) {
      this.options.onUpdate?.(null, update);
    }
    return delivered;
  }

  /** Hand one activity to the app unless it was handed over already; true if it was new. */
  private deliver(activity: Activity, update?: FeedUpdate): boolean {
    if (this.closed || !activity || typeof activity.id !== "string") return false;
    const print = fingerprint(activity);
    const before = this.seen.get(activity.id);
    if (before !== undefined) {
      if (before !== print && update) {
        this.remember(activity.id, print);
        this.options.onUpdate?.(activity, update);
      }
      return false;
    }
    this.remember(activity.id, print);
    const stood = this.last;
    this.recent.push(stood !== undefined && stood < activity.id ? stood : activity.id);
    if (this.recent.length > RECENT) this.recent.shift();
    if (this.last === undefined || activity.id > this.last) {
      this.last = activity.id;
      this.link.saveLast(this.feed, activity.id);
    }
    try {
      this.onActivity(activity);
    } catch (error) {
      this.fail(error); // the app's callback failed: the activity still counts as delivered
    }
    return true;
  }

  private remember(id: string, print: string): void {
    this.seen.delete(id);
    this.seen.set(id, print);
    if (this.seen.size > SEEN) this.seen.delete(this.seen.keys().next().value as string);
  }
}
