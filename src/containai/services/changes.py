"""The one line per changed object that a command prints on stderr (SPEC section 2:
``created myapp-main (ssh cai-myapp-main)``, ``started ...``, ``removed ...``, ``new data
volume ...``). Text only: the commands print it (``Output.changed``; ``-q`` silences)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.domain.labels import ssh_alias

if TYPE_CHECKING:
    from containai.services.run_request import Ready

_READY_VERBS = {"create": "created", "recreate": "recreated", "start": "started"}
_RUNNING = ("running", "restarting", "paused")


def ready_lines(ready: Ready, *, reset: bool = False) -> list[str]:
    """What ``ensure_running`` changed: the new data volume of ``--reset``, then the
    container created, recreated or started (nothing when it only attached)."""
    lines = [f"new data volume {ready.data_volume}"] if reset else []
    verb = _READY_VERBS.get(ready.action)
    if verb is not None:
        lines.append(f"{verb} {ready.name} (ssh {ssh_alias(ready.name)})")
    return lines


def stop_line(name: str, state: str, *, removed: bool, volume: str | None = None) -> str:
    """``cai stop`` of a container that was in ``state``."""
    if removed:
        kept = f"; data volume {volume} kept" if volume else ""
        return f"removed {name} (and its SSH entry{kept})"
    if state in _RUNNING:
        return f"stopped {name}"
    return f"{name} was not running ({state})"
