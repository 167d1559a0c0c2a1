"""Checks of the engine and what it runs: engine, context, isolation, base image,
network (the egress gateway's image) and disk space of the engine's data root.
Pure functions of the gathered facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from containai.domain.engine_facts import EngineInfo, EngineVersion
from containai.domain.errors import CaiError, EngineUnreachable
from containai.domain.isolation import (
    DISPLAY,
    GVISOR,
    PLAIN,
    SYSBOX,
    is_weakened,
    isolates,
    tier,
)
from containai.services.doctor.gather import DEFAULT_BUDGET, Outcome, first_line, why
from containai.services.doctor.report import FAIL, OK, SKIP, WARN, Check
from containai.services.engine_select import DEDICATED_CONTEXT, Selection

GIB: Final = 1024**3
DISK_WARN: Final = 5 * GIB
DISK_FAIL: Final = 1 * GIB
OFFLINE_BASE: Final = "containai-base:bookworm"
DEFAULT_BASE: Final = "debian:bookworm-slim"

_SOURCES: Final[Mapping[str, str]] = {
    "flag": "from --context",
    "env": "from CONTAINAI_CONTEXT",
    "config": "from config engine.context",
    "dedicated": "the dedicated engine of `cai setup`",
    "docker": "Docker's own choice",
}
_START_FIX: Final = (
    "start it (`sudo scripts/ensure-engine` for the default engine, `sudo cai setup` for "
    "cai's dedicated one), or choose another engine with --context"
)
_SETUP_FIX: Final = "start it with `sudo cai setup` (or choose another engine with --context)"


def _engine_name(selection: Selection | None, display: str | None) -> str:
    if display:
        return display
    if selection is not None and selection.context:
        return selection.context
    return "DOCKER_HOST"


def _dedicated(selection: Selection | None) -> bool:
    return selection is not None and selection.context == DEDICATED_CONTEXT


def decide_engine(
    selection: Selection | None,
    version: Outcome | None,
    *,
    display: str | None = None,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(a) The engine answers, and its server version. ``version=None``: no selection."""
    if selection is None or version is None:
        return Check("engine", SKIP, "no engine selected (see Context)")
    name = _engine_name(selection, display)
    where = f"context '{name}'" if selection.context is not None else f"engine at {name}"
    fix = _SETUP_FIX if _dedicated(selection) else _START_FIX
    if not version.ok:
        if version.timed_out:
            return Check("engine", FAIL, f"{where}: no answer within {budget:g} s", fix)
        err = version.error
        if isinstance(err, EngineUnreachable) and "not installed" in str(err):
            return Check(
                "engine",
                FAIL,
                "the docker CLI is not installed",
                "install the distribution's docker.io package (`sudo scripts/ensure-engine`)",
            )
        reason = "does not answer" if isinstance(err, EngineUnreachable) else why(version, budget)
        return Check("engine", FAIL, f"{where} {reason}", fix)
    about = version.value if isinstance(version.value, EngineVersion) else EngineVersion()
    api_text = f", API {about.api}" if about.api else ""
    return Check("engine", OK, f"Docker {about.server}{api_text} (context {name})")


def decide_context(
    selection: Selection | None,
    error: CaiError | None,
    *,
    dedicated_exists: bool,
    dedicated_answers: Outcome | None,
    docker_host: str | None = None,
) -> Check:
    """(b) Which context is selected and why; a dedicated engine that is down."""
    if selection is None:
        return Check(
            "context",
            FAIL,
            first_line(str(error) if error else "no context", 300),
            "list contexts with `docker context ls`; `sudo cai setup` creates "
            f"'{DEDICATED_CONTEXT}'",
        )
    if selection.context is None:
        name = f"DOCKER_HOST={docker_host}" if docker_host else "DOCKER_HOST"
    else:
        name = selection.context
    detail = f"{name} ({_SOURCES.get(selection.source, selection.source)})"
    if dedicated_exists and selection.context != DEDICATED_CONTEXT:
        if dedicated_answers is not None and not dedicated_answers.ok:
            return Check(
                "context",
                WARN,
                f"{detail}; '{DEDICATED_CONTEXT}' exists but its engine does not answer",
                "start the dedicated engine with `sudo cai setup`",
            )
        return Check("context", OK, f"{detail}; '{DEDICATED_CONTEXT}' is also available")
    return Check("context", OK, detail)


def _shown_runtimes(names: Sequence[str]) -> str:
    # dockerd 20.10 also lists its containerd shims (io.containerd.*): not runtimes to pick.
    shown = [n for n in names if not n.startswith("io.containerd.")]
    return ", ".join(shown) or "none"


_TIER_LABELS: Final[Mapping[str, str]] = {
    SYSBOX: DISPLAY[SYSBOX],
    GVISOR: DISPLAY[GVISOR],
    PLAIN: "runc only (no sandbox: containers share the host kernel)",
}


