"""Which process made something, and whether that process still lives.

A helper container or a temp file that outlives the ``cai`` that made it (killed,
machine rebooted) is garbage; one whose maker still runs is work in progress. The
maker is named by an owner token ``<host>/<pid>/<start time>``: the start time (clock
ticks since boot, from ``/proc/<pid>/stat``) tells a reused pid from the original.
"""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22 (starttime), counted after the command name's closing parenthesis.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def owner_token(pid: int | None = None) -> str:
    """This process (or ``pid``), as an owner token."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '-'}"


def owner_alive(token: str) -> bool | None:
    """Whether the owner of ``token`` still runs: ``None`` when this host cannot tell
    (another host made it, or the token is not one of ours)."""
    host, _, rest = token.partition("/")
    pid_text, _, ticks = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    now = _start_ticks(int(pid_text))
    return now is not None and (ticks == "-" or now == ticks)
