import { TidingsError } from "./errors.js";

export type Query = Record<string, string | number | boolean | undefined | null>;

/** Stream's REST dialect over fetch: `/api/v1.0/<path>?api_key=…`, the JWT in Authorization. */
export class Rest {
  constructor(
    private readonly base: string,
    private readonly apiKey: string,
    private readonly token: (fresh: boolean) => Promise<string>,
    private readonly fetcher: typeof fetch,
    /** The server's time from each answer's `Date` header (when the answer shows it). */
    private readonly serverTime: (ms: number) => void = () => undefined,
  ) {}

  async call<T>(method: string, path: string, query: Query = {}, body?: unknown): Promise<T> {
    try {
      return await this.once<T>(method, path, query, body, await this.token(false));
    } catch (error) {
      // An expired or refused token: once with a fresh one (getToken), then give up.
      if (error instanceof TidingsError && error.isTokenError && error.status === 401) {
        return await this.once<T>(method, path, query, body, await this.token(true));
      }
      throw error;
    }
  }

  private async once<T>(
    method: string,
    path: string,
    query: Query,
    body: unknown,
    token: string,
  ): Promise<T> {
    const params = new URLSearchParams({ api_key: this.apiKey });
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) params.set(key, String(value));
    }
    const headers: Record<string, string> = { Authorization: token, "stream-auth-type": "jwt" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await this.fetcher(`${this.base}/api/v1.0/${path}?${params.toString()}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const date = response.headers?.get("date");
    if (date) this.serverTime(Date.parse(date) + 500); // whole seconds: the middle of the second
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
    if (!response.ok) throw TidingsError.from(parsed, response.status);
    return parsed as T;
  }
}
