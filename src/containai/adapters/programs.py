"""Run a host program for ``cai setup`` and ``cai doctor``: an argv list (never a
shell), a timeout, output captured. A missing program (127) or one that outlives
its timeout (124) is an exit status, like a shell's, not an exception.

The hot path does not come here (``adapters/spawn.py`` avoids ``subprocess`` there).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from containai.domain.errors import Failed

SBIN: str = "/usr/local/sbin:/usr/sbin:/sbin"


class Runner(Protocol):
    """``run``'s signature: the adapters take one so tests can pass a fake."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]: ...


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, b"", f"{argv[0]}: not found".encode())
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            list(argv), 124, b"", f"{argv[0]}: no answer within {timeout:.0f} s".encode()
        )


def last_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The last non-empty line of what the program said (stderr, else stdout)."""
    text = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def check(proc: subprocess.CompletedProcess[bytes], what: str) -> None:
    """``Failed`` naming ``what`` and the program's last line, unless it exited 0."""
    if proc.returncode != 0:
        raise Failed(f"{what} failed: {last_error(proc)}")


def which(name: str) -> str | None:
    """``name`` on PATH, else in root's sbin directories (which a user's PATH may lack)."""
    found = shutil.which(name)
    if found is None:
        found = shutil.which(name, path=SBIN)
    return found
