"""The one error hierarchy. Each class is one of Stream's API exceptions (name, code, status).

The HTTP layer answers `error.body()` with `error.status`; the Socket.IO layer acks
`{"ok": False, "error": error.ack()}`. Nothing else decides how an error looks on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

FieldErrors = Mapping[str, Sequence[str]]


class TidingsError(Exception):
    code: ClassVar[int] = 1
    status: ClassVar[int] = 500
    exception: ClassVar[str] = "StreamApiException"

    def __init__(
        self,
        detail: str,
        fields: FieldErrors | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`headers`: HTTP headers of the answer besides the body (a refusal's `Retry-After`)."""
        super().__init__(detail)
        self.detail = detail
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items()}
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Stream's error body (without `duration`, which the HTTP layer adds)."""
        body: dict[str, Any] = {
            "code": self.code,
            "detail": self.detail,
            "exception": self.exception,
            "status_code": self.status,
        }
        if self.fields:
            body["exception_fields"] = self.fields
        return body

    def ack(self) -> dict[str, Any]:
        ack: dict[str, Any] = {
            "code": self.code,
            "detail": self.detail,
            "exception": self.exception,
        }
        if self.fields:
            ack["exception_fields"] = self.fields
        return ack


class ApiKeyError(TidingsError):
    code, status, exception = 2, 401, "ApiKeyException"


class SignatureError(TidingsError):
    code, status, exception = 3, 401, "SignatureException"


class InputError(TidingsError):
    code, status, exception = 4, 400, "InputException"


class CustomFieldError(TidingsError):
    code, status, exception = 5, 400, "CustomFieldException"


class FeedConfigError(TidingsError):
    code, status, exception = 6, 400, "FeedConfigException"


class RateLimitError(TidingsError):
    """Too many calls: of one socket at once, or of one class by one key, user or address in a
    window (the rate limits)."""

    code, status, exception = 9, 429, "RateLimitReached"


class DoesNotExistError(TidingsError):
    code, status, exception = 16, 404, "DoesNotExistException"


class NotAllowedError(TidingsError):
    code, status, exception = 17, 403, "NotAllowedException"


class PayloadTooLargeError(InputError):
    """Stream has no code of its own for this: an InputException answered with HTTP 413."""

    status = 413


class UnavailableError(TidingsError):
    """The store cannot be reached, or did not confirm a write: the request may be retried
    (writes are idempotent)."""

    code, status, exception = 1, 503, "StreamApiException"


class ConflictError(InputError):
    """An id already taken (a user, a collection entry, a reaction): Stream answers 409. Its
    suites check only the status; the body is an InputException, so the SDKs raise their
    input error."""

    status = 409
