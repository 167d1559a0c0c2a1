"""`cai status`, `cai list`, `cai gc` and `cai ssh cleanup` through the installed console
script against the real engine (SPEC sections 7, 10, 12).

The scenario of the issue: three stopped workspaces (one created with keep), one never
started, one running, and one unmanaged stopped container, each with a (fake) SSH entry
in the sandbox HOME. Read-only commands run against the whole shared engine and the
assertions look only at this test's containers. Commands that REMOVE (`gc` without
`--dry-run`) run with a `docker` on PATH that adds this test's scope label to every
`docker ps`, so they can never remove a container of another test or person on the
shared engine; every other docker call passes through unchanged.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Result, Sandbox, docker, new_volume_name
from tests.e2e.scoped_docker import scoped_env

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]

IMAGE = "containai-base:bookworm"
SCOPE_LABEL = "containai.test-scope"
STATUS_FIELDS = {
    "schema",
    "network",
    "container",
    "status",
    "image",
    "isolation",
    "ssh_alias",
    "ssh_port",
    "data_volume",
    "workspace",
    "uptime_seconds",
    "sessions",
    "resources",
    "forwards",  # cai forward's rows for the container (SPEC 17)
    "branch",  # the workspace's branch when the container was made (issue 16)
    "current_branch",
    "context",  # SPEC section 16: the engine it is on
}
LIST_FIELDS = {
    "name",
    "status",
    "workspace",
    "ssh_alias",
    "ssh_port",
    "data_volume",
    "image",
    "isolation",
    "runtime",
    "created",
    "age_seconds",
    "keep",
    "network",
}


@dataclass
class Scene:
    box: Sandbox
    prefix: str
    scope: str
    volume: str
    names: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)

    def name(self, short: str) -> str:
        return self.prefix + short

    def workspace(self, short: str) -> Path:
        ws = self.box.root / "ws" / short
        ws.mkdir(parents=True, exist_ok=True)
        return ws

    def make(
        self,
        short: str,
        state: str,
        *,
        managed: bool = True,
        keep: bool = False,
        image: str = IMAGE,
    ) -> str:
        name = self.name(short)
        labels = {
            "containai.managed": "true" if managed else "false",
            "containai.workspace": str(self.workspace(short)),
            "containai.ssh-port": "2498",
            "containai.data-volume": self.volume,
            "containai.runtime": "runc",
            "ai.containai.template": "default",
            SCOPE_LABEL: self.scope,
        }
        if keep:
            labels["containai.keep"] = "true"
        args = ["--name", name]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        args += ["--mount", f"type=volume,source={self.volume},target=/data"]
        args += ["--network", "none"]  # nothing here needs one; robust and fast
        if state == "running":
            proc = docker("run", "-d", *args, image, "sleep", "infinity")
        elif state == "exited":
            proc = docker("run", *args, image, "true")
        else:
            proc = docker("create", *args, image, "true")
        assert proc.returncode == 0, proc.stderr
        self.names[short] = name
        entry = self.box.home / ".ssh" / "containai.d" / f"{name}.conf"
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(f"Host cai-{name}\n  HostName 127.0.0.1\n  Port 2498\n")
        return name

    def entry(self, name: str) -> Path:
        return self.box.home / ".ssh" / "containai.d" / f"{name}.conf"

    def mine(self) -> set[str]:
        return set(self.names.values())

    def scoped_env(self) -> dict[str, str]:
        """PATH with a `docker` whose `ps` / `image ls` see only this scene's objects."""
        return scoped_env(
            self.box.root,
            self.box.env.get("PATH", ""),
            ps_filter=f"label={SCOPE_LABEL}={self.scope}",
            image_filter=f"reference=containai:cai-test-{self.scope}-*",
            label=SCOPE_LABEL,
            scope=self.scope,
        )

    def build_image(self, tag: str) -> str:
        """A distinct local image tagged ``tag`` (no registry: FROM the local base)."""
        dockerfile = f"FROM {IMAGE}\nLABEL cai.test={uuid.uuid4().hex}\n"
        proc = subprocess.run(
            ["docker", "build", "-q", "-t", tag, "-"],
            input=dockerfile,
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        self.images.append(tag)
        return tag


def exists(name: str) -> bool:
    return docker("container", "inspect", name).returncode == 0


@pytest.fixture
def scene(sandbox: Sandbox, engine: None) -> Iterator[Scene]:
    scope = uuid.uuid4().hex[:10]
    volume = new_volume_name()
    made = docker("volume", "create", "--label", f"containai.workspace={sandbox.root}", volume)
    assert made.returncode == 0, made.stderr
    s = Scene(sandbox, f"cai-e2e-{scope[:6]}-", scope, volume)
    specs: list[tuple[str, str, dict[str, bool]]] = [
        ("old1", "exited", {}),
        ("old2", "exited", {}),
        ("never", "created", {}),
        ("kept", "exited", {"keep": True}),
        ("run", "running", {}),
        ("unmanaged", "exited", {"managed": False}),
    ]
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        for future in [pool.submit(s.make, short, state, **kw) for short, state, kw in specs]:
            future.result()
    yield s
    docker("rm", "-f", *s.names.values())
    if s.images:
        docker("image", "rm", "-f", *s.images)
    docker("volume", "rm", "-f", volume)


ELIGIBLE = ("old1", "old2", "never")
NOT_ELIGIBLE = ("kept", "run", "unmanaged")


# ------------------------------------------------------------------------ list
def test_list_json_has_my_managed_containers_with_their_fields(scene: Scene) -> None:
    res = scene.box.cai("list", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert doc["schema"] == 1
    rows = {row["name"]: row for row in doc["containers"]}
    assert all(set(row) == LIST_FIELDS for row in rows.values())
    mine = {name for name in rows if name.startswith(scene.prefix)}
    assert mine == scene.mine() - {scene.name("unmanaged")}  # managed ones only
    run = rows[scene.name("run")]
    assert run["status"] == "running"
    assert run["workspace"] == str(scene.workspace("run"))
    assert run["ssh_alias"] == f"cai-{scene.name('run')}"
    assert run["ssh_port"] == 2498 and run["data_volume"] == scene.volume
    assert run["image"] == IMAGE and run["runtime"] == "runc"
    assert run["isolation"] == "runc (no extra isolation)"
    assert run["keep"] is False and isinstance(run["age_seconds"], int)
    assert 0 <= run["age_seconds"] < 600
    assert run["created"].endswith("Z")
    assert rows[scene.name("old1")]["status"] == "stopped"
    assert rows[scene.name("never")]["status"] == "created"
    assert rows[scene.name("kept")]["keep"] is True


def test_list_text_is_a_table_of_every_managed_container(scene: Scene) -> None:
    res = scene.box.cai("list")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATUS", "WORKSPACE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[scene.name("run")][1:3] == ["running", str(scene.workspace("run"))]
    assert rows[scene.name("kept")][-1] == "yes"
    assert rows[scene.name("old1")][1] == "stopped"
    assert scene.name("unmanaged") not in rows


# ---------------------------------------------------------------------- status
def test_status_json_of_a_running_container(scene: Scene) -> None:
    name = scene.name("run")
    start = time.monotonic()
    res = scene.box.cai("status", "--container", name, "--json")
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert set(doc) == STATUS_FIELDS and doc["schema"] == 1
    assert doc["container"] == name and doc["status"] == "running"
    assert doc["context"] == "default"  # the sandbox's only context
    assert doc["image"] == IMAGE
    assert doc["isolation"] == "runc (no extra isolation)"
    assert doc["ssh_alias"] == f"cai-{name}" and doc["ssh_port"] == 2498
    assert doc["data_volume"] == scene.volume
    assert doc["workspace"] == str(scene.workspace("run"))
    assert isinstance(doc["uptime_seconds"], int) and 0 <= doc["uptime_seconds"] < 600
    sessions = doc["sessions"]
    assert set(sessions) == {"ssh_connections", "active_terminals"}
    assert sessions == {"ssh_connections": 0, "active_terminals": 0}  # nobody is attached
    resources = doc["resources"]
    assert set(resources) == {"memory_bytes", "memory_limit_bytes", "cpu_percent"}
    assert isinstance(resources["memory_bytes"], int) and resources["memory_bytes"] > 0
    assert isinstance(resources["memory_limit_bytes"], int)
    assert resources["memory_limit_bytes"] >= resources["memory_bytes"]
    assert isinstance(resources["cpu_percent"], float) and resources["cpu_percent"] >= 0
    assert elapsed < 8, f"status took {elapsed:.1f} s (budget: 5 s for the probes)"


def test_status_text_of_a_running_container(scene: Scene) -> None:
    name = scene.name("run")
    res = scene.box.cai("status", "--container", name)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"Container: {name}"
    assert lines[1] == "  Status: running"
    assert lines[2].startswith("  Uptime: ")
    assert lines[3:7] == [
        f"  Image: {IMAGE}",
        "  Isolation: runc (no extra isolation)",
        f"  SSH: ssh cai-{name}",
        f"  Volume: {scene.volume}",
    ]
    assert "  Sessions (best-effort):" in lines and "    SSH connections: 0" in lines
    assert "  Resource Usage:" in lines
    assert any(line.startswith("    Memory: ") for line in lines)
    assert any(line.startswith("    CPU: ") and line.endswith("%") for line in lines)


def test_status_of_a_stopped_container_shows_required_fields_only(scene: Scene) -> None:
    name = scene.name("old1")
    res = scene.box.cai("status", "--container", name)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"Container: {name}",
        "  Status: stopped",
        f"  Image: {IMAGE}",
        "  Isolation: runc (no extra isolation)",
        f"  SSH: ssh cai-{name}",
        f"  Volume: {scene.volume}",
        "  Network: open (made before egress policies: `cai --fresh` moves it behind the gateway)",
    ]
    doc = scene.box.cai("status", "--container", name, "--json").json
    assert doc["uptime_seconds"] is None
    assert doc["sessions"] == {"ssh_connections": None, "active_terminals": None}
    assert set(doc["resources"].values()) == {None}


def test_status_finds_the_workspace_container_by_label(scene: Scene) -> None:
    res = scene.box.cai("status", "-w", str(scene.workspace("run")), "--json")
    assert res.returncode == 0, res.stderr
    assert res.json["container"] == scene.name("run")


def test_status_of_a_missing_container_is_exit_4_naming_it(scene: Scene) -> None:
    missing = scene.name("nosuch")
    res = scene.box.cai("status", "--container", missing)
    assert res.returncode == 4
    assert res.stdout == ""
    assert res.stderr.startswith("cai: error: ") and f"'{missing}'" in res.stderr


def test_status_of_an_unmanaged_container_is_exit_5(scene: Scene) -> None:
    res = scene.box.cai("status", "--container", scene.name("unmanaged"))
    assert res.returncode == 5
    assert scene.name("unmanaged") in res.stderr and "not managed" in res.stderr


# -------------------------------------------------------------------------- gc
def test_gc_dry_run_lists_exactly_the_eligible_and_removes_nothing(scene: Scene) -> None:
    res = scene.box.cai("gc", "--dry-run", "--age", "0s", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert doc["schema"] == 1 and doc["dry_run"] is True and doc["age"] == "0s"
    removed = {r["name"] for r in doc["removed"] if r["name"].startswith(scene.prefix)}
    assert removed == {scene.name(s) for s in ELIGIBLE}
    for row in doc["removed"]:
        assert set(row) >= {"name", "state", "age_seconds", "workspace"}
    spared = {s["name"]: s["reason"] for s in doc["spared"]}
    assert spared[scene.name("run")] == "running"
    assert spared[scene.name("kept")].startswith("kept")
    assert scene.name("unmanaged") not in spared
    assert all(exists(n) for n in scene.mine())
    assert all(scene.entry(n).exists() for n in scene.mine())

    text = scene.box.cai("gc", "--dry-run", "--age", "0s")
    assert text.returncode == 0, text.stderr
    mine = [line for line in text.stdout.splitlines() if scene.prefix in line]
    assert sorted(line.split()[2] for line in mine) == sorted(scene.name(s) for s in ELIGIBLE)
    assert all(line.startswith("would remove ") for line in mine)
    assert all(exists(n) for n in scene.mine())


def test_gc_age_spares_young_containers(scene: Scene) -> None:
    res = scene.box.cai("gc", "--dry-run", "--age", "1h", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert not [r for r in doc["removed"] if r["name"].startswith(scene.prefix)]
    spared = {s["name"]: s["reason"] for s in doc["spared"]}
    for short in ELIGIBLE:
        assert spared[scene.name(short)].startswith("too young"), spared[scene.name(short)]


def test_gc_without_a_tty_or_force_is_exit_6_and_removes_nothing(scene: Scene) -> None:
    res = scene.box.cai("gc", "--age", "0s", env=scene.scoped_env())  # stdin is a pipe
    assert res.returncode == 6
    assert "--force" in res.stderr and res.stderr.startswith("cai: error: ")
    assert res.stdout == ""
    assert all(exists(n) for n in scene.mine())
    assert all(scene.entry(n).exists() for n in scene.mine())


def test_gc_force_removes_exactly_the_eligible_and_their_ssh_entries(scene: Scene) -> None:
    res = scene.box.cai("gc", "--force", "--age", "0s", "--json", env=scene.scoped_env())
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert doc["dry_run"] is False
    removed = {r["name"] for r in doc["removed"]}
    assert removed == {scene.name(s) for s in ELIGIBLE}  # and nothing of anybody else
    for short in ELIGIBLE:
        assert not exists(scene.name(short))
        assert not scene.entry(scene.name(short)).exists()
    for short in NOT_ELIGIBLE:
        assert exists(scene.name(short))
        assert scene.entry(scene.name(short)).exists()
    assert docker("volume", "inspect", scene.volume).returncode == 0  # never a volume


def test_gc_text_mode_prints_one_line_per_removed_and_nothing_when_none(scene: Scene) -> None:
    env = scene.scoped_env()
    res = scene.box.cai("gc", "--force", "--age", "0s", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # removals are state changes: stderr (SPEC section 2)
    lines = res.stderr.splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(scene.name(s) for s in ELIGIBLE)
    assert all(line.startswith("removed ") for line in lines)
    again = scene.box.cai("gc", "--force", "--age", "0s", env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    dry = scene.box.cai("gc", "--dry-run", "--age", "0s", env=env)
    assert (dry.returncode, dry.stdout, dry.stderr) == (0, "", "nothing to remove\n")


@pytest.mark.parametrize("age", ["7x", "-1d", "1.5h", "d", "abc", ""])
def test_gc_bad_age_is_exit_2(sandbox: Sandbox, age: str) -> None:
    res = sandbox.cai("gc", "--dry-run", f"--age={age}")
    assert res.returncode == 2
    assert res.stderr.startswith("cai: error: ") and "age" in res.stderr
    assert res.stdout == ""


def run_on_a_tty(box: Sandbox, args: list[str], answer: str, env: dict[str, str]) -> Result:
    """Run cai with stdin and stderr on a pseudo-terminal, answer the question."""
    from tests.conftest import CAI

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [CAI, *args],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=box.root,
        env={**box.env, **env},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                seen += os.read(leader, 4096)
            except OSError:
                break
    os.write(leader, answer.encode() + b"\n")
    out, _ = proc.communicate(timeout=120)
    with_rest = seen
    try:
        while select.select([leader], [], [], 0.2)[0]:
            chunk = os.read(leader, 4096)
            if not chunk:
                break
            with_rest += chunk
    except OSError:
        pass
    os.close(leader)
    return Result(proc.returncode, out.decode(), with_rest.decode(errors="replace"))


def test_gc_asks_on_a_tty_and_no_keeps_everything(scene: Scene) -> None:
    res = run_on_a_tty(scene.box, ["gc", "--age", "0s"], "n", scene.scoped_env())
    assert res.returncode == 1, res.stderr
    assert "[y/N]" in res.stderr
    for short in ELIGIBLE:
        assert scene.name(short) in res.stderr  # listed before the question
    assert all(exists(n) for n in scene.mine())


def test_gc_asks_on_a_tty_and_yes_removes(scene: Scene) -> None:
    res = run_on_a_tty(scene.box, ["gc", "--age", "0s"], "y", scene.scoped_env())
    assert res.returncode == 0, res.stderr
    assert not any(exists(scene.name(s)) for s in ELIGIBLE)
    assert all(exists(scene.name(s)) for s in NOT_ELIGIBLE)


def test_gc_images_dry_run_lists_unused_cai_images_only(scene: Scene) -> None:
    tag = f"containai:cai-test-{scene.scope}"
    unused = scene.build_image(f"{tag}-unused")
    used = scene.build_image(f"{tag}-used")
    scene.make("user", "exited", keep=True, image=used)
    other = f"cai-test-notours-{scene.scope}:x"
    scene.build_image(other)
    res = scene.box.cai("gc", "--dry-run", "--images", "--age", "0s", "--json")
    assert res.returncode == 0, res.stderr
    refs = {i["reference"] for i in res.json["images"]}
    assert unused in refs
    assert used not in refs and other not in refs
    images = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert unused in images  # dry run: still there


def test_gc_images_force_removes_unused_cai_images_and_keeps_used_ones(scene: Scene) -> None:
    # Scoped: `docker ps` and `docker image ls` see only this test's containers and
    # images, so no image of anybody else can go.
    tag = f"containai:cai-test-{scene.scope}"
    unused = scene.build_image(f"{tag}-unused")
    used = scene.build_image(f"{tag}-used")
    scene.make("user", "exited", keep=True, image=used)
    res = scene.box.cai(
        "gc", "--force", "--images", "--age", "0s", "--json", env=scene.scoped_env()
    )
    assert res.returncode == 0, res.stderr
    assert [i["reference"] for i in res.json["images"]] == [unused]
    assert docker("image", "inspect", unused).returncode != 0
    assert docker("image", "inspect", used).returncode == 0
    assert exists(scene.name("user"))


# ------------------------------------------------------------------ ssh cleanup
def test_ssh_cleanup_removes_entries_of_containers_that_do_not_exist(scene: Scene) -> None:
    gone = scene.name("gone")
    scene.entry(gone).write_text(f"Host cai-{gone}\n")
    dry = scene.box.cai("ssh", "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert gone in dry.stdout
    assert not any(n in dry.stdout for n in scene.mine())
    assert scene.entry(gone).exists()
    res = scene.box.cai("ssh", "cleanup")
    assert res.returncode == 0, res.stderr
    assert not scene.entry(gone).exists()
    assert all(scene.entry(n).exists() for n in scene.mine())  # unmanaged ones count too
