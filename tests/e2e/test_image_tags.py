"""Image tags per build (issue 16, SPEC section 8): two workspaces with different agent
lists each keep their own image (`--fresh` of one never takes the other's agents away),
`containai:<template>` follows the latest build, `cai list` shows tags, `gc --images`
leaves used images and the alias; the host's git identity reaches a new container; state
changes print one line each.

Cheap: a user template that only records the agents it was built for, on a base pinned to
the id of `containai:default` (already built: sshd and git are there), so the system layer
installs nothing."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker
from tests.e2e.scoped_docker import scoped_env

pytestmark = pytest.mark.usefixtures("engine")

TEMPLATE_DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG AGENT_PACKAGES
RUN mkdir -p /opt/cai-test && printf '%s\\n' "$AGENT_PACKAGES" > /opt/cai-test/agents
"""


def image_id(ref: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def container_image(name: str) -> str:
    return docker("inspect", "-f", "{{.Config.Image}}", name).stdout.strip()


@pytest.fixture
def template(sandbox: Sandbox) -> Iterator[str]:
    """A user template of this test on a base of its own (the id of containai:default
    under a tag nobody else moves); every image it makes is removed afterwards."""
    built = sandbox.cai("image", "build")
    assert built.returncode == 0, built.stderr
    scope = uuid.uuid4().hex[:8]
    name = f"cai-t-{scope}"
    base = f"cai-test-base-{scope}:1"
    assert docker("tag", image_id("containai:default"), base).returncode == 0
    tdir = sandbox.home / ".config" / "containai" / "templates" / name
    tdir.mkdir(parents=True)
    (tdir / "Dockerfile").write_text(TEMPLATE_DOCKERFILE)
    for key, value in (("template", name), ("image.base", base)):
        assert sandbox.cai("config", "set", key, value, "--global").returncode == 0
    try:
        yield name
    finally:
        from tests.conftest import sweep

        sweep(sandbox.root)  # the containers first: then their images can go
        refs = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        mine = [
            r for r in refs if r.startswith((f"containai:{name}", f"containai-template:{name}"))
        ]
        docker("image", "rm", *mine, base)


def agents_in(sandbox: Sandbox, ws: Path) -> str:
    res = sandbox.cai("exec", "--", "cat", "/opt/cai-test/agents", cwd=ws)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def set_agents(sandbox: Sandbox, agents: str) -> None:
    assert sandbox.cai("config", "set", "agents", agents, "--global").returncode == 0


def scoped(sandbox: Sandbox, name_part: str, template: str) -> dict[str, str]:
    """`docker ps` sees only this test's containers and `docker image ls` only its
    template's images, so `cai gc --images --force` can remove nothing of anybody else."""
    return scoped_env(
        sandbox.root,
        sandbox.env["PATH"],
        ps_filter=f"name={name_part}",
        image_filter=f"reference=containai:{template}*",
    )


def test_two_agent_sets_never_clobber_each_others_image(sandbox: Sandbox, template: str) -> None:
    uniq = uuid.uuid4().hex[:6]
    ws_a = sandbox.workspace(f"ta{uniq}", "main")
    ws_b = sandbox.workspace(f"tb{uniq}", "main")

    set_agents(sandbox, "codex")
    res = sandbox.cai("run", "--detached", cwd=ws_a)
    assert res.returncode == 0, res.stderr
    assert f"cai: building template '{template}'" in res.stderr  # phase lines, piped
    a_name = json.loads(sandbox.cai("status", "--json", cwd=ws_a).stdout)["container"]
    a_tag = container_image(a_name)
    assert (
        a_tag.startswith(f"containai:{template}-")
        and len(a_tag) == len(f"containai:{template}-") + 16
    )
    a_id = image_id(a_tag)
    assert image_id(f"containai:{template}") == a_id  # the alias: the latest build

    # The other workspace, other agents: its own image; the first keeps codex, even
    # after the second's --fresh.
    set_agents(sandbox, "claude")
    assert sandbox.cai("run", "--detached", cwd=ws_b).returncode == 0
    assert sandbox.cai("run", "--fresh", "--detached", "--force", cwd=ws_b).returncode == 0
    b_name = json.loads(sandbox.cai("status", "--json", cwd=ws_b).stdout)["container"]
    b_tag = container_image(b_name)
    assert b_tag != a_tag and b_tag.startswith(f"containai:{template}-")
    assert image_id(a_tag) == a_id  # not rebuilt, not moved
    assert image_id(f"containai:{template}") == image_id(b_tag)
    assert "codex" in agents_in(sandbox, ws_a) and "claude" not in agents_in(sandbox, ws_a)
    assert "claude" in agents_in(sandbox, ws_b) and "codex" not in agents_in(sandbox, ws_b)

    # Back to codex: A's --fresh reuses its image as it is (no build)
    set_agents(sandbox, "codex")
    res = sandbox.cai("run", "--fresh", "--detached", "--force", cwd=ws_a)
    assert res.returncode == 0, res.stderr
    assert "building template" not in res.stderr
    assert container_image(a_name) == a_tag and image_id(a_tag) == a_id
    assert "codex" in agents_in(sandbox, ws_a)
    # --dry-run of a recreate names the hashed tag it would use
    plan = sandbox.cai("run", "--fresh", "--dry-run", "--json", cwd=ws_a)
    assert plan.returncode == 0, plan.stderr
    assert plan.json["image"] == a_tag

    # cai list shows tags, never a raw id, even when a container's tag is gone
    docker("tag", a_id, "cai-test-keep-a:1")  # keep the image while its tag is away
    try:
        assert docker("image", "rm", a_tag).returncode == 0
        rows = {r["name"]: r for r in sandbox.cai("list", "--json").json["containers"]}
        assert rows[a_name]["image"] == a_tag
        assert rows[b_name]["image"] == b_tag
        text = sandbox.cai("list").stdout
        assert a_tag in text and "sha256:" not in text.split(a_name, 1)[1].splitlines()[0]
    finally:
        docker("tag", a_id, a_tag)
        docker("image", "rm", "cai-test-keep-a:1")

    # gc --images: nothing used and not the alias
    env = scoped(sandbox, uniq, template)
    dry = sandbox.cai("gc", "--images", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.json["images"] == []
    # A gone: its image is unused (B's is used, and is the alias too)
    stop = sandbox.cai("stop", "--remove", "--force", cwd=ws_a)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr.startswith(f"removed {a_name} (")
    res = sandbox.cai("gc", "--images", "--force", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert [i["reference"] for i in res.json["images"]] == [a_tag]
    assert docker("image", "inspect", a_tag).returncode != 0
    assert docker("image", "inspect", b_tag).returncode == 0
    assert docker("image", "inspect", f"containai:{template}").returncode == 0
    again = sandbox.cai("gc", "--images", "--dry-run", env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "nothing to remove\n")


def test_host_git_identity_reaches_a_new_container_once(sandbox: Sandbox) -> None:
    name, email = 'Jo "Q" T\\ëster #1\\', "jo@example.invalid"  # quoted for git's config
    for key, value in (("user.name", name), ("user.email", email)):
        subprocess.run(["git", "config", "--global", key, value], env=sandbox.env, check=True)
    ws = sandbox.workspace("ident", "main")
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    created = sandbox.cai("status", "--json", cwd=ws).json["container"]
    assert f"created {created} (ssh cai-{created})" in res.stderr.splitlines()
    attached = sandbox.cai("run", "--detached", cwd=ws)  # running already: nothing changes
    assert attached.returncode == 0 and attached.stderr == ""

    def git_config(*args: str) -> str:
        out = sandbox.cai("exec", "--", "git", "config", *args, cwd=ws)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    # what git uses, wherever it is set, and where it comes from: the container's system
    # config (root's, not on the volume), quoted for git (the name has `"`, a backslash, `#`)
    assert git_config("user.name") == name
    assert git_config("user.email") == email
    assert git_config("--show-origin", "user.name") == f"file:/etc/containai/gitconfig\t{name}"
    # nothing written into the agent's own ~/.gitconfig (on the volume, the agent's)
    unset = sandbox.cai("exec", "--", "git", "config", "--global", "user.name", cwd=ws)
    assert (unset.returncode, unset.stdout) == (1, ""), unset.stderr
    env = sandbox.cai("exec", "--", "env", cwd=ws).stdout
    assert "CAI_GIT_NAME" not in env  # only in git's config, never forced on sessions
    # What the agent's ~/.gitconfig (the volume) has wins: its own identity survives --fresh
    assert git_config("--global", "user.name", "Agent") == ""
    name_line = sandbox.cai("status", "--json", cwd=ws).json["container"]
    stop = sandbox.cai("stop", cwd=ws)
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "", f"stopped {name_line}\n")
    again = sandbox.cai("stop", cwd=ws)
    assert again.stderr == f"{name_line} was not running (exited)\n"
    fresh = sandbox.cai("run", "--fresh", "--detached", "--force", cwd=ws)
    assert fresh.returncode == 0, fresh.stderr
    assert f"recreated {created} (ssh cai-{created})" in fresh.stderr.splitlines()
    assert git_config("user.name") == "Agent"
    assert git_config("--show-origin", "user.name").endswith("/.gitconfig\tAgent")
    assert git_config("user.email") == email  # the host's, where the agent set none


def test_an_imported_git_identity_wins_over_the_hosts(sandbox: Sandbox) -> None:
    """`cai import` puts a ~/.gitconfig on the volume: its user.name is what git uses, and
    the host's identity fills in only what it lacks (user.email here)."""
    for key, value in (("user.name", "Host Name"), ("user.email", "host@example.invalid")):
        subprocess.run(["git", "config", "--global", key, value], env=sandbox.env, check=True)
    source = sandbox.root / "import-src"
    source.mkdir()
    (source / ".gitconfig").write_text("[user]\n\tname = Imported Name\n")
    ws = sandbox.workspace("identimp", "main")
    imported = sandbox.cai("import", "--from", str(source), "-w", str(ws))
    assert imported.returncode == 0, imported.stderr
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    shown = sandbox.cai(
        "exec", "--", "sh", "-c", "git config user.name; git config user.email", cwd=ws
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "Imported Name\nhost@example.invalid\n"
