"""The export/import commands' own decisions (cli/commands/export.py, import_.py), with the
service replaced by a recording fake: confirmation, --force, exit codes, stop --export."""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from containai.cli.app import App
from containai.cli.commands import export as export_cmd
from containai.cli.commands import import_ as import_cmd
from containai.domain.archive_rules import Member
from containai.domain.engine_objects import ContainerInfo, Mount
from containai.domain.errors import ConfirmationNeeded, Failed, NotFound, UsageError
from containai.services.archive import VolumeTarget
from containai.services.lookup import Target


@dataclass
class FakeService:
    exists: bool = True
    fail_export: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def volume_exists(self, volume: str) -> bool:
        return self.exists

    def check(self, archive: Path, *, progress: Any = None) -> list[Member]:
        self.calls.append(("check", archive))
        return [Member("a", "file")]

    def restore(self, target: VolumeTarget, archive: Path, members: Any, **kw: Any) -> None:
        self.calls.append(("restore", target.volume, archive))

    def export(self, target: VolumeTarget, output: Path, *, progress: Any = None) -> Any:
        self.calls.append(("export", target.volume, output))
        if target.volume in self.fail_export:
            raise Failed(f"export of {target.volume} broke")
        return type("R", (), {"members": 1, "bytes_in": 1, "bytes_out": 1, "hardlinks": 0})()


class Out(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def make_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, service: FakeService, *, tty: bool, answer: str
) -> tuple[App, Out, Out]:
    args = argparse.Namespace(quiet=False, verbose=False, context=None)
    app = App(args, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    out, err = Out(False), Out(tty)
    app.out.stdout, app.out.stderr = out, err
    monkeypatch.setattr(type(app.out), "interactive", property(lambda self: tty))
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    monkeypatch.setattr(export_cmd, "archives", lambda _app: service)
    monkeypatch.setattr(import_cmd, "archives", lambda _app: service)
    monkeypatch.setattr(
        import_cmd, "resolve_target", lambda *a, **k: VolumeTarget("vol", None, None)
    )
    return app, out, err


def import_args(source: str, **kw: Any) -> argparse.Namespace:
    base = dict(
        source=source,
        container=None,
        data_volume=None,
        workspace=None,
        dry_run=False,
        no_secrets=False,
        force=False,
    )
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "a.tgz"
    path.write_bytes(b"x")
    return path


@pytest.mark.parametrize(("answer", "restored"), [("y\n", True), ("yes\n", True), ("\n", False)])
def test_confirmation_on_a_tty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive: Path, answer: str, restored: bool
) -> None:
    service = FakeService()
    app, _out, err = make_app(monkeypatch, tmp_path, service, tty=True, answer=answer)
    if restored:
        assert import_cmd._import_archive(app, import_args(str(archive)), archive) == 0
    else:
        with pytest.raises(Failed, match="not confirmed"):
            import_cmd._import_archive(app, import_args(str(archive)), archive)
    assert "Replace the content of volume 'vol'? [y/N]" in err.getvalue()
    assert (("restore", "vol", archive) in service.calls) is restored
    assert service.calls[0] == ("check", archive)  # checked before asking


def test_no_tty_and_no_force_is_exit_6_before_reading_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive: Path
) -> None:
    service = FakeService()
    app, *_ = make_app(monkeypatch, tmp_path, service, tty=False, answer="y\n")
    with pytest.raises(ConfirmationNeeded, match="--force") as info:
        import_cmd._import_archive(app, import_args(str(archive)), archive)
    assert info.value.exit_code == 6
    assert service.calls == []


def test_force_and_new_volumes_do_not_ask(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive: Path
) -> None:
    service = FakeService()
    app, _out, err = make_app(monkeypatch, tmp_path, service, tty=False, answer="")
    import_cmd._import_archive(app, import_args(str(archive), force=True), archive)
    service.exists = False
    import_cmd._import_archive(app, import_args(str(archive)), archive)
    assert [c[0] for c in service.calls] == ["check", "restore", "check", "restore"]
    assert "[y/N]" not in err.getvalue()


def test_dry_run_checks_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive: Path
) -> None:
    service = FakeService()
    app, out, _err = make_app(monkeypatch, tmp_path, service, tty=False, answer="")
    import_cmd._import_archive(app, import_args(str(archive), dry_run=True), archive)
    assert [c[0] for c in service.calls] == ["check"]
    assert "would replace the content of volume 'vol' with 1 entries" in out.getvalue()


def test_no_secrets_with_an_archive_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive: Path
) -> None:
    app, *_ = make_app(monkeypatch, tmp_path, FakeService(), tty=False, answer="")
    with pytest.raises(UsageError, match="--no-secrets"):
        import_cmd._import_archive(app, import_args(str(archive), no_secrets=True), archive)


def test_missing_source_is_exit_4(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        import_cmd.run(import_args(str(tmp_path / "nope.tgz")))
    assert info.value.exit_code == 4


# ------------------------------------------------------------ stop --export
def target(name: str, volume: str) -> Target:
    info = ContainerInfo(
        id=name, name=name, state="exited", mounts=[Mount("volume", volume, "/mnt/agent-data")]
    )
    return Target(name, info, "/w")


def test_export_targets_once_per_volume(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = FakeService()
    app, out, _err = make_app(monkeypatch, tmp_path, service, tty=False, answer="")
    targets = [target("a", "v1"), target("b", "v1"), target("c", "v2")]
    export_cmd.export_targets(app, targets, None, force=False)
    exported = [c[1] for c in service.calls]
    assert exported == ["v1", "v2"]
    paths = out.getvalue().splitlines()
    assert len(paths) == 2 and all(Path(p).parent == tmp_path for p in paths)
    with pytest.raises(UsageError, match="give a directory"):
        export_cmd.export_targets(app, targets, "one.tgz", force=False)


def test_export_failure_aborts_unless_forced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = FakeService(fail_export={"v1"})
    app, _out, err = make_app(monkeypatch, tmp_path, service, tty=False, answer="")
    with pytest.raises(Failed, match="nothing was stopped"):
        export_cmd.export_targets(app, [target("a", "v1")], None, force=False)
    export_cmd.export_targets(app, [target("a", "v1"), target("b", "v2")], None, force=True)
    assert "cai: warning: exporting volume 'v1' failed" in err.getvalue()
    assert service.calls[-1][1] == "v2"  # the others still exported


def test_export_targets_without_a_data_volume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, _out, err = make_app(monkeypatch, tmp_path, FakeService(), tty=False, answer="")
    bare = Target("x", ContainerInfo(id="x", name="x", state="exited"), "/w")
    with pytest.raises(NotFound, match="container 'x' has no data volume"):
        export_cmd.export_targets(app, [bare], None, force=False)
    export_cmd.export_targets(app, [bare], None, force=True)
    assert "not exported" in err.getvalue()
