"""Remote engines (SPEC section 16): which endpoints are remote, images sent when the
remote lacks them, the workspace volume and its fill, ``cai sync push``'s refusals, and
the workspace archive and git remote against a real git repository."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.workspace_copy import WorkspaceCopier, ensure_git_remote, write_archive
from containai.domain import remote as R
from containai.domain.engine_facts import EngineInfo
from containai.domain.engine_objects import CommandResult, ImageInfo, Mount, VolumeInfo
from containai.domain.errors import Failed, Refused, UsageError
from containai.services.remote import RemoteHost, RemoteImages, RemoteWorkspace
from containai.services.run_request import ImageProvider, ImageRef
from tests.fakes import Box, FakeEngine, FakeHost, FakeSsh

WS = "/src/app"


# ------------------------------------------------------------------ endpoints
@pytest.mark.parametrize(
    ("url", "remote", "jump"),
    [
        ("", False, None),
        ("unix:///var/run/docker.sock", False, None),
        ("npipe:////./pipe/docker_engine", False, None),
        ("ssh://big-box", True, "big-box"),
        ("ssh://me@big-box:2222", True, "me@big-box:2222"),
        ("ssh://me@10.0.0.5/", True, "me@10.0.0.5"),
        ("ssh://[::1]:22", True, "[::1]:22"),
        ("tcp://10.0.0.5:2376", True, None),
    ],
)
def test_classify(url: str, remote: bool, jump: str | None) -> None:
    endpoint = R.classify(url)
    assert (endpoint.remote, endpoint.jump) == (remote, jump)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oHost",
        "ssh://a b",
        "ssh://host,other",
        "ssh://h%p",
        "ssh://'x'",
        "ssh://-oProxyCommand=x",
    ],
)
def test_ssh_endpoints_that_would_inject_into_ssh_config_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        R.classify(url)


@given(st.text())
def test_classify_never_yields_a_jump_with_ssh_config_specials(url: str) -> None:
    try:
        endpoint = R.classify(url)
    except UsageError:
        return
    if endpoint.jump is not None:
        assert not any(ch in endpoint.jump for ch in " \t\n,%'\"\\")
        assert not endpoint.jump.startswith("-")


def test_tcp_endpoint_is_refused_for_containers() -> None:
    with pytest.raises(UsageError, match="ssh://"):
        R.require_jump("far", R.classify("tcp://10.0.0.5:2376"))
    assert R.require_jump("far", R.classify("ssh://u@h")) == "u@h"


def test_git_remote_names() -> None:
    assert R.git_remote_name("app-main") == "cai-app-main"
    assert R.git_remote_url("app-main", WS) == "cai-app-main:/src/app"
    assert R.workspace_volume("app-main") == "app-main-ws"
    with pytest.raises(ValueError):
        R.git_remote_url("app-main", "relative")


# ---------------------------------------------------------------------- host
def test_remote_host_reports_the_remote_machine_and_probes_no_local_port() -> None:
    engine = FakeEngine()
    facts = EngineInfo(memory_bytes=64 * 1024**3, cpus=32)
    engine.engine_info = lambda: facts  # type: ignore[method-assign]
    host = RemoteHost(FakeHost(bound={2300}), engine, lambda port: port != 2301)
    assert host.port_is_free(2300)  # bound here, but that is not the remote's loopback
    assert not host.port_is_free(2301)  # taken there
    assert host.memory_bytes() == 64 * 1024**3
    assert host.cpu_count() == 32
    assert host.grant(["/src/app"], 1000, 1000) == 0


# -------------------------------------------------------------------- images
class LocalImages(ImageProvider):
    def __init__(self, template_hash: str = "h1") -> None:
        self.hash = template_hash
        self.ensured: list[str] = []

    def ensure(self, template: str) -> ImageRef:
        self.ensured.append(template)
        return ImageRef(f"containai:{template}", template, self.hash)

    def current_hash(self, template: str) -> str | None:
        return self.hash

    def ca_bundle_path(self) -> Path | None:
        return None


def _remote_images(remote: FakeEngine, local: LocalImages) -> tuple[RemoteImages, list[str]]:
    sent: list[str] = []

    def send(ref: str) -> None:
        sent.append(ref)
        repo, _, tag = ref.rpartition(":")
        labels = {"ai.containai.template-hash": local.hash} if repo == "containai" else {}
        remote.images.append(ImageInfo(f"sha256:{ref}", repo, tag, labels))

    return RemoteImages(local, remote, send, gateway=lambda: "containai-gateway:g1"), sent


def test_an_image_the_remote_lacks_is_built_here_and_sent_once() -> None:
    remote, local = FakeEngine(), LocalImages()
    images, sent = _remote_images(remote, local)
    assert images.ensure("default").tag == "containai:default"
    assert images.ensure("default").tag == "containai:default"
    assert sent == ["containai:default"]
    assert local.ensured == ["default", "default"]  # built (or found) on the local engine
    assert "build" not in remote.verbs()  # never built on the remote


def test_an_older_build_on_the_remote_is_replaced() -> None:
    remote, local = FakeEngine(), LocalImages("h2")
    remote.images.append(
        ImageInfo("sha256:old", "containai", "default", {"ai.containai.template-hash": "h1"})
    )
    images, sent = _remote_images(remote, local)
    images.ensure("default")
    assert sent == ["containai:default"]


def test_the_gateway_image_travels_too() -> None:
    remote, local = FakeEngine(), LocalImages()
    images, sent = _remote_images(remote, local)
    assert images.ensure_gateway() == "containai-gateway:g1"
    images.ensure_gateway()
    assert sent == ["containai-gateway:g1"]


# ----------------------------------------------------------------- workspace
class FakeCopier:
    def __init__(self, git: bool = True, missing: tuple[str, ...] = ()) -> None:
        self.git = git
        self.missing = missing
        self.archives: list[tuple[str, int, int]] = []
        self.remotes: list[tuple[str, str, str]] = []

    def write_archive(self, workspace: str, dest: Path, uid: int, gid: int) -> int:
        self.archives.append((workspace, uid, gid))
        dest.write_bytes(b"tar")
        return 3

    def ensure_git_remote(self, workspace: str, name: str, url: str) -> str:
        self.remotes.append((workspace, name, url))
        return "added"

    def has_git(self, workspace: str) -> bool:
        return self.git

    def missing_commits(self, workspace: str, shas: list[str]) -> list[str]:
        return [s for s in shas if s in self.missing]


def _placement(engine: FakeEngine, copier: FakeCopier, tmp: Path) -> RemoteWorkspace:
    return RemoteWorkspace(engine, copier, "far", "me@far", tmp)


def test_workspace_is_a_labelled_volume_at_its_own_path_filled_once(tmp_path: Path) -> None:
    engine, copier = FakeEngine(), FakeCopier()
    placement = _placement(engine, copier, tmp_path)
    assert placement.mounts("app-main", WS) == [Mount("volume", "app-main-ws", WS)]
    labels = engine.volumes["app-main-ws"].labels
    assert labels["containai.workspace"] == WS and labels["containai.managed"] == "true"
    engine.add(Box("app-main"))
    placement.after_create("app-main", WS, 1000, 1001, None)
    assert copier.archives == [(WS, 1000, 1001)]
    # into the workspace's parent: the archive's top member is the workspace directory
    assert engine.calls_of("copy_in_file") == [("copy_in_file", "app-main", "/src", b"tar")]
    assert list(tmp_path.iterdir()) == []  # the temporary archive is gone

    # a container made again (cai --fresh) keeps the copy the agent works on
    again = _placement(engine, copier, tmp_path)
    again.mounts("app-main", WS)
    again.after_create("app-main", WS, 1000, 1001, None)
    assert len(copier.archives) == 1


def test_a_workspace_volume_of_another_workspace_is_refused(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.volumes["app-main-ws"] = VolumeInfo("app-main-ws", {"containai.workspace": "/elsewhere"})
    with pytest.raises(Refused, match="/elsewhere"):
        _placement(engine, FakeCopier(), tmp_path).mounts("app-main", WS)


def test_the_ca_bundle_is_copied_not_mounted(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add(Box("app-main"))
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    _placement(engine, FakeCopier(), tmp_path / "t").after_create("app-main", WS, 1, 1, ca)
    assert engine.calls_of("copy_in") == [("copy_in", "app-main", "/")]


def test_link_adds_the_git_remote_and_only_in_a_repository(tmp_path: Path) -> None:
    copier = FakeCopier()
    _placement(FakeEngine(), copier, tmp_path).link("app-main", WS)
    assert copier.remotes == [(WS, "cai-app-main", "cai-app-main:/src/app")]
    assert _placement(FakeEngine(), FakeCopier(git=False), tmp_path).link("x", WS) is None


def _git_in_container(refs: str, status: str) -> FakeEngine:
    engine = FakeEngine()
    engine.add(Box("app-main", "running"))

    def handler(name: str, command: object, stdin: object) -> CommandResult:
        text = " ".join(command)  # type: ignore[call-overload]
        return CommandResult(0, refs if "for-each-ref" in text else status, "")

    engine.exec_handler = handler
    return engine


def test_sync_push_refuses_to_lose_the_agents_commits(tmp_path: Path) -> None:
    engine = _git_in_container(f"{'a' * 40}\n{'b' * 40}\n", "")
    copier = FakeCopier(missing=("b" * 40,))
    with pytest.raises(Failed, match="git fetch cai-app-main"):
        _placement(engine, copier, tmp_path).push("app-main", WS, "agent", 1, 1, force=False)
    assert copier.archives == []
    assert _placement(engine, copier, tmp_path).push("app-main", WS, "agent", 1, 1, force=True)


def test_sync_push_never_hands_the_containers_words_to_local_git(tmp_path: Path) -> None:
    engine = _git_in_container("--output=/etc/passwd\n", "")
    copier = FakeCopier()
    with pytest.raises(Failed, match="not a git object name"):
        _placement(engine, copier, tmp_path).push("app-main", WS, "agent", 1, 1, force=False)


def test_sync_push_refuses_to_lose_uncommitted_changes(tmp_path: Path) -> None:
    engine = _git_in_container(f"{'a' * 40}\n", " M a.txt\n")
    with pytest.raises(Failed, match="uncommitted"):
        _placement(engine, FakeCopier(), tmp_path).push("app-main", WS, "agent", 1, 1, False)


def test_sync_push_sends_when_nothing_would_be_lost(tmp_path: Path) -> None:
    engine = _git_in_container(f"{'a' * 40}\n", "")
    copier = FakeCopier()
    assert _placement(engine, copier, tmp_path).push("app-main", WS, "agent", 7, 8, False) == 3
    assert copier.archives == [(WS, 7, 8)]


def test_sync_push_needs_a_running_container(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add(Box("app-main", "exited"))
    with pytest.raises(Failed, match="cai run --detached"):
        _placement(engine, FakeCopier(), tmp_path).push("app-main", WS, "agent", 1, 1, False)


# ------------------------------------------------------- the archive, real git
def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(tmp),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }


def _repo(tmp: Path) -> tuple[Path, dict[str, str]]:
    env = _env(tmp)
    repo = tmp / "my repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "main.py").write_text("print(1)\n")
    (repo / ".gitignore").write_text("*.log\nbuild/\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=env, check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], env=env, check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "one"], env=env, check=True)
    (repo / "notes.txt").write_text("untracked, not ignored\n")
    (repo / "debug.log").write_text("ignored\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("ignored\n")
    (repo / "link").symlink_to("/etc/passwd")
    (repo / "src" / "tool.sh").write_text("#!/bin/sh\n")
    (repo / "src" / "tool.sh").chmod(0o4755)  # setuid: never travels
    return repo, env


def test_archive_holds_tracked_untracked_and_history_not_ignored(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path)
    buf = io.BytesIO()
    count = write_archive(repo, buf, 1234, 1235, env)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    names = set(members)
    assert {"my repo", "my repo/src", "my repo/src/main.py", "my repo/notes.txt"} <= names
    assert "my repo/.git/HEAD" in names and "my repo/.git/objects" in names
    assert not {"my repo/debug.log", "my repo/build", "my repo/build/out.bin"} & names
    assert members["my repo/link"].issym() and members["my repo/link"].linkname == "/etc/passwd"
    assert all((m.uid, m.gid) == (1234, 1235) for m in members.values())
    assert members["my repo/src/tool.sh"].mode & 0o6000 == 0
    assert count == len(members)
    order = list(members)
    assert order.index("my repo/src") < order.index("my repo/src/main.py")


def test_outside_git_every_file_travels(tmp_path: Path) -> None:
    top = tmp_path / "plain"
    (top / "a").mkdir(parents=True)
    (top / "a" / "x.log").write_text("x")
    buf = io.BytesIO()
    write_archive(top, buf, 1, 1, _env(tmp_path))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert {"plain", "plain/a", "plain/a/x.log"} == set(tar.getnames())


def test_a_worktree_is_refused(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path)
    wt = tmp_path / "wt"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", str(wt)], env=env, check=True)
    with pytest.raises(Failed, match="worktree"):
        write_archive(wt, io.BytesIO(), 1, 1, env)


def test_git_remote_is_added_kept_and_never_steals_a_users_remote(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path)
    assert ensure_git_remote(repo, "cai-app", "cai-app:/x", env) == "added"
    assert ensure_git_remote(repo, "cai-app", "cai-app:/x", env) == "kept"
    assert ensure_git_remote(repo, "cai-app", "cai-app:/y", env) == "updated"
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "cai-mine", "git@example.com:a/b"],
        env=env,
        check=True,
    )
    with pytest.raises(Failed, match="did not add"):
        ensure_git_remote(repo, "cai-mine", "cai-mine:/x", env)
    url = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "cai-mine"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert url == "git@example.com:a/b"


def test_copier_finds_missing_commits(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    copier = WorkspaceCopier(env)
    assert copier.missing_commits(str(repo), [head, "0" * 40]) == ["0" * 40]


# ------------------------------------------------------- contexts and cleanup
def test_cleanup_judges_only_the_entries_of_the_selected_context() -> None:
    from containai.services.remote import OfContext
    from containai.services.ssh_cleanup import ssh_cleanup

    contexts = {"far": "remote"}
    local = FakeSsh(names={"far", "near", "gone"}, contexts=contexts)
    engine = FakeEngine()
    engine.add(Box("near"))
    assert ssh_cleanup(engine, OfContext(local, None), dry_run=False) == ["gone"]
    assert local.removed == ["gone"]  # "far" lives on another engine: not judged here
    remote = FakeSsh(names={"far", "near"}, contexts=contexts)
    assert ssh_cleanup(FakeEngine(), OfContext(remote, "remote"), dry_run=True) == ["far"]


def test_all_contexts_lists_each_and_names_the_ones_that_do_not_answer() -> None:
    from containai.domain.errors import EngineUnreachable
    from containai.services.contexts import list_all_contexts

    managed = {"containai.managed": "true", "containai.workspace": WS}
    here, there, off = FakeEngine(), FakeEngine(), FakeEngine(up=False)
    here.add(Box("b-main", "running", managed))
    there.add(Box("a-main", "exited", managed))
    engines = {"default": here, "remote": there, "off": off}
    found = list_all_contexts(["default", "remote", "off"], engines.__getitem__)
    assert [(ctx, item.name) for ctx, item in found.rows] == [
        ("default", "b-main"),
        ("remote", "a-main"),
    ]
    assert [ctx for ctx, _why in found.unreachable] == ["off"]
    assert issubclass(EngineUnreachable, Exception)


def test_all_contexts_has_a_time_budget() -> None:
    import threading

    from containai.services.contexts import list_all_contexts

    slow = FakeEngine(hang=threading.Event())
    found = list_all_contexts(["slow"], lambda _ctx: slow, budget=0.2)
    assert found.unreachable == [("slow", "no answer within 0 s")]
    slow.hang.set()  # type: ignore[union-attr]


def test_the_table_gets_a_context_column() -> None:
    from containai.cli.commands.list_ import render_table
    from containai.services.inventory import Listed

    item = Listed("a-main", "running", WS, 2300, "v", "img", "runsc", None, 5, False)
    text = render_table([item], tty=False, contexts=["remote"])
    header, row = text.splitlines()
    assert header.split()[:2] == ["CONTEXT", "NAME"]
    assert row.split()[:2] == ["remote", "a-main"]


def test_doctor_says_when_the_engine_is_another_machine() -> None:
    from containai.services.remote import doctor_check

    assert doctor_check("default", "unix:///var/run/docker.sock") is None
    assert doctor_check("default", "") is None
    far = doctor_check("far", "ssh://me@box")
    assert far is not None and far.status == "OK" and "me@box" in far.detail
    tcp = doctor_check("tcp", "tcp://10.0.0.5:2376")
    assert tcp is not None and tcp.status == "FAIL" and tcp.fix
    bad = doctor_check("bad", "ssh://a b")
    assert bad is not None and bad.status == "FAIL"


def test_all_contexts_when_no_engine_answers_is_exit_3(tmp_path: Path) -> None:
    """`cai list --all-contexts` with every context unreachable is SPEC 2's exit 3 (an
    empty listing would read as "no containers")."""
    import subprocess
    import sys

    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    res = subprocess.run(
        [sys.executable, "-m", "containai", "list", "--all-contexts"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("cai: error: no Docker context answered")
