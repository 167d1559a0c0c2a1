"""The machine's own apt configuration, read as apt reads it: which Debian mirror
the offline bootstrap fetches from, and the ``sources.list`` the image gets.

``sources.list`` (one-line format), then ``sources.list.d/*.list`` and deb822
``*.sources`` in apt's order; ``deb-src``, ``Enabled: no`` stanzas and files apt
ignores are skipped. No mirror host is written anywhere in cai.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Suites of one Debian release that are not the release itself.
_SECONDARY_SUFFIXES = ("-security", "-updates", "-backports", "-proposed-updates")

#: Suite names debootstrap knows as Debian releases (used only as a fallback
#: when no entry names the requested suite exactly).
_DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    }
)

#: URI schemes debootstrap can fetch from.
_FETCHABLE = ("http://", "https://", "ftp://", "file:/")


@dataclass(frozen=True)
class Source:
    """One ``deb`` entry of the apt configuration (one URI, its suites, components)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def _source_files(sources_dir: Path) -> Iterator[Path]:
    """The files apt itself reads, in apt's order (disabled/other suffixes skipped)."""
    main = sources_dir / "sources.list"
    if main.is_file():
        yield main
    parts = sources_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.is_file() and path.suffix in (".list", ".sources"):
                yield path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def one_line_sources(text: str) -> Iterator[Source]:
    """``deb [opt=val ...] URI suite [component ...]`` lines (``deb-src`` skipped)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # Options in brackets may contain spaces: remove them before splitting.
        line = re.sub(r"\[[^\]]*\]", " ", line)
        fields = line.split()
        if len(fields) < 3 or fields[0] != "deb":
            continue
        yield Source(fields[1], (fields[2],), tuple(fields[3:]))


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Paragraphs of a deb822 file as ``{lowercased field: value}`` (comments dropped)."""
    stanza: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if raw[0] in " \t":
            if last is not None:  # continuation line (e.g. an inline Signed-By key)
                stanza[last] += "\n" + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        last = key.strip().lower()
        stanza[last] = value.strip()
    if stanza:
        yield stanza


def deb822_sources(text: str) -> Iterator[Source]:
    """The enabled ``Types: deb`` stanzas of a deb822 ``*.sources`` file, one per URI."""
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            yield Source(uri, suites, components)


def sources(sources_dir: Path) -> list[Source]:
    """Every fetchable ``deb`` entry apt would use, in apt's order."""
    found: list[Source] = []
    for path in _source_files(sources_dir):
        text = _read(path)
        parse = deb822_sources if path.suffix == ".sources" else one_line_sources
        found.extend(parse(text))
    return [s for s in found if s.uri.startswith(_FETCHABLE)]


def _is_secondary(suite: str) -> bool:
    return suite.endswith(_SECONDARY_SUFFIXES)


def clean_uri(uri: str) -> str:
    """``uri`` without a trailing ``/`` (a bare ``scheme://`` is kept)."""
    return uri.rstrip("/") if uri.count("/") > 2 else uri


def apt_mirror(sources_dir: Path = Path("/etc/apt"), *, suite: str = "bookworm") -> str | None:
    """The first Debian ``main`` mirror the machine's apt configuration names.

    Reads ``sources.list`` (one-line format) and ``sources.list.d/*.list`` and
    ``*.sources`` (deb822), in apt's order, skipping ``deb-src``, stanzas with
    ``Enabled: no`` and files apt would ignore (e.g. ``*.disabled``). An entry
    for ``suite`` itself wins; failing that, the first entry of another Debian
    release that is not a security/updates/backports suite. ``None`` when the
    configuration names no usable mirror.
    """
    found = [s for s in sources(sources_dir) if "main" in s.components]
    for source in found:
        if suite in source.suites:
            return clean_uri(source.uri)
    for source in found:
        if "security" in source.uri:
            continue
        if any(s in _DEBIAN_SUITES and not _is_secondary(s) for s in source.suites):
            return clean_uri(source.uri)
    return None


def image_sources_list(sources_dir: Path, suite: str, mirror: str) -> str:
    """``sources.list`` for the image: the host's own entries for this release.

    ``suite`` from ``mirror``, plus ``suite-updates`` and ``suite-security``
    from whichever URIs the host uses for them (only when it has them), so
    packages installed in templates get security fixes exactly as on the host.
    """
    lines = [f"deb {mirror} {suite} main"]
    for extra in (f"{suite}-updates", f"{suite}-security"):
        for source in sources(sources_dir):
            if extra in source.suites and "main" in source.components:
                lines.append(f"deb {clean_uri(source.uri)} {extra} main")
                break
    return "\n".join(lines) + "\n"
