"""Agent manifests (data, not code): every SPEC agent is there with its npm package and
flags, and every variable an agent takes from the host is accepted by the image's sshd."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources

import pytest

from containai import agents
from containai.domain.errors import NotFound

SPEC_AGENTS = [
    "claude", "codex", "gemini", "copilot", "opencode", "pi", "qwen", "cline", "crush",
    "continue", "aider", "vibe",
]  # fmt: skip


@pytest.mark.parametrize("name", SPEC_AGENTS)
def test_spec_agents_have_manifests(name: str) -> None:
    agent = agents.load(name)
    assert agent.binary and agent.state and agent.version_args
    # exactly one install recipe, npm or PyPI: the build installs what the manifest says
    assert bool(agent.install.npm) != bool(agent.install.pypi), name
    assert agent.install.python == "" or agent.install.pypi, name


@pytest.mark.parametrize("name", agents.names())
def test_manifests_have_only_known_keys(name: str) -> None:
    data = tomllib.loads((resources.files("containai.agents") / f"{name}.toml").read_text())
    assert set(data) <= agents.KEYS, set(data) - agents.KEYS
    assert set(data.get("install", {})) <= {"npm", "pypi", "python", "fetches"}
    assert data["name"] == name


def _covered(path: str, state: set[str]) -> bool:
    return any(path == s.rstrip("/") or path.startswith(s) for s in state)


def test_every_import_lands_in_state_kept_on_the_volume() -> None:
    """What `cai import` copies must be linked into the home, or the agent never sees it
    (the drift this test catches: a manifest import without a state entry)."""
    common = tomllib.loads(
        (resources.files("containai.agents") / "manifests" / "common.toml").read_text()
    )
    state = set(agents.common_state())
    for name in agents.names():
        state |= set(agents.load(name).state)
    imports = [e["path"] for e in common["import"]]
    imports += [e["path"] for n in agents.names() for e in agents.load(n).imports]
    assert [p for p in imports if not _covered(p, state)] == []


def test_home_links_are_made_from_the_manifests() -> None:
    lines = [x for x in agents.home_links().splitlines() if x and not x.startswith("#")]
    assert len(lines) == len(set(lines))
    assert set(lines) == set(agents.common_state()) | {
        e for n in agents.names() for e in agents.load(n).state
    }
    # no entry nested in another (the entrypoint would skip it)
    assert not [a for a in lines for b in lines if a != b and b.endswith("/") and a.startswith(b)]


def test_unknown_agent_is_exit_4() -> None:
    with pytest.raises(NotFound, match="nosuch"):
        agents.load("nosuch")


def accept_env_patterns() -> list[str]:
    text = (resources.files("containai") / "templates" / "system" / "sshd_config").read_text()
    patterns: list[str] = []
    for line in text.splitlines():
        if line.startswith("AcceptEnv "):
            patterns += line.split()[1:]
    return patterns


def test_every_agent_variable_is_accepted_by_sshd() -> None:
    patterns = accept_env_patterns()
    for name in agents.names():
        for var in agents.load(name).env:
            assert any(fnmatch.fnmatchcase(var, p) for p in patterns), (name, var)


def test_send_env_only_names_variables_set_on_the_host() -> None:
    host = {"ANTHROPIC_API_KEY": "sk-test", "OPENAI_API_KEY": "", "PATH": "/bin"}
    assert agents.send_env("claude", host) == ["ANTHROPIC_API_KEY"]
    assert agents.send_env("codex", host) == []
    assert agents.send_env("shell", host) == []


def test_secrets_never_on_the_command_line() -> None:
    command = agents.agent_command("claude", "/w", ["--print", "hi"], {"A": "1"})
    assert "ANTHROPIC_API_KEY" not in command
    assert "IS_SANDBOX=1" in command and "A=1" in command
    assert command.endswith("claude --dangerously-skip-permissions --print hi")


def test_npm_binaries_are_the_commands_of_the_npm_agents_only() -> None:
    # the default template drops node when every one of these is a native executable
    assert agents.npm_binaries(["claude", "aider", "codex"]) == ["claude", "codex"]
    assert agents.npm_binaries(["aider"]) == []


def test_claude_never_updates_itself_in_the_image() -> None:
    # its updater would reinstall through npm: a Claude-only image has none
    assert "DISABLE_AUTOUPDATER=1" in agents.agent_command("claude", "/w", [], {})