def decide_isolation(
    engine_ok: bool, info: Outcome | None, *, runtime: str = "auto", budget: float = DEFAULT_BUDGET
) -> Check:
    """(c) Runtimes the engine has and the isolation tier ``--runtime auto`` gets."""
    if not engine_ok or info is None:
        return Check("isolation", SKIP, "engine does not answer")
    if not info.ok:
        return Check("isolation", WARN, f"cannot read `docker info`: {why(info, budget)}")
    data = info.value if isinstance(info.value, EngineInfo) else EngineInfo()
    names = list(data.runtimes)
    default = data.default_runtime
    have = _shown_runtimes(names)
    suffix = f"; runtimes: {have}" + (f" (default {default})" if default else "")
    if runtime != "auto":
        if runtime not in names:
            return Check(
                "isolation",
                FAIL,
                f"runtime '{runtime}' (config runtime) is not on this engine{suffix}",
                "run `sudo cai setup` for gVisor, or `cai config set runtime auto`",
            )
        if is_weakened(runtime, names):
            return Check(
                "isolation",
                WARN,
                f"{runtime} (config runtime), weakened: the engine offers {tier(names)}{suffix}",
                "`cai config set runtime auto` for the strongest runtime",
            )
        return Check("isolation", OK if isolates(runtime) else WARN, f"{runtime}{suffix}")
    strongest = tier(names)
    if isolates(strongest):
        return Check("isolation", OK, f"{_TIER_LABELS[strongest]}{suffix}")
    if strongest == PLAIN:
        return Check(
            "isolation",
            WARN,
            f"{_TIER_LABELS[PLAIN]}{suffix}",
            "run `sudo cai setup` for a dedicated engine with gVisor (runsc)",
        )
    return Check(
        "isolation",
        FAIL,
        f"the engine reports no known OCI runtime{suffix}",
        "check `docker info`; reinstall the engine (docker.io) or run `sudo cai setup`",
    )


def base_candidates(template: str, image_base: str) -> list[str]:
    """Images that make a build unnecessary or possible, strongest first."""
    found = [f"containai:{template}", image_base or DEFAULT_BASE]
    if OFFLINE_BASE not in found:
        found.append(OFFLINE_BASE)
    return found


def decide_base_image(
    engine_ok: bool,
    present: Mapping[str, Outcome],
    bootstrap: Outcome | None,
    *,
    template: str = "default",
    image_base: str = DEFAULT_BASE,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(d) present / pullable (not verified: doctor pulls nothing) / offline bootstrap."""
    if not engine_ok:
        return Check("base-image", SKIP, "engine does not answer")
    image_base = image_base or DEFAULT_BASE
    built = f"containai:{template}"
    for ref in base_candidates(template, image_base):
        outcome = present.get(ref)
        if outcome is not None and outcome.ok and outcome.value:
            if ref == built:
                return Check("base-image", OK, f"{built} is built")
            what = "offline base" if ref == OFFLINE_BASE and ref != image_base else "base"
            return Check("base-image", OK, f"{what} {ref} is present; {built} builds on it")
    unknown = [r for r, o in present.items() if not o.ok]
    can, how = (
        bootstrap.value
        if bootstrap is not None and bootstrap.ok and isinstance(bootstrap.value, tuple)
        else (False, why(bootstrap, budget) if bootstrap is not None else "unknown")
    )
    lead = f"{image_base} is not present" + (
        f" (could not check {', '.join(unknown)})" if unknown else ""
    )
    if can:
        return Check(
            "base-image",
            OK,
            f"{lead}; will try to pull, then bootstrap offline from {how}",
        )
    return Check(
        "base-image",
        WARN,
        f"{lead}; a pull will be tried (not verified by doctor); no offline bootstrap: {how}",
        "load an image (`docker load`), set `cai config set image.base IMAGE`, or install "
        "debootstrap and run `sudo cai image build --offline`",
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def decide_disk(
    engine_ok: bool,
    info: Outcome | None,
    free: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(i) Space for the engine's ``DockerRootDir`` (statvfs when the engine is local)."""
    if not engine_ok or info is None or not info.ok:
        return Check("disk", SKIP, "engine does not answer")
    root = info.value.root_dir if isinstance(info.value, EngineInfo) else ""
    if not root:
        return Check("disk", SKIP, "the engine does not report its DockerRootDir")
    if free is None:
        return Check("disk", SKIP, f"{root} is on another machine (remote engine); check it there")
    if not free.ok:
        return Check("disk", WARN, f"cannot measure {root}: {why(free, budget)}")
    if free.value is None:
        return Check("disk", SKIP, f"{root} is not on this machine; check it there")
    avail = int(free.value)
    detail = f"{_gib(avail)} free in {root}"
    fix = "free space (`cai gc --images`, `docker system prune`) or move the engine's data-root"
    if avail < DISK_FAIL:
        return Check("disk", FAIL, detail + " (under 1 GiB)", fix)
    if avail < DISK_WARN:
        return Check("disk", WARN, detail + " (under 5 GiB)", fix)
    return Check("disk", OK, detail)


def decide_network(
    engine_ok: bool,
    policy: str,
    image: str | None,
    present: Outcome | None,
    *,
    budget: float = DEFAULT_BUDGET,
) -> Check:
    """(j) The egress policy and its gateway image (SPEC section 15)."""
    if policy == "open":
        return Check(
            "network",
            WARN,
            "network: open (plain Docker egress: an agent can reach any address)",
            "`cai config set network.policy allowlist --global`",
        )
    if not engine_ok:
        return Check("network", SKIP, f"{policy}; engine does not answer")
    if image is None or present is None:
        return Check("network", WARN, f"{policy}; cannot tell whether the gateway image exists")
    if not present.ok:
        return Check("network", WARN, f"{policy}; cannot inspect {image}: {why(present, budget)}")
    if present.value:
        return Check("network", OK, f"{policy} through per-workspace gateways ({image})")
    return Check(
        "network",
        OK,
        f"{policy}; the gateway image {image} is built on first use",
        "`cai image build` builds it now",
    )
