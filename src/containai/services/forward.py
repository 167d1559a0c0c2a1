"""``cai forward``: a container's ports on the host's 127.0.0.1 (SPEC section 17).

The use case: which host port each forward gets, foreground tunnels, background
forwards recorded in workspace state (per container) and restored by ``cai run``,
listing and stopping them. SSH specifics are the ``Forwarder``'s
(``adapters/ssh/forwards.py``); the rules on ports and the record are
``domain/forwards.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from containai.domain import forwards as F
from containai.domain.errors import Failed, NotFound, UsageError
from containai.domain.forwards import Forward
from containai.services.ports import Forwarder, Locks, Tunnel


class StateConfig(Protocol):
    """The part of ``ports.Config`` this use case needs: workspace state."""

    def workspace_state(self, workspace: str) -> dict[str, Any]: ...

    def set_workspace_state(self, workspace: str, values: Mapping[str, Any | None]) -> bool: ...


# How long a new forward may take to listen on the host (an SSH login, then the bind).
LISTEN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Row:
    """One forward of ``cai forward --list``."""

    port: int
    host_port: int
    active: bool

    def to_json(self) -> dict[str, object]:
        return {
            "port": self.port,
            "host_port": self.host_port,
            "address": f"127.0.0.1:{self.host_port}",
            "active": self.active,
        }


@dataclass(frozen=True)
class Restored:
    """What ``restore`` did with one forward: ``problem`` is ``None`` when it listens."""

    forward: Forward
    problem: str | None = None


class Forwards:
    def __init__(
        self,
        forwarder: Forwarder,
        config: StateConfig,
        locks: Locks,
        port_is_free: Callable[[int], bool],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.forwarder = forwarder
        self.config = config
        self.locks = locks
        self.port_is_free = port_is_free
        self.sleep = sleep
        self.clock = clock

    # ---------------------------------------------------------------- helpers
    def recorded(self, name: str, workspace: str) -> list[Forward]:
        return F.recorded(self.config.workspace_state(workspace), name)

    def _record(self, name: str, workspace: str, forwards: Iterable[Forward]) -> None:
        state = self.config.workspace_state(workspace)
        value = F.with_record(state, name, forwards)
        self.config.set_workspace_state(workspace, {F.STATE_FIELD: value})

    def _listening(self, host_ports: Sequence[int], alive: Callable[[], bool]) -> bool:
        """Wait until every host port is bound (by ssh); ``False`` when ``alive`` says
        the forwarder gave up, or after ``LISTEN_TIMEOUT``."""
        deadline = self.clock() + LISTEN_TIMEOUT
        while True:
            if not any(self.port_is_free(p) for p in host_ports):
                return True
            if not alive() or self.clock() > deadline:
                return False
            self.sleep(0.05)

    def _choose(self, wanted: Sequence[Forward], taken: Iterable[int] = ()) -> list[Forward]:
        chosen: list[Forward] = []
        avoid = set(taken)
        for forward in wanted:
            got = F.choose_host_port(forward, self.port_is_free, avoid)
            assert got.host_port is not None
            avoid.add(got.host_port)
            chosen.append(got)
        return chosen

    # ------------------------------------------------------------- foreground
    def foreground(self, name: str, wanted: Sequence[Forward]) -> tuple[list[Forward], Tunnel]:
        """Open a tunnel holding ``wanted``; returned once every host port listens."""
        chosen = self._choose(wanted)
        pairs = [(f.port, f.host_port or f.port) for f in chosen]
        tunnel = self.forwarder.open(name, pairs)
        if not self._listening([hp for _p, hp in pairs], tunnel.alive):
            problem = tunnel.error() if not tunnel.alive() else "timed out"
            tunnel.close()
            raise Failed(f"could not forward ports of container '{name}': {problem}")
        return chosen, tunnel

    # ------------------------------------------------------------- background
    def background(self, name: str, workspace: str, wanted: Sequence[Forward]) -> list[Forward]:
        """Add ``wanted`` to the container's background forwards and record them; the
        forwards made (one already there, by container port and host port, is kept)."""
        with self.locks.workspace(workspace):
            record = self.recorded(name, workspace)
            alive = self.forwarder.alive(name)
            todo = [
                w
                for w in wanted
                if not (
                    alive
                    and any(r.port == w.port and w.host_port in (None, r.host_port) for r in record)
                )
            ]
            made: list[Forward] = []
            try:
                for forward in self._choose(todo):
                    assert forward.host_port is not None
                    self.forwarder.add(name, forward.port, forward.host_port)
                    if not self._listening([forward.host_port], lambda: True):
                        self.forwarder.cancel(name, forward.port, forward.host_port)
                        raise Failed(
                            f"127.0.0.1:{forward.host_port} did not start listening for port "
                            f"{forward.port} of container '{name}'"
                        )
                    made.append(forward)
            finally:
                if made:
                    hosts = {f.host_port for f in made}
                    kept = [r for r in record if r.host_port not in hosts]
                    self._record(name, workspace, [*kept, *made])
            return made

    def listing(self, name: str, workspace: str) -> list[Row]:
        alive = self.forwarder.alive(name)
        return [
            Row(f.port, f.host_port or f.port, alive and not self.port_is_free(f.host_port or 0))
            for f in self.recorded(name, workspace)
        ]

    def stop(self, name: str, workspace: str, port: int | None) -> list[Forward]:
        """End the background forward on host port ``port`` (else those of container port
        ``port``; ``None``: all of them) and forget it."""
        if port is not None and not F.PORT_MIN <= port <= F.PORT_MAX:
            raise UsageError(f"invalid port {port}: use a number from 1 to 65535")
        with self.locks.workspace(workspace):
            record = self.recorded(name, workspace)
            gone = record if port is None else F.matching(record, port)
            if port is not None and not gone:
                raise NotFound(
                    f"container '{name}' has no background forward on port {port}; "
                    "see `cai forward --list`"
                )
            left = [r for r in record if r not in gone]
            if left:
                for forward in gone:
                    self.forwarder.cancel(name, forward.port, forward.host_port or forward.port)
            else:
                self.forwarder.close(name)
            self._record(name, workspace, left)
            return gone

    # ---------------------------------------------------------------- cai run
    def restore(self, name: str, workspace: str, configured: Sequence[str] = ()) -> list[Restored]:
        """Bring back the container's recorded forwards and those of the ``forward``
        setting (``configured``). Cheap when there is nothing to do: no record and no
        setting reads one config file; a live forwards master (which holds them) costs
        one ``connect()``. Problems are returned, not raised: the container is up."""
        record = self.recorded(name, workspace)
        wanted: list[Forward] = []
        for text in configured:
            try:
                forward = F.parse(text)
            except UsageError:
                continue  # checked when settings are read
            if not any(r.port == forward.port for r in record) and forward not in wanted:
                wanted.append(forward)
        if not record and not wanted:
            return []
        if self.forwarder.alive(name):
            record = []  # the master holds what is recorded; add only new settings
            if not wanted:
                return []
        results: list[Restored] = []
        with self.locks.workspace(workspace):
            made: list[Forward] = []
            for forward in [*record, *wanted]:
                try:
                    if forward in record and forward.host_port is not None:
                        got = F.choose_host_port(forward, self.port_is_free)
                    else:
                        (got,) = self._choose([forward], [m.host_port or 0 for m in made])
                    assert got.host_port is not None
                    self.forwarder.add(name, got.port, got.host_port)
                    if not self._listening([got.host_port], lambda: True):
                        raise Failed(f"127.0.0.1:{got.host_port} did not start listening")
                except Failed as exc:
                    results.append(Restored(forward, str(exc)))
                    continue
                made.append(got)
                results.append(Restored(got))
            if any(f not in record for f in made):
                current = self.recorded(name, workspace)
                hosts = {f.host_port for f in made}
                self._record(
                    name, workspace, [*[c for c in current if c.host_port not in hosts], *made]
                )
        return results
