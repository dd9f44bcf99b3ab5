"""Rate limits as Stream's API has them: calls counted per endpoint class and per scope (the
API key, the token's user, the client's address) in fixed windows, in Redis for the whole
cluster (`limiter.py`). The REST API's middleware is `api/limits.py`; the socket events are
counted in `realtime/events/handlers.py`."""

from .limiter import CLUSTER, LOCAL, OFF, Caller, Limiter, Verdict

__all__ = ["CLUSTER", "LOCAL", "OFF", "Caller", "Limiter", "Verdict", "client_address"]


def client_address(remote: str | None, forwarded_for: str | None, trust: bool) -> str | None:
    """The client's address: the connection's peer, or, behind a proxy one trusts
    (`limits.trust_forwarded_for`), the last address of `X-Forwarded-For` (the one that proxy
    added; the ones before it are whatever the client wrote)."""
    if trust and forwarded_for:
        last = forwarded_for.rpartition(",")[2].strip()
        if last:
            return last
    return remote
