"""Domain errors: every expected failure, with the exit code SPEC section 2 gives it.

The CLI's single error boundary (``cli/main.py``) prints ``cai: error: <message>``
and exits with ``exit_code``. Messages name the object and the next step.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENGINE = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5
EXIT_CONFIRM = 6
EXIT_INTERRUPTED = 130


class CaiError(Exception):
    """Base of every expected failure. ``str(err)`` is the one-line message."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Failed(CaiError):
    """The operation failed (exit 1)."""

    exit_code = EXIT_FAILED


class UsageError(CaiError):
    """Bad input on the command line: names, ages, flags (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(Failed):
    """A config file that cannot be read or a key that does not exist (exit 1)."""


class EngineUnreachable(CaiError):
    """Unknown Docker context or an engine that does not answer (exit 3)."""

    exit_code = EXIT_ENGINE


class UnknownContext(EngineUnreachable):
    """A Docker context that does not exist (exit 3): an error even for ``--dry-run``."""


class NotFound(CaiError):
    """No such container, volume, template, image or file (exit 4)."""

    exit_code = EXIT_NOT_FOUND


class Refused(CaiError):
    """The object is not managed by cai or belongs to another workspace (exit 5)."""

    exit_code = EXIT_REFUSED


class ConfirmationNeeded(CaiError):
    """A confirmation was needed but there is no TTY to ask on (exit 6)."""

    exit_code = EXIT_CONFIRM
