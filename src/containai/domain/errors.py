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

MESSAGE_MAX = 300  # characters of an engine's (or tool's) message kept in a one-line error
_WORD_MAX = 60  # a longer word (a path, a name) keeps its head and tail


def summarize(text: str, limit: int = MESSAGE_MAX) -> str:
    """A foreign message on one line of at most ``limit`` characters: whitespace
    collapsed, each very long word (a path, a name) shortened to its head and tail."""
    words = []
    for word in text.split():
        if len(word) > _WORD_MAX:
            word = f"{word[:32]}...{word[-20:]} ({len(word)} characters)"
        words.append(word)
    line = " ".join(words)
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


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


class InUse(Failed):
    """The engine refused: a name, port or image is taken or in use (exit 1). The
    engine adapter says which (``NameInUse``, ``PortTaken``, ``ImageInUse``), so
    services need not read the engine's wording."""


class NameInUse(InUse):
    """A container or network name the engine already has."""


class PortTaken(InUse):
    """A host port that is already allocated or bound."""


class ImageInUse(InUse):
    """An image a container still uses (``docker image rm`` refused)."""


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
