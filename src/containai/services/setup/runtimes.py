"""Which OCI runtimes the dedicated engine registers, and the runsc probe's candidates.

The order (sysbox-runc > runsc > runc) is ``domain.isolation.LADDER``'s; this
module knows what each needs on this machine (a binary, a probe that worked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from containai.domain.isolation import GVISOR, PLAIN, SYSBOX, tier
from containai.services.setup.facts import Facts, RunscRecord

PROBE_CANDIDATES: Final[tuple[tuple[str, ...], ...]] = ((), ("--network=host",))
KVM_CANDIDATE: Final = ("--network=host", "--platform=kvm")
PROBE_PREFIX: Final = "containai-probe-"


def known_record(facts: Facts) -> RunscRecord | None:
    """The first record for the installed runsc version (ours before ensure-engine's)."""
    if facts.runsc is None or facts.runsc_version is None:
        return None
    for record in facts.records:
        if record.version == facts.runsc_version:
            return record
    return None


def runtimes_for(facts: Facts, record: RunscRecord | None) -> tuple[dict[str, Any], str]:
    """``runtimes`` of daemon.json, and the default: the strongest rung of the ladder
    that may be the default here.

    runsc is registered when it starts a container here. It becomes the default
    runtime only when ``statx(2)`` works in its sandbox too: the default runtime
    is also the one ``docker build`` runs ``RUN`` steps with, and bookworm's
    runsc (statx EINVAL) breaks dpkg post-install scripts (openssh-server's
    calls ``stat``). cai itself always names the runtime of an agent container
    (``--runtime``, picked by ``choose_runtime``), so agents run under runsc
    either way.
    """
    runtimes: dict[str, Any] = {}
    may_default = [PLAIN]  # dockerd's own runc is always there
    if facts.runsc and record is not None and record.works:
        entry: dict[str, Any] = {"path": facts.runsc}
        if record.args:
            entry["runtimeArgs"] = list(record.args)
        runtimes[GVISOR] = entry
        if record.statx != "broken":
            may_default.append(GVISOR)
    if facts.sysbox:
        runtimes[SYSBOX] = {"path": facts.sysbox}
        may_default.append(SYSBOX)
    default = tier(may_default)
    return runtimes, default


def probe_runtimes_args(facts: Facts) -> list[tuple[str, ...]]:
    """The ``runtimeArgs`` the probe tries, in order (``--platform=kvm`` when KVM works)."""
    return list(PROBE_CANDIDATES) + ([KVM_CANDIDATE] if facts.kvm else [])


def probe_runtimes(facts: Facts) -> dict[str, Any]:
    """Candidate registrations of runsc for the probe, one runtime name each."""
    out: dict[str, Any] = {}
    for i, args in enumerate(probe_runtimes_args(facts)):
        entry: dict[str, Any] = {"path": facts.runsc}
        if args:
            entry["runtimeArgs"] = list(args)
        out[f"{PROBE_PREFIX}{i}"] = entry
    return out


def tier_of(runtimes: Mapping[str, Any]) -> str:
    """The runtime ``--runtime auto`` picks on an engine with these extra runtimes."""
    return tier([*runtimes, PLAIN])
