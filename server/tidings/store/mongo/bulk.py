"""What a BulkWriteError of an unordered bulk write means, decided in this one place.

Unique indexes make Tidings' inserts idempotent: a document that is there already fails with a
duplicate key error and is skipped, which is success (a fanout batch or a retried add run
again). Anything else is a failure, even when every document was written: a write-concern error
says the store applied the writes on the primary without the confirmation asked for
(`mongodb.write_concern`), so a failover may still roll them back. Such a failure surfaces as
UnavailableError (503: retry the request; adds are idempotent), and the caller announces
nothing of the write.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError

from ...domain.errors import UnavailableError
from .client import DUPLICATE_KEY

UNCONFIRMED = "the store did not confirm the write; retry the request (writes are idempotent)"


def unwritten(exc: BulkWriteError) -> list[int]:
    """The indexes of the operations the store did not apply (one write error each); the
    others were applied, confirmed or not."""
    return [int(err["index"]) for err in exc.details.get("writeErrors", [])]


def failure(exc: BulkWriteError) -> UnavailableError | None:
    """None when the only errors are duplicates; else the error to raise instead of `exc`."""
    details = exc.details
    if details.get("writeConcernErrors"):
        return UnavailableError(UNCONFIRMED)
    if any(err.get("code") != DUPLICATE_KEY for err in details.get("writeErrors", [])):
        return UnavailableError(f"the store refused the write; retry the request ({exc})")
    return None


def duplicates(exc: BulkWriteError) -> list[int]:
    """The indexes skipped as duplicates, when that is all that went wrong; otherwise raises
    the failure (UnavailableError, from `exc`)."""
    error = failure(exc)
    if error is not None:
        raise error from exc
    return unwritten(exc)
