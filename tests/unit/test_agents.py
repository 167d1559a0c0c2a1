"""Agent manifests (data, not code): every SPEC agent is there with its npm package and
flags, and every variable an agent takes from the host is accepted by the image's sshd."""

from __future__ import annotations

import fnmatch
from importlib import resources

import pytest

from containai import agents
from containai.domain.errors import NotFound


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "copilot"])
def test_spec_agents_have_manifests(name: str) -> None:
    agent = agents.load(name)
    assert agent.binary and agent.npm_package.startswith("@") and agent.default_args


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
