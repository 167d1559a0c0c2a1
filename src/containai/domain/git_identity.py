"""The host's git identity given to a new container (issue 16): ``user.name`` and
``user.email`` only, and only values that are safe to carry: one line of printable text.

The values travel as container environment (``CAI_GIT_NAME``, ``CAI_GIT_EMAIL``) to the
entrypoint, which writes them, quoted for git, into the container's system git config
(``/etc/containai/gitconfig``); the agent's own ``~/.gitconfig`` on the data volume wins
over it. Pure rules, no I/O.
"""

from __future__ import annotations

import unicodedata
from typing import Final

NAME_ENV: Final = "CAI_GIT_NAME"
EMAIL_ENV: Final = "CAI_GIT_EMAIL"
MAX_LENGTH: Final = 256
# Bidirectional overrides and isolates: they make a name display as something else.
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# git drops '<' and '>' from identities (they delimit the e-mail in a commit header).
_REFUSED: Final = frozenset("<>")


def clean(value: str | None) -> str | None:
    """``value`` without surrounding blanks when it is safe to carry, else ``None``: no
    control characters (newline, NUL, escape, C1, line/paragraph separators), no bidi
    controls, no ``<``/``>``, at most ``MAX_LENGTH`` characters, not empty."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > MAX_LENGTH:
        return None
    for char in text:
        if char in _BIDI_CONTROLS or char in _REFUSED:
            return None
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs"):
            return None
    return text


def identity_env(name: str | None, email: str | None) -> dict[str, str]:
    """The environment that carries the identity into a new container (what is unsafe or
    missing is left out, and the container keeps whatever its volume has)."""
    env: dict[str, str] = {}
    for key, value in ((NAME_ENV, name), (EMAIL_ENV, email)):
        safe = clean(value)
        if safe is not None:
            env[key] = safe
    return env
