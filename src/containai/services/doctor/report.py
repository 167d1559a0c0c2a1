"""The report: one ``Check`` per line (stable id, status, detail, fix) and the
``DoctorReport`` that says whether a workspace can be created."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

OK: Final = "OK"
WARN: Final = "WARN"
FAIL: Final = "FAIL"
SKIP: Final = "SKIP"
STATUSES: Final = (OK, WARN, FAIL, SKIP)

#: check id -> title shown in the text output, in report order.
TITLES: Final[Mapping[str, str]] = {
    "engine": "Engine",
    "context": "Context",
    "isolation": "Isolation",
    "base-image": "Base image",
    "ssh-client": "OpenSSH client",
    "user-key": "User key",
    "ssh-include": "SSH Include",
    "ports": "SSH ports",
    "disk": "Disk space",
    "network": "Network",
}
ORDER: Final = tuple(TITLES)


@dataclass(frozen=True)
class Check:
    """One line of the report. ``check`` is the stable id (see ``TITLES``)."""

    check: str
    status: str
    detail: str
    fix: str | None = None

    @property
    def title(self) -> str:
        return TITLES.get(self.check, self.check.replace("-", " ").capitalize())

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """A workspace can be created: no check failed."""
        return all(c.status != FAIL for c in self.checks)

    def get(self, check: str) -> Check:
        for c in self.checks:
            if c.check == check:
                return c
        raise KeyError(check)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}
