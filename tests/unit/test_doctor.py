"""`cai doctor`'s decisions and rendering, with in-memory fakes of the engine and the host
(SPEC section 13): each check's status, detail and fix; engine-independent checks still
decided when the engine is down; time budgets; the text and JSON shapes; exit logic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from containai.cli.commands.doctor import render_text
from containai.domain import labels as L
from containai.domain.engine_facts import EngineInfo, EngineVersion
from containai.domain.engine_objects import ImageInfo
from containai.domain.errors import EngineUnreachable
from containai.domain.isolation import tier
from containai.services.doctor import (
    FAIL,
    OK,
    ORDER,
    SKIP,
    STATUSES,
    WARN,
    Check,
    DoctorInputs,
    DoctorReport,
    Outcome,
    decide_base_image,
    decide_disk,
    decide_include,
    decide_ports,
    diagnose,
    gather,
)
from containai.services.engine_select import DEDICATED_CONTEXT, Selection
from tests import fakes

GIB = 1024**3
KEY = Path("/home/u/.config/containai/keys/id_ed25519")
SSH_CONFIG = Path("/home/u/.ssh/config")
INCLUDE = b"Include ~/.ssh/containai.d/*.conf\n"


class FakeEngine(fakes.FakeEngine):
    """The shared fake engine as doctor sees it: version/info/images/managed containers
    (with their SSH ports), or down."""

    def __init__(
        self,
        *,
        name: str | None = "default",
        runtimes: tuple[str, ...] = ("runc", "runsc", "io.containerd.runc.v2"),
        images: Iterable[str] = ("containai:default", "containai-gateway:test"),
        ports: tuple[int, ...] = (),
        **kw: Any,
    ) -> None:
        super().__init__(name=name, context=name, runtime_names=runtimes, **kw)
        for ref in images:
            repo, _, tag = ref.rpartition(":")
            self.images.append(ImageInfo(f"sha256:{ref}", repo, tag))
        for i, port in enumerate(ports):
            self.add(fakes.Box(f"c{i}", "exited", {L.MANAGED: L.TRUE, L.SSH_PORT: str(port)}))


@dataclass
class FakeHost:
    ssh: str | None = "OpenSSH_9.2p1 Debian-2+deb12u10"
    keygen: bool = True
    files: dict[Path, bytes] = field(default_factory=lambda: {KEY: b"key", SSH_CONFIG: INCLUDE})
    bound: set[int] = field(default_factory=set)
    free_bytes: int | None = 50 * GIB
    name: str = "box"
    bootstrap: tuple[bool, str] = (True, "http://deb.debian.org/debian")
    hang_ssh: threading.Event | None = None
    writes: list[Path] = field(default_factory=list)

    def ssh_client_version(self) -> str | None:
        if self.hang_ssh is not None:
            self.hang_ssh.wait(10)
        return self.ssh

    def has_program(self, name: str) -> bool:
        return self.keygen if name == "ssh-keygen" else True

    def exists(self, path: Path) -> bool:
        return path in self.files

    def read_bytes(self, path: Path) -> bytes | None:
        return self.files.get(path)

    def port_is_free(self, port: int) -> bool:
        return port not in self.bound

    def disk_free(self, path: str) -> int | None:
        return self.free_bytes

    def hostname(self) -> str:
        return self.name

    def offline_bootstrap(self) -> tuple[bool, str]:
        return self.bootstrap


def inputs(
    engine: FakeEngine | None = None,
    host: FakeHost | None = None,
    *,
    selection: Selection | Exception | None = None,
    dedicated: FakeEngine | None = None,
    **kw: Any,
) -> DoctorInputs:
    engine = engine or FakeEngine()
    sel = selection if selection is not None else Selection(engine.name, "docker")

    def select() -> Selection:
        if isinstance(sel, Exception):
            raise sel
        return sel

    def engine_for(context: str | None) -> FakeEngine:
        if context == DEDICATED_CONTEXT and dedicated is not None and engine.name != context:
            return dedicated
        return engine

    kw.setdefault("budget", 2.0)
    kw.setdefault("gateway_image", "containai-gateway:test")
    return DoctorInputs(
        select=select,
        engine_for=engine_for,
        dedicated_exists=lambda: dedicated is not None,
        host=host or FakeHost(),
        user_key=KEY,
        ssh_config=SSH_CONFIG,
        include_is_first=lambda data: data.startswith(b"Include ~/.ssh/containai.d/*.conf\n"),
        **kw,
    )


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.check: c.status for c in report.checks}


# ---------------------------------------------------------------------- whole runs


def test_healthy_machine_every_check_ok() -> None:
    report = diagnose(inputs())
    assert [c.check for c in report.checks] == list(ORDER)
    assert set(statuses(report).values()) == {OK}
    assert report.ok
    assert all(c.fix is None for c in report.checks)
    assert report.get("engine").detail == "Docker 20.10.24+dfsg1, API 1.41 (context default)"
    assert report.get("isolation").detail.startswith("runsc (gVisor); runtimes: runc, runsc")
    assert "io.containerd" not in report.get("isolation").detail
    assert report.get("ports").detail == "200 of 200 free in 2300-2499"
    assert report.get("disk").detail == "50.0 GiB free in /var/lib/docker"


def test_engine_down_fails_with_fix_and_still_runs_host_checks() -> None:
    engine = FakeEngine(name=None, up=False)
    report = diagnose(inputs(engine, selection=Selection(None, "docker")))
    s = statuses(report)
    assert s["engine"] == FAIL
    eng = report.get("engine")
    assert "DOCKER_HOST=unix:///nonexistent.sock" in eng.detail
    assert eng.fix is not None
    for word in ("scripts/ensure-engine", "cai setup", "--context"):
        assert word in eng.fix
    assert s["isolation"] == s["base-image"] == s["disk"] == SKIP
    assert s["ssh-client"] == s["user-key"] == s["ssh-include"] == s["ports"] == OK
    assert "engine down" in report.get("ports").detail
    assert not report.ok
    assert "image" not in engine.verbs() and "list_managed" not in engine.verbs()


def test_dedicated_engine_selected_but_down_says_cai_setup() -> None:
    engine = FakeEngine(name=DEDICATED_CONTEXT, up=False)
    report = diagnose(inputs(engine, selection=Selection(DEDICATED_CONTEXT, "dedicated")))
    eng = report.get("engine")
    assert eng.status == FAIL and eng.fix is not None and "sudo cai setup" in eng.fix
    assert report.get("context").detail == (
        f"{DEDICATED_CONTEXT} (the dedicated engine of `cai setup`)"
    )


def test_unknown_context_fails_context_and_skips_engine() -> None:
    err = EngineUnreachable("Docker context 'nope' (from --context) does not exist; ...")
    report = diagnose(inputs(selection=err))
    assert report.get("context").status == FAIL
    assert "nope" in report.get("context").detail
    assert report.get("engine").status == SKIP
    assert report.get("user-key").status == OK
    assert not report.ok


def test_dedicated_context_down_while_another_selected_warns() -> None:
    report = diagnose(inputs(dedicated=FakeEngine(name=DEDICATED_CONTEXT, up=False)))
    ctx = report.get("context")
    assert ctx.status == WARN
    assert ctx.fix is not None and "cai setup" in ctx.fix
    assert report.ok  # a workspace can still be created on the selected engine
    up = diagnose(inputs(dedicated=FakeEngine(name=DEDICATED_CONTEXT)))
    assert up.get("context").status == OK
    assert "also available" in up.get("context").detail


@pytest.mark.parametrize(
    ("runtimes", "configured", "status"),
    [
        (("runc", "runsc"), "auto", OK),
        (("runc", "sysbox-runc", "runsc"), "auto", OK),
        (("runc",), "auto", WARN),
        ((), "auto", FAIL),
        (("runc",), "runsc", FAIL),
        (("runc", "runsc"), "runsc", OK),
        (("runc", "runsc"), "runc", WARN),
        (("runc",), "runc", WARN),
        (("runc", "sysbox-runc", "runsc"), "sysbox-runc", OK),
        (("runc", "sysbox-runc", "runsc"), "runsc", WARN),
    ],
)
def test_isolation_tiers(runtimes: tuple[str, ...], configured: str, status: str) -> None:
    report = diagnose(inputs(FakeEngine(runtimes=runtimes), runtime=configured))
    check = report.get("isolation")
    assert check.status == status
    if status != OK:
        assert check.fix is None or "cai" in check.fix
    if runtimes == ("runc",) and configured == "auto":
        assert check.fix is not None and "cai setup" in check.fix
    if "sysbox-runc" in runtimes and configured == "auto":
        assert check.detail.startswith("sysbox-runc (Sysbox)")
    # SPEC 14: a runtime below the engine's best is shown as weakened
    weakened = configured != "auto" and configured in runtimes and configured != tier(runtimes)
    assert ("weakened" in check.detail) == weakened


# ---------------------------------------------------------------------- base image


def _present(*refs: str) -> dict[str, Outcome]:
    all_refs = ("containai:default", "debian:bookworm-slim", "containai-base:bookworm")
    return {r: Outcome(value=r in refs) for r in all_refs}


def test_base_image_present_pullable_bootstrap() -> None:
    boot = Outcome(value=(True, "http://mirror/debian"))
    assert decide_base_image(True, _present("containai:default"), boot).detail == (
        "containai:default is built"
    )
    c = decide_base_image(True, _present("debian:bookworm-slim"), boot)
    assert (c.status, c.detail) == (
        OK,
        "base debian:bookworm-slim is present; containai:default builds on it",
    )
    c = decide_base_image(True, _present("containai-base:bookworm"), boot)
    assert c.status == OK and c.detail.startswith("offline base containai-base:bookworm")
    c = decide_base_image(True, _present(), boot)
    assert c.status == OK
    assert "not present; will try to pull, then bootstrap offline from http://mirror" in c.detail
    c = decide_base_image(True, _present(), Outcome(value=(False, "it needs root")))
    assert c.status == WARN and "it needs root" in c.detail and c.fix is not None
    assert decide_base_image(False, {}, boot).status == SKIP


def test_base_image_custom_base_and_template() -> None:
    report = diagnose(inputs(FakeEngine(images={"node:20"}), image_base="node:20", template="web"))
    assert report.get("base-image").detail == "base node:20 is present; containai:web builds on it"


# ---------------------------------------------------------------------- ssh


def test_ssh_client_missing_or_keygen_missing_fails() -> None:
    assert diagnose(inputs(host=FakeHost(ssh=None))).get("ssh-client").status == FAIL
    report = diagnose(inputs(host=FakeHost(keygen=False)))
    check = report.get("ssh-client")
    assert check.status == FAIL and "ssh-keygen" in check.detail
    assert check.fix is not None and "openssh-client" in check.fix
    assert not report.ok


def test_user_key_missing_warns_and_is_not_created() -> None:
    host = FakeHost(files={SSH_CONFIG: INCLUDE})
    report = diagnose(inputs(host=host))
    key = report.get("user-key")
    assert key.status == WARN and key.fix is not None and "created on first use" in key.fix
    assert KEY not in host.files and host.writes == []
    assert report.ok


@pytest.mark.parametrize(
    ("content", "first"),
    [
        (b"Include ~/.ssh/containai.d/*.conf\nHost x\n", True),
        (b"include=containai.d/*.conf\n", True),
        (b'Include "/home/u/.ssh/containai.d/*.conf"\n', True),
        (b"Host x\n  User y\nInclude ~/.ssh/containai.d/*.conf\n", False),
        (b"# comment\nInclude ~/.ssh/containai.d/*.conf\n", False),
        (b"Include ~/.ssh/other/*.conf\n", False),
        (b"", False),
    ],
)
def test_include_first_line(content: bytes, first: bool) -> None:
    from containai.adapters.ssh import SshFiles
    from containai.paths import resolve_paths

    is_first = SshFiles(resolve_paths({"HOME": "/home/u"})).include_is_first
    assert is_first(content) is first
    check = decide_include(SSH_CONFIG, Outcome(value=content), is_first, "Include X")
    assert check.status == (OK if first else WARN)
    if not first:
        assert check.fix is not None and "first line" in check.fix


def test_include_config_missing_warns() -> None:
    check = decide_include(SSH_CONFIG, Outcome(value=None), lambda _d: False, "Include X")
    assert check.status == WARN and "does not exist" in check.detail


# ---------------------------------------------------------------------- ports, disk


def test_ports_held_by_labels_and_bound() -> None:
    engine = FakeEngine(ports=(2300, 2301, 2302))
    host = FakeHost(bound={2302, 2303})
    report = diagnose(inputs(engine, host, port_range=(2300, 2309)))
    assert report.get("ports").detail == "6 of 10 free in 2300-2309"
    assert report.get("ports").status == OK


def test_ports_none_or_few_free() -> None:
    full = decide_ports((2300, 2301), Outcome(value=[2300, 2301]), Outcome(value={2300, 2301}))
    assert full.status == FAIL and full.fix is not None
    few = decide_ports((2300, 2309), Outcome(value=[2300, 2301]), Outcome(value=set()))
    assert few.status == WARN and few.detail == "2 of 10 free in 2300-2309"


@pytest.mark.parametrize(
    ("free", "status"),
    [(50 * GIB, OK), (4 * GIB, WARN), (GIB // 2, FAIL), (None, SKIP)],
)
def test_disk_thresholds(free: int | None, status: str) -> None:
    info = Outcome(value=EngineInfo(root_dir="/var/lib/docker"))
    check = decide_disk(True, info, Outcome(value=free))
    assert check.status == status
    if status in (WARN, FAIL):
        assert check.fix is not None


def test_disk_of_a_remote_engine_is_skipped() -> None:
    report = diagnose(inputs(FakeEngine(hostname="elsewhere")))
    assert report.get("disk").status == SKIP
    assert "another machine" in report.get("disk").detail


def test_low_disk_makes_doctor_fail() -> None:
    report = diagnose(inputs(host=FakeHost(free_bytes=100 * 1024**2)))
    assert report.get("disk").status == FAIL and not report.ok


# ---------------------------------------------------------------------- budgets


def test_gather_abandons_a_slow_task() -> None:
    release = threading.Event()
    started = time.monotonic()
    out = gather({"fast": lambda: 1, "slow": lambda: release.wait(10)}, 0.2)
    assert time.monotonic() - started < 2
    assert out["fast"] == Outcome(value=1)
    assert out["slow"].timed_out and not out["slow"].ok
    release.set()


def test_a_hanging_engine_and_ssh_are_reported_within_the_budget() -> None:
    hang = threading.Event()
    engine = FakeEngine(hang=hang)
    host = FakeHost(hang_ssh=hang)
    started = time.monotonic()
    report = diagnose(inputs(engine, host, budget=0.3))
    elapsed = time.monotonic() - started
    hang.set()
    assert elapsed < 3
    assert report.get("engine").status == FAIL
    assert "no answer within 0.3 s" in report.get("engine").detail
    assert report.get("ssh-client").status == FAIL
    assert report.get("user-key").status == OK  # the other checks still ran


def test_errors_in_a_fact_become_that_checks_status() -> None:
    class Broken(FakeHost):
        def ssh_client_version(self) -> str | None:
            raise OSError("exec format error")

    report = diagnose(inputs(host=Broken()))
    assert report.get("ssh-client").status == FAIL
    assert "exec format error" in report.get("ssh-client").detail


# ---------------------------------------------------------------------- output


def test_render_text_aligns_statuses_and_indents_fixes() -> None:
    report = diagnose(inputs(FakeEngine(runtimes=("runc",)), FakeHost(files={})))
    lines = render_text(report)
    status_lines = [ln for ln in lines if not ln.lstrip().startswith("fix:")]
    assert len(status_lines) == len(ORDER)
    column = min(ln.rindex("[") for ln in status_lines)
    for ln in status_lines:  # aligned, unless the text itself is longer than the column
        idx = ln.rindex("[")
        assert idx == column or len(ln[:idx].rstrip()) + 2 == idx > column
    assert sum(1 for ln in status_lines if ln.rindex("[") == column) >= len(ORDER) - 2
    for ln in status_lines:
        assert ln.endswith(("[OK]", "[WARN]", "[FAIL]", "[SKIP]"))
    fixes = [ln for ln in lines if ln.lstrip().startswith("fix:")]
    assert len(fixes) == sum(1 for c in report.checks if c.status != OK and c.fix)
    assert all(ln.startswith(" ") for ln in fixes)
    # A fix follows its own check.
    iso = next(i for i, ln in enumerate(lines) if ln.startswith("Isolation"))
    assert "cai setup" in lines[iso + 1]


def test_render_text_long_detail_keeps_one_space_gap() -> None:
    report = DoctorReport(
        (
            Check("engine", OK, "x" * 120),
            Check("disk", WARN, "short", "do something"),
        )
    )
    lines = render_text(report)
    assert lines[0].endswith("x  [OK]")
    assert lines[1].endswith("[WARN]") and lines[2].strip() == "fix: do something"


def test_json_shape() -> None:
    report = diagnose(inputs(FakeEngine(up=False)))
    doc = report.to_json()
    assert set(doc) == {"ok", "checks"}
    assert doc["ok"] is False
    assert [c["check"] for c in doc["checks"]] == list(ORDER)
    for c in doc["checks"]:
        assert set(c) == {"check", "status", "detail", "fix"}
        assert c["status"] in STATUSES
        assert isinstance(c["detail"], str)
        assert c["fix"] is None or isinstance(c["fix"], str)


def test_extra_checks_come_first_and_count() -> None:
    report = diagnose(inputs(extra=(Check("config", FAIL, "bad toml", "fix it"),)))
    assert report.checks[0].check == "config" and report.checks[0].title == "Config"
    assert not report.ok


def test_docker_cli_missing_is_named() -> None:
    class NoCli(FakeEngine):
        def engine_version(self) -> EngineVersion:
            raise EngineUnreachable("the docker CLI ('docker') is not installed; install ...")

    check = diagnose(inputs(NoCli())).get("engine")
    assert check.status == FAIL and check.detail == "the docker CLI is not installed"
    assert check.fix is not None and "docker.io" in check.fix


def test_network_check() -> None:
    from containai.services.doctor import Outcome, decide_network

    assert decide_network(True, "open", None, None).status == WARN
    assert "open" in decide_network(True, "open", None, None).detail
    ok = decide_network(True, "allowlist", "containai-gateway:x", Outcome(True))
    assert ok.status == OK and "containai-gateway:x" in ok.detail
    later = decide_network(True, "allowlist", "containai-gateway:x", Outcome(False))
    assert later.status == OK and later.fix is not None and "image build" in later.fix
