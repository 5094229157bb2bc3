"""Waiting a bounded time without losing a cancellation.

`asyncio.wait_for` on Python 3.11 can swallow the cancellation of its caller when the awaited thing finishes at the
same moment (CPython gh-86296, fixed in 3.12 by rebuilding it on `asyncio.timeout`): a background loop cancelled at
shutdown then goes round again and never stops, and whoever awaits it hangs. `asyncio.timeout` counts
cancellations (`Task.uncancel`), so a cancellation arriving as the wait ends still ends the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def wait_at_most(waitable: Awaitable[object], seconds: float | None) -> bool:
    """True when `waitable` finished within `seconds` (None: no limit), False when the time ran out first."""
    try:
        async with asyncio.timeout(seconds):
            await waitable
    except TimeoutError:
        return False
    return True
