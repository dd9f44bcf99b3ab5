export { Tidings } from "./client.js";
export { Feed, type FeedPage, type ReadParams } from "./feed.js";
export { Subscription } from "./subscription.js";
export { ReactionWatch } from "./reactions.js";
export { TidingsError } from "./errors.js";
export { MemoryStorage, localStorageAdapter, asyncStorageAdapter, type TidingsStorage } from "./storage.js";
export { expiresAt } from "./token.js";
export type * from "./types.js";
