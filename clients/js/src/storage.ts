/**
 * Where a subscription keeps the last activity id it delivered, per feed, so that an app that
 * starts again resumes where it stopped. Anything with `getItem`/`setItem` (sync or async) fits:
 * `window.localStorage` and React Native's AsyncStorage both do.
 */
export interface TidingsStorage {
  getItem(key: string): string | null | undefined | Promise<string | null | undefined>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** The default: kept for the life of the client only. */
export class MemoryStorage implements TidingsStorage {
  private readonly items = new Map<string, string>();

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

interface SyncStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** The browser's `localStorage` (or `sessionStorage`); a full or forbidden store is ignored. */
export function localStorageAdapter(store?: SyncStore): TidingsStorage {
  const target = store ?? (globalThis as { localStorage?: SyncStore }).localStorage;
  if (!target) throw new Error("localStorage is not available here");
  return {
    getItem: (key) => {
      try {
        return target.getItem(key);
      } catch {
        return null;
      }
    },
    setItem: (key, value) => {
      try {
        target.setItem(key, value);
      } catch {
        // quota exceeded or storage disabled: the subscription still works, from memory
      }
    },
  };
}

interface AsyncStore {
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
}

/** React Native's AsyncStorage (`@react-native-async-storage/async-storage`), passed in. */
export function asyncStorageAdapter(store: AsyncStore): TidingsStorage {
  return {
    getItem: (key) => store.getItem(key),
    setItem: (key, value) => store.setItem(key, value),
  };
}
