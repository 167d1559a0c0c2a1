"""Validators for user input (SPEC sections 1, 3, 6, 8, 10).

Each validator returns the accepted value or raises :class:`UsageError` (exit 2)
with a one-line message that names the bad input and says what is accepted.
All patterns are matched with ``re.fullmatch`` and ASCII-only classes, so a
trailing newline or a non-ASCII digit never slips through.
"""

from __future__ import annotations

import math
import re
from typing import Final

from containai.domain.errors import UsageError
from containai.domain.image_tags import looks_hashed
from containai.domain.isolation import CHOICES

CONTAINER_NAME_RE: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
VOLUME_NAME_RE: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
TEMPLATE_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")
ENV_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
AGENT_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEB_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,62}")

# The image tag `<template>-<16 hex>` stays within Docker's 128 characters.
TEMPLATE_NAME_MAX: Final = 111
RUNTIMES: Final = CHOICES
PORT_MIN: Final = 1024
PORT_MAX: Final = 65535

# Measured (docs/decisions.md): under gVisor a container with sshd and the entrypoint
# is OOM-killed at boot below 24 MiB and at or after the first SSH login up to 128 MiB;
# 192 MiB served it (87 MiB in use). Docker's own floor (6 MiB) starts nothing useful.
MEMORY_MIN_BYTES: Final = 256 * 1024 * 1024
MEMORY_MAX_BYTES: Final = 2**63 - 1  # docker stores the limit as int64
CPUS_MIN: Final = 0.01  # docker: "Range of CPUs is from 0.01 to ..."
CPUS_MAX: Final = 1024.0

_MEMORY_RE: Final = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+) ?(?P<unit>[a-zA-Z]*)")
_MEMORY_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_CPUS_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_BYTE_UNITS: Final = ("B", "KB", "MB", "GB", "TB")


def show(value: object) -> str:
    """Quote a user-supplied value for a one-line message (control characters escaped)."""
    return repr(value) if isinstance(value, str) else repr(str(value))


def terminal_safe(text: str) -> str:
    """``text`` from inside a container (hostile), fit for the user's terminal: every
    character that is not printable (escape sequences, carriage returns, ...) but a tab
    is shown as ``\\xNN``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else f"\\x{ord(ch):02x}" for ch in text)


def validate_agent_name(name: str) -> str:
    """An agent is a manifest name (or ``shell``), never a path (SPEC sections 8, 14)."""
    if AGENT_NAME_RE.fullmatch(name) is None:
        raise UsageError(
            f"invalid agent name {show(name)}: an agent is a manifest name of lowercase "
            "letters, digits, '-' and '_' (see `cai run --help`), never a path"
        )
    return name


def validate_package_name(name: str) -> str:
    """A Debian package name (``image.packages``): policy 5.6.1, nothing a shell reads."""
    if DEB_PACKAGE_RE.fullmatch(name) is None:
        raise UsageError(
            f"invalid Debian package name {show(name)} in image.packages: lowercase letters, "
            "digits, '+', '-' and '.', starting with a letter or digit (e.g. postgresql-client)"
        )
    return name


def validate_container_name(name: str) -> str:
    if CONTAINER_NAME_RE.fullmatch(name) is None:
        raise UsageError(
            f"invalid container name {show(name)}: use letters, digits, '_', '.', '-' "
            "(start with a letter or digit, at most 63 characters)"
        )
    return name


def validate_volume_name(name: str) -> str:
    if VOLUME_NAME_RE.fullmatch(name) is None or ".." in name:
        raise UsageError(
            f"invalid volume name {show(name)}: use letters, digits, '_', '.', '-' "
            "(start with a letter or digit, no '..', at most 255 characters)"
        )
    return name


def validate_template_name(name: str) -> str:
    if TEMPLATE_NAME_RE.fullmatch(name) is None or ".." in name or len(name) > TEMPLATE_NAME_MAX:
        raise UsageError(
            f"invalid template name {show(name)}: use lowercase letters, digits, '_', '.', '-' "
            f"(start with a letter or digit, no '..', at most {TEMPLATE_NAME_MAX} characters)"
        )
    if looks_hashed(name):
        raise UsageError(
            f"invalid template name {show(name)}: it ends like a build hash ('-' and 16 hex "
            "digits), which names one build of another template's image; rename it"
        )
    return name


def parse_env_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``; the value may be empty or contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or ENV_KEY_RE.fullmatch(key) is None:
        raise UsageError(
            f"invalid environment assignment {show(text)}: use KEY=VALUE where KEY is "
            "letters, digits and '_' and does not start with a digit (e.g. -e DEBUG=1)"
        )
    if "\x00" in value:
        raise UsageError(
            f"invalid environment assignment {show(text)}: the value contains a NUL "
            "character; remove it"
        )
    return key, value


def validate_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UsageError(f"invalid runtime {show(runtime)}: use one of {', '.join(RUNTIMES)}")
    return runtime


def validate_port(port: int, what: str) -> int:
    """Check ``port`` is an unprivileged TCP port; ``what`` names the setting in the message."""
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise UsageError(
            f"invalid {what} {show(port)}: use a port number from {PORT_MIN} to {PORT_MAX}"
        )
    return port


def validate_port_range(start: int, end: int) -> tuple[int, int]:
    validate_port(start, "port range start")
    validate_port(end, "port range end")
    if start > end:
        raise UsageError(
            f"invalid port range {start}..{end}: the start must not be greater than the end"
        )
    return start, end


def parse_memory(text: str) -> int:
    """Docker-style size -> bytes. Units are 1024-based (``m``, ``mb`` and ``mib`` are equal)."""
    hint = "use a number with an optional unit b, k, m, g or t (e.g. 512m, 4g, 2GiB)"
    match = _MEMORY_RE.fullmatch(text.strip())
    unit = match.group("unit").lower() if match else ""
    if match is None or unit not in _MEMORY_UNITS:
        raise UsageError(f"invalid memory size {show(text)}: {hint}")
    from fractions import Fraction

    size = int(Fraction(match.group("num")) * _MEMORY_UNITS[unit])
    if size < MEMORY_MIN_BYTES:
        raise UsageError(
            f"invalid memory size {show(text)}: the minimum is 256m (sshd and the "
            "entrypoint need it under gVisor); give 256m or more (e.g. 4g)"
        )
    if size > MEMORY_MAX_BYTES:
        raise UsageError(f"invalid memory size {show(text)}: too large; {hint}")
    return size


def parse_cpus(text: str) -> float:
    """``--cpus`` value -> float in ``CPUS_MIN..CPUS_MAX`` (plain decimal notation only)."""
    stripped = text.strip()
    value = float(stripped) if _CPUS_RE.fullmatch(stripped) else math.nan
    if not CPUS_MIN <= value <= CPUS_MAX:  # also false for nan
        raise UsageError(
            f"invalid CPU count {show(text)}: use a decimal number from 0.01 to 1024 (e.g. 2, 1.5)"
        )
    return value


def format_bytes(size: int) -> str:
    """Bytes for humans, 1024-based with one decimal: ``512B``, ``1.2GB``, ``4.0GB``."""
    if size < 0:
        raise ValueError(f"byte count must not be negative: {size}")
    if size < 1024:
        return f"{size}B"
    value = float(size)
    index = 0
    while index < len(_BYTE_UNITS) - 1 and round(value, 1) >= 1024:
        value /= 1024
        index += 1
    return f"{value:.1f}{_BYTE_UNITS[index]}"
