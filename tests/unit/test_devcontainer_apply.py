"""devcontainer.json applied (services/devcontainer.py, domain/devcontainer_run.py), from a
hostile repository's side first: nothing of the file reaches sshd's configuration as a
directive, lifecycle commands never run as root, the image/build waits for trust, and
a repository's containerEnv cannot name the agent's uid."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from containai.domain import devcontainer as D
from containai.domain import devcontainer_run as R
from containai.domain.engine_objects import CommandResult, ImageInfo
from containai.domain.errors import Failed
from containai.services.devcontainer import BASE_LABEL, DIGEST_LABEL, Devcontainers, forward_ports
from containai.services.images import Images
from containai.services.run_request import ImageRef
from tests.fakes import Box, FakeEngine

WS = "/w"
SRC = f"{WS}/.devcontainer/devcontainer.json"
AGENT_ENV = {"CAI_UID": "1000", "CAI_GID": "1000", "CAI_WORKSPACE": WS, "PATH": "/usr/bin"}


class Source:
    def __init__(self, doc: dict[str, Any] | None, dockerfile: bytes | None = None) -> None:
        self.doc = doc
        self.dockerfile = dockerfile
        self.loads = 0

    def load(self, workspace: str) -> D.Loaded | None:
        self.loads += 1
        if self.doc is None:
            return None
        spec = D.interpret(self.doc, source=SRC, workspace=workspace)
        data = json.dumps(self.doc).encode()
        return D.Loaded(SRC, D.trust_digest(data, self.dockerfile), spec, self.dockerfile)

    def path(self, workspace: str) -> Path | None:
        return None if self.doc is None else Path(SRC)

    def snapshot_context(self, workspace: str, context: str, dest: Path) -> Path:
        dest.mkdir()
        return dest

    def digest(self) -> str:
        loaded = self.load(WS)
        assert loaded is not None
        return loaded.digest


def hooks(
    doc: dict[str, Any] | None,
    engine: FakeEngine | None = None,
    *,
    trusted: bool = False,
    dockerfile: bytes | None = None,
    images: Images | None = None,
    enabled: bool = True,
) -> tuple[Devcontainers, FakeEngine, list[str]]:
    engine = engine or FakeEngine()
    source = Source(doc, dockerfile)
    digests = {SRC: source.digest()} if trusted and doc is not None else {}
    warnings: list[str] = []
    dc = Devcontainers(
        engine,
        source,
        lambda: digests,
        enabled=enabled,
        images=images,
        warn=warnings.append,
    )
    return dc, engine, warnings


def default_image() -> ImageRef:
    return ImageRef("containai:default", "default", "h" * 16)


# ------------------------------------------------------------------ remoteEnv into sshd
@pytest.mark.parametrize(
    "value",
    [
        "x\nPermitRootLogin yes",
        "x\r\nAuthorizedKeysFile /w/keys",
        'x" "LD_PRELOAD=/w/evil.so',
        "x\\",
        "a\0b",
    ],
)
def test_remote_env_values_never_become_sshd_directives(value: str) -> None:
    data, warnings = R.render_remote_env(SRC, {"GOOD": "1", "EVIL": value})
    assert data == b"GOOD=1\n"
    assert len(warnings) == 1 and "EVIL" in warnings[0] and "\n" not in warnings[0]


@pytest.mark.parametrize(
    "name", ["HOME", "USER", "SHELL", "SSH_AUTH_SOCK", "CAI_UID", "CONTAINAI_X", "A B", "1X", ""]
)
def test_remote_env_names_sshd_or_cai_own_are_refused(name: str) -> None:
    data, warnings = R.render_remote_env(SRC, {name: "v"})
    assert data == b""
    assert len(warnings) == 1


def test_remote_env_null_unsets() -> None:
    data, warnings = R.render_remote_env(SRC, {"A": None, "B": ""})
    assert data == b"-A\nB=\n" and warnings == []


def test_container_env_cannot_set_the_agent_uid() -> None:
    doc = {"containerEnv": {"CAI_UID": "0", "CAI_GID": "0", "CAI_USER": "root", "OK": "1"}}
    dc, _engine, warnings = hooks(doc)
    assert dc.container_env(WS) == {"OK": "1"}
    assert sum("CAI_" in w for w in warnings) == 3


# ------------------------------------------------------------------ never root
def lifecycle_engine(env: dict[str, str], rc: int = 0) -> FakeEngine:
    def handler(name: str, command: Sequence[str], _input: str | None) -> CommandResult:
        if command[:2] == ["/bin/sh", "-c"] and "cai-devcontainer" in command:
            return CommandResult(rc, "line 1\nline 2\n" if rc else "", "")
        return CommandResult(0, "", "")

    engine = FakeEngine(exec_handler=handler)
    engine.add(Box("c", state="running", env=env))
    return engine


def test_lifecycle_commands_run_as_the_agent_uid_only() -> None:
    doc = {"postCreateCommand": "id", "postStartCommand": ["true"]}
    dc, engine, _ = hooks(doc, lifecycle_engine(AGENT_ENV))
    dc.started("c", WS)
    users = [user for _name, user in engine.exec_users]
    commands = [c[2:] for c in engine.calls_of("exec")]
    ran = [u for u, c in zip(users, commands, strict=True) if "cai-devcontainer" in c]
    assert ran == ["1000:1000", "1000:1000"]
    # root only for the marker, a fixed command of cai's with nothing of the file in it
    root = [c for u, c in zip(users, commands, strict=True) if u == "0"]
    assert root == [
        ("sh", "-c", f"mkdir -p /var/lib/containai && mkdir {R.POST_CREATE_MARKER} 2>/dev/null")
    ]


@pytest.mark.parametrize("uid", ["0", "", "abc"])
def test_no_lifecycle_command_without_an_unprivileged_agent(uid: str) -> None:
    dc, engine, _ = hooks(
        {"postStartCommand": "id"}, lifecycle_engine({**AGENT_ENV, "CAI_UID": uid})
    )
    with pytest.raises(Failed, match="only as the agent"):
        dc.started("c", WS)
    assert not any("cai-devcontainer" in c for c in engine.calls_of("exec"))


def test_post_create_runs_once_per_container() -> None:
    made: set[str] = set()

    def handler(name: str, command: Sequence[str], _input: str | None) -> CommandResult:
        if command[0] == "sh" and "mkdir" in command[2]:
            first = name not in made
            made.add(name)
            return CommandResult(0 if first else 1, "", "")
        return CommandResult(0, "", "")

    engine = FakeEngine(exec_handler=handler)
    engine.add(Box("c", state="running", env=AGENT_ENV))
    dc, _, _ = hooks({"postCreateCommand": "touch x", "postStartCommand": "date"}, engine)
    dc.started("c", WS)
    dc.started("c", WS)
    stages = [c[6] for c in engine.calls_of("exec") if "cai-devcontainer" in c]
    assert stages == ["postCreateCommand", "postStartCommand", "postStartCommand"]


def test_failure_names_the_stage_exit_code_and_last_lines() -> None:
    dc, _engine, _ = hooks({"postCreateCommand": "npm ci"}, lifecycle_engine(AGENT_ENV, rc=3))
    with pytest.raises(Failed) as info:
        dc.started("c", WS)
    message = str(info.value)
    assert "postCreateCommand" in message and "exit 3" in message and "line 2" in message
    assert "kept" in message and R.LOG_PATH in message and info.value.exit_code == 1


def test_object_form_runs_each_command() -> None:
    doc = {"postStartCommand": {"a": "echo a", "b": ["echo", "b"]}}
    dc, engine, _ = hooks(doc, lifecycle_engine(AGENT_ENV))
    dc.started("c", WS)
    runs = [c for c in engine.calls_of("exec") if "cai-devcontainer" in c]
    assert sorted(tuple(c[9:]) for c in runs) == [
        ("/bin/sh", "-c", "echo a"),
        ("echo", "b"),
    ]


# ------------------------------------------------------------------ image after trust
def images_for(engine: FakeEngine, tmp_path: Path) -> Images:
    return Images(engine, user_templates=tmp_path / "templates", ca_bundle=None)


def test_untrusted_image_is_not_applied(tmp_path: Path) -> None:
    engine = FakeEngine(images=[ImageInfo("sha256:x", "evil", "1")])
    dc, engine, warnings = hooks({"image": "evil:1"}, engine, images=images_for(engine, tmp_path))
    assert dc.image(WS, "default", default_image) == default_image()
    assert not engine.calls_of("build") and not engine.calls_of("pull")
    assert any("not trusted" in w and "cai trust" in w for w in warnings)


def test_untrusted_build_is_never_built(tmp_path: Path) -> None:
    doc = {"build": {"dockerfile": "Dockerfile"}}
    engine = FakeEngine()
    dc, engine, warnings = hooks(
        doc, engine, dockerfile=b"FROM x\nRUN evil\n", images=images_for(engine, tmp_path)
    )
    assert dc.image(WS, "default", default_image) == default_image()
    assert not engine.calls_of("build")
    assert any("build not applied" in w for w in warnings)


def test_trusted_image_is_the_base_under_cai_layers(tmp_path: Path) -> None:
    engine = FakeEngine(images=[ImageInfo("sha256:mine", "mine", "1")])
    dc, engine, _ = hooks(
        {"image": "mine:1"}, engine, trusted=True, images=images_for(engine, tmp_path)
    )
    ref = dc.image(WS, "default", default_image)
    assert ref.tag.startswith("containai:default-devcontainer-")
    assert ref.template == "default"
    built = [c[1] for c in engine.calls_of("build")]
    assert built == [f"containai-template:default-{ref.template_hash}", ref.tag]
    assert ref.tag == f"containai:default-devcontainer-{ref.template_hash}"
    assert dc.labels(WS, ref)[BASE_LABEL] == "mine:1"


def test_trusted_image_missing_is_a_clear_error(tmp_path: Path) -> None:
    engine = FakeEngine()
    dc, _, _ = hooks(
        {"image": "nosuch:1"}, engine, trusted=True, images=images_for(engine, tmp_path)
    )
    with pytest.raises(Failed, match="'nosuch:1' is not on the engine") as info:
        dc.image(WS, "default", default_image)
    assert "\n" not in str(info.value)


def test_a_changed_file_is_untrusted_again(tmp_path: Path) -> None:
    engine = FakeEngine(images=[ImageInfo("sha256:mine", "mine", "1")])
    source = Source({"image": "mine:1"})
    digests = {SRC: source.digest()}
    source.doc = {"image": "mine:1", "containerEnv": {"A": "1"}}
    dc = Devcontainers(engine, source, lambda: digests, images=images_for(engine, tmp_path))
    assert dc.image(WS, "default", default_image) == default_image()


def test_turned_off_reads_nothing() -> None:
    dc, _engine, warnings = hooks(
        {"runArgs": ["--privileged"], "forwardPorts": [3000]}, enabled=False
    )
    assert dc.spec(WS) is None and dc.container_env(WS) == {} and warnings == []
    assert forward_ports(Source({"forwardPorts": [3000]}), WS, enabled=False) == []


def test_not_applied_keys_warn_once_each() -> None:
    doc = {
        "runArgs": ["--privileged"],
        "privileged": True,
        "capAdd": ["SYS_ADMIN"],
        "mounts": ["a"],
    }
    dc, _engine, warnings = hooks(doc)
    dc.spec(WS)
    dc.container_env(WS)
    assert len(warnings) == 4
    assert any(w.startswith(f"{SRC}: runArgs") and "not applied" in w for w in warnings)


def test_forward_ports_for_cai_forward() -> None:
    assert forward_ports(Source({"forwardPorts": [3000, "8080", "db:5432"]}), WS) == [3000, 8080]
    assert forward_ports(Source(None), WS) == []


def test_prepare_writes_remote_env_with_container_values() -> None:
    engine = FakeEngine()
    engine.add(Box("c", env={"PATH": "/usr/bin"}))
    doc = {"remoteEnv": {"PATH": "${containerEnv:PATH}:/opt/x", "GONE": None}}
    dc, engine, _ = hooks(doc, engine)
    dc.prepare("c", WS)
    assert engine.calls_of("copy_in") == [("copy_in", "c", "/")]
    import io
    import tarfile

    data = engine.copied[0][2]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
        text = {k: f.read().decode() for k, f in files.items() if f is not None}
    assert list(text) == ["etc/containai/remote-env"], text
    lines = text["etc/containai/remote-env"].splitlines()
    assert "PATH=/usr/bin:/opt/x" in lines  # ${containerEnv:PATH} expanded
    assert not any(line.startswith("GONE=") for line in lines)  # null: kept out


def test_drift_of_the_file_is_warned(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add(Box("c", state="running", env=AGENT_ENV, labels={DIGEST_LABEL: "old"}))
    dc, _, warnings = hooks({"containerEnv": {"A": "1"}}, engine)
    dc.started("c", WS)
    assert any("changed since container 'c'" in w for w in warnings)


# ------------------------------------------------------------------ the runner, for real
def run_runner(tmp_path: Path, argv: list[str], remote: dict[str, str | None]) -> tuple[int, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "DROP": "x"}
    proc = subprocess.run(
        R.lifecycle_argv("postCreateCommand", argv, remote),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.returncode, proc.stdout


def test_runner_logs_output_and_keeps_the_exit_code(tmp_path: Path) -> None:
    script = "for i in $(seq 1 30); do echo out$i; done; echo err >&2; exit 7"
    rc, out = run_runner(tmp_path, ["/bin/sh", "-c", script], {})
    assert rc == 7
    assert out.splitlines() == [*(f"out{i}" for i in range(12, 31)), "err"]
    log = (tmp_path / "home" / ".containai" / "logs" / "devcontainer.log").read_text()
    assert "out1\n" in log and "err\n" in log and "postCreateCommand: exit 7" in log


def test_runner_applies_remote_env_without_a_shell(tmp_path: Path) -> None:
    rc, out = run_runner(
        tmp_path,
        ["/bin/sh", "-c", 'echo "$A|${DROP-unset}|$B"'],
        {"A": "$(id) `x`", "DROP": None, "B": "y"},
    )
    assert rc == 0 and out == "$(id) `x`|unset|y\n"


def test_runner_argv_is_not_reparsed(tmp_path: Path) -> None:
    rc, out = run_runner(tmp_path, ["echo", "a; touch pwned", "$HOME", "-n"], {})
    assert rc == 0 and out == "a; touch pwned $HOME -n\n"
    assert not (tmp_path / "home" / "pwned").exists()


def test_a_lone_surrogate_is_refused_not_a_traceback() -> None:
    from containai.adapters.devcontainer_file import parse
    from containai.domain.errors import ConfigError

    doc = parse(SRC, b'{"containerEnv": {"A": "\\ud800"}}')
    with pytest.raises(ConfigError, match="surrogate"):
        D.interpret(doc, source=SRC, workspace=WS)


def test_runner_output_to_cai_is_bounded(tmp_path: Path) -> None:
    """A lifecycle command (the repository's, untrusted) that prints megabytes without a
    newline hands cai on the host only the end of it; the log keeps it all."""
    rc, out = run_runner(tmp_path, ["/bin/sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"], {})
    assert rc == 0 and 0 < len(out) <= R.TAIL_BYTES
