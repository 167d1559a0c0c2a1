"""Regressions found in review: a lost pin is healed from the container itself (never
by trusting the network), export never overwrites a file, an unknown context is exit 3
even for a plan, malformed config is a one-line error and is left untouched."""

from __future__ import annotations

import pytest

from tests.conftest import Sandbox, docker


@pytest.mark.usefixtures("engine")
def test_lost_pin_is_healed_from_the_container(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("heal", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    known = sandbox.home / ".config" / "containai" / "known_hosts"
    pinned = known.read_text()
    assert "cai-heal-main " in pinned
    assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    known.write_text("")  # the pin is gone (e.g. a cleanup), the container is not
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert known.read_text() == pinned  # the same key, read from the container
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0


@pytest.mark.usefixtures("engine")
def test_export_never_overwrites_a_file(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("noclobber", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    precious = sandbox.root / "precious.txt"
    precious.write_text("mine")
    res = sandbox.cai("export", "--output", str(precious), cwd=ws)
    assert res.returncode == 1 and "already exists" in res.stderr and str(precious) in res.stderr
    assert precious.read_text() == "mine"


def test_unknown_context_is_exit_3_even_for_a_plan(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("ctx", "main")
    res = sandbox.cai("--context", "no-such-ctx", "--dry-run", "--json", cwd=ws)
    assert res.returncode == 3 and "no-such-ctx" in res.stderr and res.stdout == ""


@pytest.mark.parametrize(
    ("content", "argv"),
    [
        (b'ssh = "x"\n', ["config", "set", "ssh.port_range_end", "2400"]),
        (b"workspace = 1\n", ["config", "set", "data_volume", "foo"]),
        (b"\xff\xfe = 1\n", ["config", "set", "agent.default", "codex"]),
    ],
)
def test_malformed_config_is_one_line_and_untouched(
    sandbox: Sandbox, content: bytes, argv: list[str]
) -> None:
    ws = sandbox.workspace("cfg", "main")
    cfg = sandbox.home / ".config" / "containai" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(content)
    res = sandbox.cai(*argv, cwd=ws)
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("cai: error: ") and res.stderr.count("\n") == 1
    assert str(cfg) in res.stderr and "Traceback" not in res.stderr
    assert cfg.read_bytes() == content


def test_a_runtime_the_engine_lacks_fails_before_anything_is_created(sandbox: Sandbox) -> None:
    """An explicit runtime is checked against the engine (in parallel with the image
    check) before the volume, the host key or the container exist."""
    runtimes = docker("info", "--format", "{{json .Runtimes}}").stdout
    if "sysbox-runc" in runtimes:  # pragma: no cover - not on this machine
        pytest.skip("this engine has sysbox-runc")
    ws = sandbox.workspace("noruntime", "main")
    res = sandbox.cai("run", "--detached", "--runtime", "sysbox-runc", cwd=ws)
    assert res.returncode == 1
    assert "runtime 'sysbox-runc' is not available on this engine" in res.stderr
    assert res.stderr.count("\n") == 1
    label = f"label=containai.workspace={ws}"
    assert docker("ps", "-aq", "--filter", label).stdout.strip() == ""
    volume = sandbox.env["CONTAINAI_DATA_VOLUME"]
    assert docker("volume", "ls", "-q", "--filter", f"name=^{volume}$").stdout.strip() == ""
    hosts = sandbox.home / ".config" / "containai" / "keys" / "hosts"
    assert not hosts.exists() or list(hosts.iterdir()) == []
