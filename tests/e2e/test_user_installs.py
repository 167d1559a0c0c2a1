"""Per-user installs (issue 16): the agent is never root, yet `pip install --user`, a
virtual environment in the workspace and `npm install -g` work, and what lands in the
home survives `cai --fresh` (home-links: ~/.local/bin, ~/.local/lib and the caches are
on the data volume). A Claude-only default image has no node (issue 19): npm comes from
`image.packages = ["nodejs", "npm"]`, the way docs/images.md gives for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def _exec(sandbox: Sandbox, ws: object, *argv: str) -> tuple[int, str]:
    res = sandbox.cai("exec", "--", *argv, cwd=ws, timeout=600)  # type: ignore[arg-type]
    return res.returncode, res.stdout + res.stderr


def test_user_installs_work_without_root_and_survive_fresh(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("installs", "main")
    assert sandbox.cai("config", "set", "image.packages", "nodejs,npm", "--global").returncode == 0
    alias_before = _image_id("containai:default")
    run = sandbox.cai("run", "--detached", cwd=ws, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    image = docker("inspect", "-f", "{{.Config.Image}}", "installs-main").stdout.strip()
    try:
        _user_installs(sandbox, ws)
    finally:
        # this test's image (bookworm's nodejs and npm on top of the default one) goes,
        # and the alias its build moved goes back to the image it named
        sandbox.cai("stop", "--remove", cwd=ws)
        ours = _image_id(image)
        if ours and image.startswith("containai:default-"):
            if _image_id("containai:default") == ours:
                if alias_before:
                    docker("tag", alias_before, "containai:default")
                else:
                    docker("image", "rm", "containai:default")
            docker("image", "rm", image)


def _image_id(ref: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def _user_installs(sandbox: Sandbox, ws: Path) -> None:
    code, out = _exec(sandbox, ws, "id", "-u")
    assert code == 0 and out.strip() != "0"
    # a venv in the workspace, and a user install, both from the package index
    code, out = _exec(
        sandbox, ws, "sh", "-c", "python3 -m venv .venv && .venv/bin/pip install -q tomli-w"
    )
    assert code == 0, out
    assert (ws / ".venv" / "bin" / "python3").exists()
    code, out = _exec(sandbox, ws, "pip", "install", "-q", "--user", "tomli-w")
    assert code == 0, out
    # npm's global prefix is the user's ~/.local
    code, out = _exec(sandbox, ws, "npm", "install", "-g", "--no-audit", "--no-fund", "is-number")
    assert code == 0, out
    assert sandbox.cai("run", "--fresh", "--detached", cwd=ws).returncode == 0
    code, out = _exec(sandbox, ws, "python3", "-c", "import tomli_w; print(tomli_w.__file__)")
    assert code == 0 and "/.local/lib/" in out, out
    code, out = _exec(sandbox, ws, "sh", "-c", 'ls "$(npm root -g)"')
    assert code == 0 and "is-number" in out, out
    code, out = _exec(sandbox, ws, "sh", "-c", "echo $PATH")
    assert "/.local/bin:" in out
