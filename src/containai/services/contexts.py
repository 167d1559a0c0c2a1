"""``cai list --all-contexts``: the managed containers of every Docker context at once
(SPEC section 16).

Each context is asked concurrently, within a time budget: a box that does not answer
(off, unreachable, a context whose engine is gone) becomes a warning naming it, never
an error and never a stall of the whole listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime

from containai.domain.errors import CaiError
from containai.services.inventory import Listed, list_managed
from containai.services.ports import ListEngine


class ContextListing:
    """What every context answered: ``(context, container)`` rows and the contexts
    that did not answer, with why."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Listed]] = []
        self.unreachable: list[tuple[str, str]] = []


def list_all_contexts(
    contexts: Sequence[str],
    engine_of: Callable[[str], ListEngine],
    *,
    budget: float = 20.0,
    now: datetime | None = None,
) -> ContextListing:
    """The managed containers of each context, sorted by context then name."""
    now = now or datetime.now(UTC)
    result = ContextListing()
    if not contexts:
        return result
    pool = ThreadPoolExecutor(max_workers=min(8, len(contexts)), thread_name_prefix="cai-ctx")
    futures = {ctx: pool.submit(list_managed, engine_of(ctx), now) for ctx in contexts}
    wait(futures.values(), timeout=budget)
    for ctx in contexts:
        future = futures[ctx]
        if not future.done():
            result.unreachable.append((ctx, f"no answer within {budget:.0f} s"))
            continue
        try:
            items = future.result()
        except CaiError as exc:
            result.unreachable.append((ctx, str(exc)))
            continue
        result.rows += [(ctx, item) for item in items]
    pool.shutdown(wait=False, cancel_futures=True)
    return result
