"""The keep-alive of leased durable work (fanout jobs, firehose messages): one loop for both.

Work is leased for `lease` seconds: a document names its owner node and `lease_until`. While
the node holds it, this loop renews the lease every third of the lease, so that another node
takes it over only once the owner stopped renewing (it died, or lost the store). A renewal that
finds the work no longer ours calls `lost`; renewals that keep failing for a whole lease call
`expired` (another node may hold the work by now). Either may raise to end the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def keep_alive(
    renew: Callable[[], Awaitable[bool]],
    lease: float,
    what: str,
    lost: Callable[[], Awaitable[None]],
    expired: Callable[[], Awaitable[None]],
) -> None:
    """Forever (until cancelled, or `lost`/`expired` raise): renew the lease of `what`."""
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(lease / 3)
        try:
            alive = await renew()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not renew the lease of %s", what, exc_info=True)
            if time.monotonic() - renewed >= lease:
                await expired()
                renewed = time.monotonic()
            continue
        if not alive:
            await lost()
        renewed = time.monotonic()
