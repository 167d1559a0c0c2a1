"""Which repository settings apply (SPEC section 14, DESIGN decision 12).

A cloned repository is data from a stranger. Every repository source of settings
(``.containai/config.toml`` today, ``devcontainer.json`` later) goes through
``repo_policy``: keys that cannot weaken the sandbox apply on their own; keys that
could apply only once the user has trusted that exact file content (``cai trust``,
as direnv does); keys that name host resources or widen isolation never come from a
repository, trusted or not. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

# Apply from a repository on their own: they choose among the user's own things
# (manifest names, template names) or narrow what the container gets.
SAFE = frozenset(
    {
        "agent.default",
        "agents",
        "template",
        "container.memory",  # capped at the user's limit (global config or the default)
        "container.cpus",
        "env",
        "forward",
        "network.deny",  # narrows the allowlist
    }
)

# Apply from a repository only after `cai trust`: each runs the repository's choices
# somewhere that matters (a base image's build steps, a volume, an engine, an
# allowlist that could open an exfiltration route).
TRUSTABLE = frozenset(
    {
        "image.base",
        "image.packages",
        "data_volume",  # and even then only a volume cai created (label)
        "runtime",  # and even then never below the engine's best
        "engine.context",
        "ssh.port_range_start",
        "ssh.port_range_end",
        "gc.age",
        "network.presets",
        "network.allow",
    }
)

# Never from a repository, trusted or not: host paths read into the container, the
# host's ssh-agent, guards and CIDR holes only the user may open.
NEVER = frozenset(
    {
        "image.ca_bundle",
        "ssh.forward_agent",
        "git.config_writable",
        "network.allow_cidrs",
        "network.policy",
        "devcontainer",
    }
)

UNTRUSTED_REASON = "untrusted"
NEVER_REASON = "never-from-repository"
UNKNOWN_REASON = "unknown"


class Ignored(NamedTuple):
    """A setting that was read but not applied, and why."""

    key: str
    source: str  # the file it came from
    reason: str  # UNTRUSTED_REASON, NEVER_REASON or UNKNOWN_REASON
    value: Any = None

    def message(self) -> str:
        if self.reason == UNKNOWN_REASON:
            return (
                f"unknown setting '{self.key}' in {self.source} ignored; see `cai config list` "
                "for the known ones"
            )
        if self.reason == NEVER_REASON:
            return (
                f"setting '{self.key}' in {self.source} ignored: a repository may never set "
                f"it; set it yourself with `cai config set {self.key} VALUE --global`"
            )
        return (
            f"setting '{self.key}' in {self.source} ignored: this repository's settings are "
            "not trusted; review the file, then run `cai trust` to apply them"
        )


def classify(key: str) -> str:
    """``safe``, ``trustable`` or ``never`` for a known key (unknown keys are ``never``)."""
    for table, kind in ((SAFE, "safe"), (TRUSTABLE, "trustable")):
        if key in table or any(key.startswith(k + ".") for k in table):
            return kind
    return "never"


def repo_policy(
    values: Mapping[str, Any],
    *,
    trusted: bool,
    source: str,
    known: frozenset[str] | Mapping[str, Any],
) -> tuple[dict[str, Any], list[Ignored]]:
    """Split one repository source's flattened settings into what applies and what is
    ignored (with the reason). ``known`` is the set of keys cai understands."""
    applied: dict[str, Any] = {}
    ignored: list[Ignored] = []
    for key, value in values.items():
        if key not in known:
            ignored.append(Ignored(key, source, UNKNOWN_REASON, value))
            continue
        kind = classify(key)
        if kind == "safe" or (kind == "trustable" and trusted):
            applied[key] = value
        elif kind == "trustable":
            ignored.append(Ignored(key, source, UNTRUSTED_REASON, value))
        else:
            ignored.append(Ignored(key, source, NEVER_REASON, value))
    return applied, ignored
