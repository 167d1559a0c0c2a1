"""The isolation ladder (SPEC section 9, DESIGN decision 7): pure choice of a runtime."""

from __future__ import annotations

from collections.abc import Collection

from containai.domain.errors import Failed

LADDER = ("sysbox-runc", "runsc", "runc")


def choose_runtime(requested: str, available: Collection[str]) -> tuple[str, str | None]:
    """``(runtime, warning)``: ``auto`` takes the strongest the engine has; an explicit
    runtime must be there (``Failed`` naming it and the fix)."""
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
