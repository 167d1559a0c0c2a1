"""The isolation ladder (SPEC section 9, DESIGN decision 7): pure choice of a runtime."""

from __future__ import annotations

from containai.domain.errors import Failed

TYPE_CHECKING = False  # labels.py (hot path) imports this module: no typing at run time
if TYPE_CHECKING:
    from collections.abc import Collection

LADDER = ("sysbox-runc", "runsc", "runc")
SYSBOX, GVISOR, PLAIN = LADDER
"""The ladder's rungs by name: Sysbox, gVisor, and plain runc (no sandbox)."""
ISOLATING = LADDER[:-1]
"""The sandboxing runtimes, strongest first: every rung above plain runc."""
CHOICES = ("auto", *LADDER)
"""What ``--runtime`` and the ``runtime`` setting accept."""
DISPLAY = {
    SYSBOX: "sysbox-runc (Sysbox)",
    GVISOR: "runsc (gVisor)",
    PLAIN: "runc (no extra isolation)",
}
"""How status, list and doctor name each rung."""


def isolates(runtime: str) -> bool:
    """Whether ``runtime`` is a sandbox (not plain runc, not an unknown runtime)."""
    return runtime in ISOLATING


def rank(runtime: str) -> int:
    """Position on the ladder (0 = strongest); unknown runtimes rank below runc."""
    return LADDER.index(runtime) if runtime in LADDER else len(LADDER)


def is_weakened(runtime: str, available: Collection[str]) -> bool:
    """Whether ``runtime`` is below the strongest one the engine has."""
    best = tier(available)
    return best != "none" and rank(runtime) > rank(best)


def choose_runtime(
    requested: str, available: Collection[str], *, may_lower: bool = True, source: str = ""
) -> tuple[str, str | None]:
    """``(runtime, warning)``: ``auto`` takes the strongest the engine has; an explicit
    runtime must be there (``Failed`` naming it and the fix). Unless ``may_lower`` (the
    command line or the user's own config asked), a runtime below the engine's best is
    not taken: the best is, with a warning naming ``source`` (SPEC section 14)."""
    if requested != "auto" and not may_lower and is_weakened(requested, available):
        best, _ = choose_runtime("auto", available)
        return best, (
            f"runtime '{requested}' from {source or 'the repository settings'} is weaker than "
            f"this engine's best ('{best}') and was not applied: only the command line "
            "(--runtime) or the global config may lower isolation"
        )
    if requested == "auto":
        for runtime in LADDER:
            if runtime in available:
                warning = None
                if runtime == "runc":
                    warning = (
                        "no sandboxing runtime (sysbox-runc or runsc) on this engine: the "
                        "container runs under plain runc; run `cai setup` for gVisor"
                    )
                return runtime, warning
        raise Failed(
            "the engine reports no known OCI runtime (runc, runsc, sysbox-runc); "
            "check `docker info`"
        )
    if requested not in available:
        have = ", ".join(sorted(available)) or "none"
        raise Failed(
            f"runtime '{requested}' is not available on this engine (it has: {have}); "
            "run `cai setup` to install gVisor, or use --runtime auto"
        )
    return requested, None


def tier(available: Collection[str]) -> str:
    """The strongest runtime present, for doctor: ``sysbox-runc``, ``runsc`` or ``runc``."""
    for runtime in LADDER:
        if runtime in available:
            return runtime
    return "none"
