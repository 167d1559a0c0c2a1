"""stdout is the product (text or --json); stderr is for diagnostics.

Rule of silence: success prints nothing but what was asked for. Progress only
when stderr is a TTY. Warnings are ``cai: warning: ...``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO


class Output:
    def __init__(
        self,
        *,
        quiet: bool = False,
        verbose: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def line(self, text: str = "") -> None:
        """Part of the product: always printed (even with --quiet)."""
        self.stdout.write(text + "\n")

    def json(self, payload: Mapping[str, Any]) -> None:
        """The product as JSON; every document carries ``"schema": 1`` first."""
        doc = {"schema": 1, **{k: v for k, v in payload.items() if k != "schema"}}
        from containai import jsonfast

        self.stdout.write(jsonfast.dumps(doc) + "\n")  # = json.dumps(indent=2, default=str)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self.stderr.write(f"cai: warning: {message}\n")

    def changed(self, message: str) -> None:
        """One line per object a command changed (SPEC section 2); ``-q`` silences it."""
        if not self.quiet:
            self.stderr.write(f"{message}\n")

    def info(self, message: str) -> None:
        """Verbose explanation of a step (``--verbose`` / ``CONTAINAI_VERBOSE=1``)."""
        if self.verbose:
            self.stderr.write(f"cai: {message}\n")

    def progress(self, message: str) -> None:
        """Progress for long work: only when stderr is a TTY, never with --quiet."""
        if not self.quiet and self.stderr.isatty():
            self.stderr.write(f"cai: {message}\n")
            self.stderr.flush()

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.stderr.isatty()

    def confirm(self, question: str) -> bool:
        """Ask ``question [y/N]:`` on the TTY; the caller checks ``interactive`` first."""
        self.stderr.write(f"{question} [y/N]: ")
        self.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")
