/** JWT helpers: only `exp` and `iat` are read (the server verifies; the client just plans). */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const FLOOR = 1000; // ms: the soonest a new token is asked for after one arrived ...
const FLOOR_MAX = 60_000; // ... doubling, up to this, while tokens keep arriving (nearly) expired

function base64UrlDecode(text: string): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const char of text.replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")) {
    const index = ALPHABET.indexOf(char);
    if (index < 0) throw new Error("not base64url");
    value = (value << 6) | index;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return decodeURIComponent(
    Array.from(out, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
  );
}

/** The token's `exp` and `iat` in milliseconds since the epoch (each undefined when absent). */
export function claimsOf(token: string): { exp?: number; iat?: number } {
  const payload = token.replace(/^Bearer\s+/i, "").split(".")[1];
  if (!payload) return {};
  try {
    const claims = JSON.parse(base64UrlDecode(payload)) as { exp?: unknown; iat?: unknown };
    const ms = (v: unknown) => (typeof v === "number" ? v * 1000 : undefined);
    return { exp: ms(claims.exp), iat: ms(claims.iat) };
  } catch {
    return {};
  }
}

/** The token's `exp` in milliseconds since the epoch, or undefined (no exp, or unreadable). */
export function expiresAt(token: string): number | undefined {
  return claimsOf(token).exp;
}

/**
 * When a token expires and when to ask for the next one, on the device's clock, which may be
 * off: a token's `exp` is on the server's clock. Its life is read on the server's clock too: `exp
 * - iat` counted from its arrival, or `exp` moved by the offset of the server's clock (an HTTP
 * `Date` header), the sooner when both are known; only with neither is the device's clock
 * trusted. However a token looks, the next one is asked for no sooner than a floor after it
 * arrived (1 s, doubling while tokens keep arriving that look nearly expired, up to 60 s), so a
 * device whose clock is off cannot ask in a loop.
 */
export class TokenClock {
  private token: string | undefined;
  private arrived = 0;
  private short = 0; // tokens in a row that wanted a refresh sooner than FLOOR
  private offset: number | undefined; // the server's clock minus the device's, ms

  constructor(private readonly now: () => number) {}

  /** A new token is in use. */
  arrive(token: string): void {
    this.token = token;
    this.arrived = this.now();
    const wanted = this.wanted();
    if (wanted !== undefined) this.short = wanted < FLOOR ? this.short + 1 : 0;
  }

  /** The server's time (ms since the epoch), read from an answer that arrived just now. */
  serverTime(ms: number): void {
    if (Number.isFinite(ms)) this.offset = ms - this.now();
  }

  /** When the current token expires, on the device's clock (undefined: no `exp`). */
  expiry(): number | undefined {
    if (!this.token) return undefined;
    const { exp, iat } = claimsOf(this.token);
    if (exp === undefined) return undefined;
    const found: number[] = [];
    if (iat !== undefined) found.push(this.arrived + exp - iat);
    if (this.offset !== undefined) found.push(exp - this.offset);
    return found.length ? Math.min(...found) : exp;
  }

  /** The token expires within a second, and it did not arrive just now (asking again would
   * bring one that looks the same). */
  stale(): boolean {
    const expiry = this.expiry();
    const now = this.now();
    return expiry !== undefined && expiry - now < 1000 && now - this.arrived >= this.floor();
  }

  /** Ms until the next token should be asked for (undefined: never by itself). */
  refreshDelay(): number | undefined {
    const wanted = this.wanted();
    if (wanted === undefined) return undefined;
    return Math.max(wanted, this.arrived + this.floor() - this.now());
  }

  /** At 80% of what is left of the token's life, and no later than 2 s before it expires. */
  private wanted(): number | undefined {
    const expiry = this.expiry();
    if (expiry === undefined) return undefined;
    const left = expiry - this.now();
    return Math.min(left * 0.8, left - 2000);
  }

  private floor(): number {
    return Math.min(FLOOR * 2 ** Math.max(0, this.short - 1), FLOOR_MAX);
  }
}
