"""Checks of how the user reaches workspaces: the OpenSSH client, the user key, the
``Include`` line of ``~/.ssh/config`` and free SSH ports. Pure functions of the
gathered facts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo
from containai.services.doctor.gather import DEFAULT_BUDGET, Outcome, why
from containai.services.doctor.report import FAIL, OK, WARN, Check

PORTS_WARN: Final = 5
"""Fewer free SSH ports than this is a warning (none at all is a failure)."""

INCLUDE_PATTERN: Final = "~/.ssh/containai.d/*.conf"


def decide_ssh_client(
    version: Outcome, keygen: Outcome, *, budget: float = DEFAULT_BUDGET
) -> Check:
    """(e) OpenSSH client version (``ssh -V``), and ``ssh-keygen``."""
    fix = "install the OpenSSH client (`sudo apt-get install openssh-client`)"
    if not version.ok:
        return Check("ssh-client", FAIL, f"`ssh -V` failed: {why(version, budget)}", fix)
    if not version.value:
        return Check("ssh-client", FAIL, "ssh is not installed", fix)
    if keygen.ok and keygen.value is False:
        return Check("ssh-client", FAIL, f"{version.value}, but ssh-keygen is missing", fix)
    return Check("ssh-client", OK, str(version.value))


def decide_user_key(path: Path, exists: Outcome, *, budget: float = DEFAULT_BUDGET) -> Check:
    """(f) The user key; never created here."""
    if not exists.ok:
        return Check("user-key", WARN, f"cannot check {path}: {why(exists, budget)}")
    if exists.value:
        return Check("user-key", OK, str(path))
    return Check(
        "user-key",
        WARN,
        f"{path} does not exist yet",
        "nothing to do: it is created on first use (`cai run`)",
    )


def decide_include(
    config: Path,
    content: Outcome,
    is_first: Callable[[bytes], bool],
    line: str,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(g) ``Include ~/.ssh/containai.d/*.conf`` is the first line of ``~/.ssh/config``."""
    if not content.ok:
        return Check("ssh-include", WARN, f"cannot read {config}: {why(content, budget)}")
    if content.value is None:
        return Check(
            "ssh-include",
            WARN,
            f"{config} does not exist",
            f"nothing to do: `cai run` creates it with '{line}' first",
        )
    if is_first(content.value):
        return Check("ssh-include", OK, f"'{line}' is the first line of {config}")
    return Check(
        "ssh-include",
        WARN,
        f"'{line}' is not the first line of {config}",
        f"put '{line}' as the first line of {config} (cai does it on the next `cai run` "
        "when the file is writable)",
    )


def held_ports(rows: Sequence[ContainerInfo]) -> set[int]:
    """SSH ports recorded in managed containers' ``containai.ssh-port`` labels."""
    held: set[int] = set()
    for row in rows:
        value = row.labels.get(L.SSH_PORT, "")
        if value.isdigit():
            held.add(int(value))
    return held


def decide_ports(
    port_range: tuple[int, int],
    bound_free: Outcome,
    held: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(h) Ports of ``ssh.port_range_*`` neither held by a managed container nor bound."""
    start, end = port_range
    total = max(0, end - start + 1)
    where = f"{start}-{end}"
    if not bound_free.ok:
        return Check("ports", WARN, f"cannot scan 127.0.0.1:{where}: {why(bound_free, budget)}")
    free = set(bound_free.value or ())
    note = ""
    if held is not None and held.ok:
        free -= set(held.value or ())
    else:
        note = " (engine down: ports of stopped containers unknown)"
    count = len(free)
    detail = f"{count} of {total} free in {where}{note}"
    fix = (
        "remove old containers (`cai gc`, `cai stop --remove`) or widen the range "
        "(`cai config set ssh.port_range_end N`)"
    )
    if count == 0:
        return Check("ports", FAIL, detail, fix)
    if count < PORTS_WARN:
        return Check("ports", WARN, detail, fix)
    return Check("ports", OK, detail)
