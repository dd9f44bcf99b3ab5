/** An error of the Tidings API, in Stream's shape (REST answers and socket acks alike). */
export class TidingsError extends Error {
  /** Stream's error code: 3 SignatureException, 4 InputException, 17 NotAllowedException… */
  readonly code: number | undefined;
  /** Stream's exception name, e.g. "NotAllowedException". */
  readonly exception: string | undefined;
  /** The HTTP status of a REST error (undefined for a socket ack). */
  readonly status: number | undefined;
  readonly detail: string;

  constructor(detail: string, options: { code?: number; exception?: string; status?: number } = {}) {
    super(detail);
    this.name = "TidingsError";
    this.detail = detail;
    this.code = options.code;
    this.exception = options.exception;
    this.status = options.status;
  }

  /** Whether a new token would help (missing, bad or expired token). */
  get isTokenError(): boolean {
    return this.exception === "SignatureException" || this.code === 3;
  }

  static from(body: unknown, status?: number): TidingsError {
    const shape = (body ?? {}) as Record<string, unknown>;
    const error = (shape.error ?? shape) as Record<string, unknown>;
    const detail = typeof error.detail === "string" ? error.detail : `request failed (${status ?? "ack"})`;
    return new TidingsError(detail, {
      code: typeof error.code === "number" ? error.code : undefined,
      exception: typeof error.exception === "string" ? error.exception : undefined,
      status,
    });
  }
}
