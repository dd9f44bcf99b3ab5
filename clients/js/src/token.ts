/** JWT helpers: only the `exp` claim is read (the server verifies; the client just plans). */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

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

/** The token's `exp` in milliseconds since the epoch, or undefined (no exp, or unreadable). */
export function expiresAt(token: string): number | undefined {
  const payload = token.replace(/^Bearer\s+/i, "").split(".")[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(base64UrlDecode(payload)) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to ask for the next token: at 80% of what is left of its life, and no later than 2
 * seconds before it expires (never in the past).
 */
export function refreshDelay(token: string, now: number = Date.now()): number | undefined {
  const exp = expiresAt(token);
  if (exp === undefined) return undefined;
  const left = exp - now;
  return Math.max(0, Math.min(left * 0.8, left - 2000));
}
