"""Per-user installs (issue 16): the agent is never root, yet `pip install --user`, a
virtual environment in the workspace and `npm install -g` work, and what lands in the
home survives `cai --fresh` (home-links: ~/.local/bin, ~/.local/lib and the caches are
on the data volume)."""

from __future__ import annotations

import pytest

from tests.conftest import Sandbox

pytestmark = pytest.mark.usefixtures("engine")


def _exec(sandbox: Sandbox, ws: object, *argv: str) -> tuple[int, str]:
    res = sandbox.cai("exec", "--", *argv, cwd=ws, timeout=600)  # type: ignore[arg-type]
    return res.returncode, res.stdout + res.stderr


def test_user_installs_work_without_root_and_survive_fresh(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("installs", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
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
