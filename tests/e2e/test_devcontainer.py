"""devcontainer.json (SPEC 18) against the real engine, with files in the shapes public
projects use: JSON with comments and trailing commas, a Dockerfile with build args
``FROM`` the local base image, an image-only file, lifecycle commands in all three
forms. Builds stay cheap: a bare user template on the local ``containai:default``."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker, sweep
from tests.e2e.test_forward_logs import wait_page

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture(autouse=True)
def _remove_own_images(sandbox: Sandbox) -> Iterator[None]:
    """The images these tests build (template "bare", the workspace's devcontainer
    build) go with them, after their containers."""
    yield
    sweep(sandbox.root)
    ws = str(sandbox.root / "ws" / "dcapp")
    own = [f"containai:devcontainer-{hashlib.sha256(ws.encode()).hexdigest()[:16]}"]
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    own += [r for r in listed if r.startswith(("containai:bare", "containai-template:bare"))]
    docker("rmi", *own)


BASE = "containai:default"

CHECKED_BY = """\
// From the shape of a typical project: a Dockerfile with build args, env, lifecycle.
{
  "name": "app",
  "build": {
    "dockerfile": "Dockerfile",
    "context": "..",
    "args": { "GREETING": "hello-from-build", },  // trailing comma, as people write
  },
  /* env for every process, and for sessions only */
  "containerEnv": { "DC_CONTAINER": "from-container-env", "BASH_ENV": "/w/evil.sh" },
  "remoteEnv": { "DC_REMOTE": "from-remote-env", "EVIL": "x\\nPermitRootLogin yes" },
  "postCreateCommand": "echo created >> /tmp/post-create.txt && id -u > /tmp/post-create-uid",
  "postStartCommand": ["sh", "-c", "date >> /tmp/post-start.txt"],
  "forwardPorts": [3000],
  "runArgs": ["--privileged"],
}
"""

DOCKERFILE = """\
ARG BASE=containai:default
FROM ${BASE}
ARG GREETING=none
RUN echo "$GREETING" > /etc/dc-greeting
COPY . /etc/dc-context/
"""


def setup_home(sandbox: Sandbox) -> None:
    """A bare user template on the local default image: cai's layers only."""
    if docker("image", "inspect", BASE).returncode != 0:
        assert sandbox.cai("image", "build").returncode == 0
    templates = sandbox.home / ".config" / "containai" / "templates" / "bare"
    templates.mkdir(parents=True)
    (templates / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    config = sandbox.home / ".config" / "containai" / "config.toml"
    config.write_text(f'template = "bare"\n[image]\nbase = "{BASE}"\n')


def make_ws(sandbox: Sandbox, doc: str, dockerfile: str | None = None) -> Path:
    ws = sandbox.workspace("dcapp")
    (ws / ".devcontainer").mkdir()
    (ws / ".devcontainer" / "devcontainer.json").write_text(doc)
    if dockerfile is not None:
        (ws / ".devcontainer" / "Dockerfile").write_text(dockerfile)
    return ws


def container_of(sandbox: Sandbox, ws: Path) -> str:
    res = sandbox.cai("status", "--json", cwd=ws)
    assert res.returncode == 0, res.stderr
    return str(res.json["container"])


def in_container(sandbox: Sandbox, ws: Path, script: str) -> str:
    res = sandbox.cai("exec", "--", "sh", "-c", script, cwd=ws)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_checked_by_dockerfile_env_post_create_and_refusals(sandbox: Sandbox) -> None:
    setup_home(sandbox)
    ws = make_ws(sandbox, CHECKED_BY, DOCKERFILE)
    # The build context (the workspace): a file of the repository reaches the image; a
    # link out of it is sent as a link, never the host file it names.
    (ws / "app.txt").write_text("from-the-context\n")
    secret = sandbox.root / "host-secret.txt"
    secret.write_text("host-only\n")
    (ws / "leak").symlink_to(secret)

    # Untrusted: env, lifecycle commands and ports apply; the build does not.
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    err = res.stderr
    assert "runArgs" in err and "not applied" in err
    assert "build not applied" in err and "cai trust" in err
    assert "containerEnv.BASH_ENV not applied" in err
    assert "remoteEnv 'EVIL' not applied" in err
    name = container_of(sandbox, ws)
    inspect = json.loads(docker("inspect", name).stdout)[0]
    assert inspect["HostConfig"]["Privileged"] is False
    assert "DC_CONTAINER=from-container-env" in inspect["Config"]["Env"]
    assert not any(e.startswith("BASH_ENV=") for e in inspect["Config"]["Env"])
    out = in_container(
        sandbox,
        ws,
        'cat /tmp/post-create.txt /tmp/post-create-uid; echo "$DC_CONTAINER|$DC_REMOTE|${EVIL-}";'
        " cat /etc/dc-greeting 2>/dev/null || echo no-greeting",
    )
    uid = out.splitlines()[1]
    assert out.splitlines()[0] == "created" and uid != "0"
    assert "from-container-env|from-remote-env|" in out
    assert "no-greeting" in out
    log = in_container(sandbox, ws, "cat ~/.containai/logs/devcontainer.log")
    assert "postCreateCommand" in log and "postStartCommand" in log
    sshd = docker("exec", name, "cat", "/etc/containai/sshd_config.d/50-environment.conf").stdout
    assert "PermitRootLogin" not in sshd and "DC_REMOTE=from-remote-env" in sshd
    # forwardPorts: cai run forwarded 3000 to the host's 127.0.0.1 (next free port if taken)
    forwarded = re.search(r"forwarding 127\.0\.0\.1:(\d+) -> port 3000 of ", err)
    assert forwarded, err
    serve = (
        "mkdir -p /tmp/www && echo dc-page > /tmp/www/index.html && cd /tmp/www && "
        "(setsid python3 -m http.server 3000 --bind 127.0.0.1 >/dev/null 2>&1 &)"
    )
    in_container(sandbox, ws, serve)
    assert wait_page(int(forwarded.group(1))) == "dc-page"

    # Trusted: the Dockerfile (with its build args) is the template's base.
    res = sandbox.cai("trust", cwd=ws)
    assert res.returncode == 0 and "devcontainer.json" in res.stderr, res.stderr
    show = sandbox.cai("trust", "--show", "--json", cwd=ws).json
    assert [f["status"] for f in show["files"]] == ["trusted"]
    res = sandbox.cai("run", "--fresh", "--force", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "build not applied" not in res.stderr
    out = in_container(sandbox, ws, "cat /etc/dc-greeting /tmp/post-create.txt")
    assert out.splitlines() == ["hello-from-build", "created"]
    out = in_container(sandbox, ws, "cat /etc/dc-context/app.txt; readlink /etc/dc-context/leak")
    assert out.splitlines() == ["from-the-context", str(secret)]
    labels = json.loads(docker("inspect", name).stdout)[0]["Config"]["Labels"]
    assert labels["containai.devcontainer-base"] == "build"
    assert "-devcontainer-" in json.loads(docker("inspect", name).stdout)[0]["Config"]["Image"]

    # A start runs postStartCommand again, never postCreateCommand.
    assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    out = in_container(sandbox, ws, "wc -l < /tmp/post-create.txt")
    assert out.strip() == "1"

    # Editing the Dockerfile un-trusts the file.
    (ws / ".devcontainer" / "Dockerfile").write_text(DOCKERFILE + "RUN true\n")
    show = sandbox.cai("trust", "--show", "--json", cwd=ws).json
    assert show["files"][0]["status"] == "changed since trusted"


IMAGE_ONLY = """\
{
  // image-only, the most common shape
  "image": "containai:default",
  "postCreateCommand": {
    "fail": "echo boom-line; exit 3",
    "ok": ["sh", "-c", "echo fine > /tmp/ok.txt"],
  },
}
"""


def test_image_only_and_a_failing_post_create_keeps_the_container(sandbox: Sandbox) -> None:
    setup_home(sandbox)
    ws = make_ws(sandbox, IMAGE_ONLY)
    assert sandbox.cai("trust", cwd=ws).returncode == 0
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 1
    assert "postCreateCommand" in res.stderr and "exit 3" in res.stderr
    assert "boom-line" in res.stderr and "kept" in res.stderr
    name = container_of(sandbox, ws)
    state = json.loads(docker("inspect", name).stdout)[0]
    assert state["State"]["Running"] is True
    assert state["Config"]["Labels"]["containai.devcontainer-base"] == "containai:default"
    # usable, and postCreateCommand is not run again
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    out = in_container(
        sandbox,
        ws,
        "cat /tmp/ok.txt; grep -c '== .* postCreateCommand' ~/.containai/logs/devcontainer.log",
    )
    assert out.split() == ["fine", "2"]  # the two commands of the object, once


def test_missing_image_is_a_clear_error(sandbox: Sandbox) -> None:
    setup_home(sandbox)
    ws = make_ws(sandbox, '{"image": "containai-test-absent:never"}')
    assert sandbox.cai("trust", cwd=ws).returncode == 0
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 1
    assert "containai-test-absent:never' is not on the engine" in res.stderr
    assert "Traceback" not in res.stderr


def test_turned_off(sandbox: Sandbox) -> None:
    setup_home(sandbox)
    config = sandbox.home / ".config" / "containai" / "config.toml"
    config.write_text("devcontainer = false\n" + config.read_text())
    ws = make_ws(sandbox, '{"containerEnv": {"DC_X": "1"}, "runArgs": ["--privileged"],}')
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "runArgs" not in res.stderr
    name = container_of(sandbox, ws)
    env = json.loads(docker("inspect", name).stdout)[0]["Config"]["Env"]
    assert "DC_X=1" not in env
