import type { Rest } from "./rest.js";
import type { Subscription } from "./subscription.js";
import type { Activity, NewActivity, SubscribeOptions } from "./types.js";

export interface FeedPage {
  results: Activity[];
  next: string;
}

export interface ReadParams {
  limit?: number;
  offset?: number;
  id_lt?: string;
  id_lte?: string;
  id_gt?: string;
  id_gte?: string;
  [param: string]: string | number | boolean | undefined;
}

/** What a feed needs from the client. */
export interface FeedHost {
  rest: Rest;
  subscribe(
    feed: string,
    onActivity: (activity: Activity) => void,
    options: SubscribeOptions,
  ): Promise<Subscription>;
}

/** One feed (`group:user_id`): REST reads and writes, and live subscriptions. */
export class Feed {
  readonly id: string;
  readonly group: string;
  readonly userId: string;
  private readonly path: string;

  constructor(
    id: string,
    private readonly host: FeedHost,
  ) {
    const colon = id.indexOf(":");
    if (colon <= 0 || colon === id.length - 1) throw new Error(`feed id must be group:user_id, not ${JSON.stringify(id)}`);
    this.id = id;
    this.group = id.slice(0, colon);
    this.userId = id.slice(colon + 1);
    this.path = `feed/${encodeURIComponent(this.group)}/${encodeURIComponent(this.userId)}/`;
  }

  /** Newest first, as Stream answers: `{results, next}`. */
  get(params: ReadParams = {}): Promise<FeedPage> {
    return this.host.rest.call<FeedPage>("GET", this.path, params);
  }

  /** Add an activity; resolves with the stored activity (its `id`, `time`, …). */
  async addActivity(activity: NewActivity): Promise<Activity> {
    const stored = await this.host.rest.call<Activity & { duration?: string }>("POST", this.path, {}, activity);
    const { duration: _duration, ...rest } = stored;
    return rest as Activity;
  }

  /** Remove by id, or by foreign id with `{foreignId: true}`. */
  removeActivity(id: string, options: { foreignId?: boolean } = {}): Promise<{ removed: string }> {
    return this.host.rest.call("DELETE", `${this.path}${encodeURIComponent(id)}/`, {
      foreign_id: options.foreignId ? 1 : undefined,
    });
  }

  /** This feed follows `target` (`user:alice`). */
  follow(target: string, options: { activityCopyLimit?: number } = {}): Promise<unknown> {
    const body: Record<string, unknown> = { target };
    if (options.activityCopyLimit !== undefined) body.activity_copy_limit = options.activityCopyLimit;
    return this.host.rest.call("POST", `${this.path}follows/`, {}, body);
  }

  unfollow(target: string, options: { keepHistory?: boolean } = {}): Promise<unknown> {
    return this.host.rest.call("DELETE", `${this.path}follows/${encodeURIComponent(target)}/`, {
      keep_history: options.keepHistory ? 1 : undefined,
    });
  }

  followers(params: { limit?: number; offset?: number } = {}): Promise<{ results: unknown[] }> {
    return this.host.rest.call("GET", `${this.path}followers/`, params);
  }

  following(params: { limit?: number; offset?: number } = {}): Promise<{ results: unknown[] }> {
    return this.host.rest.call("GET", `${this.path}follows/`, params);
  }

  /**
   * Live activities, each once, oldest first, also across reconnects, server restarts and
   * `resync`s. Resolves once the server acknowledged the subscription.
   */
  subscribe(onActivity: (activity: Activity) => void, options: SubscribeOptions = {}): Promise<Subscription> {
    return this.host.subscribe(this.id, onActivity, options);
  }
}
