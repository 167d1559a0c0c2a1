"""Active-session detection from what the container's kernel reports (SPEC section 5).

Established TCP connections to the SSH port come from ``/proc/net/tcp`` and
``/proc/net/tcp6``; open terminals from the names in ``/dev/pts`` (``ptmx`` is
the multiplexer, not a terminal). Pure parsing: the caller reads the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

TCP_ESTABLISHED = "01"
CONTAINER_SSH_PORT = 2222

# One shell command that prints both sources, separated by a marker line.
PROBE_SCRIPT = (
    "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; echo '--pts--'; "
    # a glob, not `ls`: gVisor's old statx makes `ls DIR` fail
    'for f in /dev/pts/*; do echo "${f##*/}"; done'
)


class Sessions(NamedTuple):
    ssh_connections: int
    active_terminals: int

    @property
    def any(self) -> bool:
        return self.ssh_connections > 0 or self.active_terminals > 0


def count_established(lines: Iterable[str], port: int = CONTAINER_SSH_PORT) -> int:
    """Established connections whose local port is ``port`` in /proc/net/tcp{,6} lines."""
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or fields[0] == "sl":
            continue
        try:
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
        except ValueError:
            continue
        if local_port == port and fields[3].upper() == TCP_ESTABLISHED:
            count += 1
    return count


def count_terminals(names: Iterable[str]) -> int:
    return sum(1 for n in names if n.strip() and n.strip() != "ptmx" and n.strip().isdigit())


def parse_probe(output: str, port: int = CONTAINER_SSH_PORT) -> Sessions:
    """Parse the output of :data:`PROBE_SCRIPT`."""
    tcp, _, pts = output.partition("--pts--")
    return Sessions(count_established(tcp.splitlines(), port), count_terminals(pts.split()))
