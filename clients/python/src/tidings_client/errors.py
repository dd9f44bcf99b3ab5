"""The one error of the client: what the server answered (Stream's error shape), or why no
answer came."""

from __future__ import annotations

from typing import Any


class TidingsError(Exception):
    """A refused call: `code`, `exception` and `detail` as the server sent them (Stream's
    codes: 3 SignatureException, 4 InputException, 17 NotAllowedException, ...); `status` is
    the HTTP status of a REST call (None over the socket)."""

    def __init__(
        self,
        detail: str,
        code: int | None = None,
        exception: str = "",
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{exception or 'error'} ({code}): {detail}")
        self.detail, self.code, self.exception = detail, code, exception
        self.status, self.body = status, body

    @classmethod
    def from_body(cls, body: Any, status: int | None = None) -> TidingsError:
        """From a REST error body or a socket ack's `error`."""
        if not isinstance(body, dict):
            return cls(str(body)[:512], status=status, body=body)
        code = body.get("code")
        return cls(
            str(body.get("detail", "")),
            code if isinstance(code, int) else None,
            str(body.get("exception", "")),
            status,
            body,
        )


class NotConnected(TidingsError):
    """The socket is not connected (the client reconnects by itself)."""
