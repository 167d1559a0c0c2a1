"""``cai logs``: what a container printed (SPEC sections 1 and 18).

Two sources:

* the container's own log through the engine (the entrypoint's lines, sshd's), and
* the output of lifecycle commands (devcontainer ``postCreateCommand`` and
  ``postStartCommand``): one file per command, ``LOG_DIR/<command>.log`` in the agent's
  home, which the home-links put on the data volume, so it outlives ``cai --fresh``.

Everything read here comes from inside the container and is shown as text only
(``domain.validation.terminal_safe`` in the CLI).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from containai.services.ports import Engine

# Lifecycle commands' logs, relative to the agent's home: ~/.containai/logs/<name>.log.
LOG_DIR = ".containai/logs"
# At most this much of the end of each lifecycle log is read (the files are the agent's).
MAX_BYTES = 1024 * 1024
# ... and at most this much of all of them together (the agent may leave thousands).
MAX_TOTAL = 4 * MAX_BYTES
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class LogFile:
    path: str  # as the agent sees it: /home/agent/.containai/logs/post-create.log
    lines: list[str]


def _script(tail: int | None) -> str:
    """Print each regular ``*.log`` file of LOG_DIR (not a link, a FIFO, a device) as
    ``PATH\\0`` then its last bytes/lines then ``\\0``; ``MAX_TOTAL`` bytes in all."""
    lines = "" if tail is None else f" | tail -n {int(tail)}"
    return (
        f'cd "$HOME" 2>/dev/null || exit 0; for f in {shlex.quote(LOG_DIR)}/*.log; do '
        '[ -f "$f" ] && [ ! -L "$f" ] || continue; '
        'printf \'%s/%s\\0\' "$HOME" "$f"; '
        f'tail -c {MAX_BYTES} -- "$f"{lines}; '
        f"printf '\\0'; done | head -c {MAX_TOTAL}"
    )


def lifecycle_logs(engine: Engine, name: str, user: str, tail: int | None) -> list[LogFile]:
    """The lifecycle commands' logs of running container ``name`` (as ``user``, the
    agent); ``[]`` when there are none or they cannot be read."""
    if tail == 0:
        return []
    try:
        result = engine.exec(
            name, ["sh", "-c", _script(tail)], user=user, timeout=READ_TIMEOUT, check=False
        )
    except Exception:
        return []
    parts = result.stdout.split("\0")
    found: list[LogFile] = []
    for path, body in zip(parts[0::2], parts[1::2], strict=False):
        found.append(LogFile(path, body.splitlines()))
    return found


def container_logs(engine: Engine, name: str, *, tail: int | None, follow: bool) -> Iterator[str]:
    """The container's own log through the engine (``follow``: until it stops or the
    caller stops reading)."""
    return engine.logs(name, tail=tail, follow=follow)
