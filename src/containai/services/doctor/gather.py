"""Facts within a time budget: each gathered in its own worker thread, reported as
its value, the error it raised, or no answer in time (``Outcome``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_BUDGET: Final = 5.0
"""Seconds each fact may take (engine calls, ``ssh -V``, port scan, statvfs)."""


@dataclass(frozen=True)
class Outcome:
    """A fact: its value, the error it raised, or no answer within the budget."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out


TIMED_OUT: Final = Outcome(timed_out=True)


def gather(tasks: Mapping[str, Callable[[], Any]], budget: float) -> dict[str, Outcome]:
    """Run every task in its own daemon thread; wait at most ``budget`` seconds in all.

    A task still running then is reported ``timed_out`` and abandoned (its own
    subprocess timeout ends it; a daemon thread does not keep cai alive).
    """
    results: dict[str, Outcome] = {}
    lock = threading.Lock()

    def work(key: str, fn: Callable[[], Any]) -> None:
        try:
            outcome = Outcome(value=fn())
        except Exception as exc:
            outcome = Outcome(error=exc)
        with lock:
            results[key] = outcome

    threads = [
        threading.Thread(target=work, args=(key, fn), name=f"cai-doctor-{key}", daemon=True)
        for key, fn in tasks.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + budget
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {key: results.get(key, TIMED_OUT) for key in tasks}


def why(outcome: Outcome, budget: float) -> str:
    """Why a fact is missing, in a few words: no answer in time, or its error's first line."""
    if outcome.timed_out:
        return f"no answer within {budget:g} s"
    return first_line(str(outcome.error))


def first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."
