"""Port forwards (SPEC section 17): ``PORT[:HOSTPORT]`` on the command line and in the
``forward`` setting, the record kept in workspace state, and the choice of the host
port. Pure: the caller says which host ports are free.

``cai forward 8000`` forwards the container's port 8000 to ``127.0.0.1:8000`` (the
same number by default, the next free one when it is taken); ``8000:18000`` asks for
``127.0.0.1:18000`` exactly, and a taken HOSTPORT is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

from containai.domain.errors import Failed, UsageError

PORT_MIN: Final = 1
PORT_MAX: Final = 65535
# How far above a taken default host port the next free one is looked for.
SEARCH: Final = 100


class Forward(NamedTuple):
    """The container's ``port`` on ``127.0.0.1:host_port`` (``None``: not chosen yet)."""

    port: int
    host_port: int | None = None

    def __str__(self) -> str:
        return str(self.port) if self.host_port is None else f"{self.port}:{self.host_port}"


def _port(text: str, whole: str) -> int:
    value = text.strip()
    if not value.isdecimal() or not value.isascii():
        raise UsageError(
            f"invalid port '{whole}': use PORT or PORT:HOSTPORT, numbers from "
            f"{PORT_MIN} to {PORT_MAX} (e.g. 8000 or 8000:18000)"
        )
    number = int(value)
    if not PORT_MIN <= number <= PORT_MAX:
        raise UsageError(
            f"invalid port '{whole}': {number} is not between {PORT_MIN} and {PORT_MAX}"
        )
    return number


def parse(text: str) -> Forward:
    """``"8000"`` -> ``Forward(8000)``; ``"8000:18000"`` -> ``Forward(8000, 18000)``."""
    if not isinstance(text, str) or text.count(":") > 1:
        raise UsageError(
            f"invalid port '{text}': use PORT or PORT:HOSTPORT (e.g. 8000 or 8000:18000)"
        )
    port, sep, host = text.partition(":")
    return Forward(_port(port, text), _port(host, text) if sep else None)


def parse_all(texts: Iterable[str]) -> list[Forward]:
    """Each of ``texts`` parsed; the same host port asked twice is a usage error."""
    found: list[Forward] = []
    for text in texts:
        forward = parse(text)
        if forward.host_port is not None and any(f.host_port == forward.host_port for f in found):
            raise UsageError(f"host port {forward.host_port} is asked for twice")
        if forward not in found:
            found.append(forward)
    return found


def choose_host_port(
    forward: Forward, is_free: Callable[[int], bool], taken: Iterable[int] = ()
) -> Forward:
    """``forward`` with its host port: the one asked for, which must be free, else the
    container port's number or the next free one above it (``Failed`` when none is)."""
    avoid = set(taken)
    if forward.host_port is not None:
        if forward.host_port in avoid or not is_free(forward.host_port):
            raise Failed(
                f"127.0.0.1:{forward.host_port} is already in use on this host; choose "
                f"another HOSTPORT (`cai forward {forward.port}:OTHER`) or leave it out"
            )
        return forward
    last = min(PORT_MAX, forward.port + SEARCH)
    for candidate in range(forward.port, last + 1):
        if candidate not in avoid and is_free(candidate):
            return Forward(forward.port, candidate)
    raise Failed(
        f"no free port on 127.0.0.1 from {forward.port} to {last} for container port "
        f"{forward.port}; name one with `cai forward {forward.port}:HOSTPORT`"
    )


# ------------------------------------------------------------------ the record
# Workspace state (``[workspace."<path>"]`` in the global config) keeps the background
# forwards per container: ``forwards = { <container> = ["8000:18000", ...] }``.
STATE_FIELD: Final = "forwards"


def recorded(state: Mapping[str, Any], container: str) -> list[Forward]:
    """The background forwards recorded for ``container`` (a bad entry is left out: the
    file is the user's, and a hand edit must not stop ``cai run``)."""
    table = state.get(STATE_FIELD)
    if not isinstance(table, Mapping):
        return []
    items = table.get(container)
    out: list[Forward] = []
    for item in items if isinstance(items, list) else []:
        try:
            forward = parse(item)
        except UsageError:
            continue
        if forward.host_port is not None and forward not in out:
            out.append(forward)
    return out


def with_record(
    state: Mapping[str, Any], container: str, forwards: Iterable[Forward]
) -> dict[str, list[str]] | None:
    """The new value of the state field once ``container``'s record is ``forwards``
    (``None``: the field goes away)."""
    table = state.get(STATE_FIELD)
    out: dict[str, list[str]] = {}
    if isinstance(table, Mapping):
        out = {str(k): list(v) for k, v in table.items() if isinstance(v, list)}
    items = [str(f) for f in forwards]
    if items:
        out[container] = items
    else:
        out.pop(container, None)
    return out or None


def matching(forwards: Iterable[Forward], port: int) -> list[Forward]:
    """The forwards ``--stop PORT`` means: the one on host port PORT, else those of
    container port PORT."""
    items = list(forwards)
    by_host = [f for f in items if f.host_port == port]
    return by_host or [f for f in items if f.port == port]
