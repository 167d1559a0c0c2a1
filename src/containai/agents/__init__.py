"""Agent manifests: one TOML file per agent in this package (data, not code)."""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from containai.domain.errors import NotFound

#: Manifest keys (anything else is a mistake in the manifest, caught by the tests).
KEYS = frozenset(
    {
        "name",
        "description",
        "binary",
        "default_args",
        "set_env",
        "env",
        "api_hosts",
        "state",
        "install",
        "import",
        "version_args",
    }
)


@dataclass(frozen=True)
class Install:
    """How the image build installs an agent: one npm package, or one PyPI package in a
    virtual environment of its own (``python``: the interpreter versions it needs)."""

    npm: str = ""
    pypi: str = ""
    python: str = ""
    #: hosts the package's own install script downloads from at build time, outside the
    #: package registries (e.g. GitHub releases)
    fetches: tuple[str, ...] = ()


@dataclass(frozen=True)
class Agent:
    name: str
    description: str
    binary: str
    install: Install
    default_args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    api_hosts: tuple[str, ...] = ()
    set_env: Mapping[str, str] = field(default_factory=dict)
    #: home-relative paths kept on the data volume (a trailing "/" marks a directory)
    state: tuple[str, ...] = ()
    imports: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    version_args: tuple[str, ...] = ("--version",)

    @property
    def npm_package(self) -> str:
        return self.install.npm


def names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files(__package__).iterdir()
        if p.name.endswith(".toml")
    )


def load(name: str) -> Agent:
    """The manifest of agent ``name``: a name among this package's files, never a path."""
    from containai.domain.validation import AGENT_NAME_RE

    if AGENT_NAME_RE.fullmatch(name) is None:
        raise NotFound(
            f"unknown agent {name!r}: an agent is a manifest name, never a path; use one of "
            f"{', '.join(names())} or `cai shell`"
        )
    try:
        data = tomllib.loads(resources.files(__package__).joinpath(f"{name}.toml").read_text())
    except (FileNotFoundError, OSError):
        raise NotFound(
            f"unknown agent '{name}': use one of {', '.join(names())} or `cai shell`"
        ) from None
    install = data.get("install", {})
    return Agent(
        name=data["name"],
        description=data.get("description", ""),
        binary=data["binary"],
        install=Install(
            npm=install.get("npm", ""),
            pypi=install.get("pypi", ""),
            python=install.get("python", ""),
            fetches=tuple(install.get("fetches", ())),
        ),
        default_args=tuple(data.get("default_args", ())),
        env=tuple(data.get("env", ())),
        api_hosts=tuple(data.get("api_hosts", ())),
        set_env=dict(data.get("set_env", {})),
        state=tuple(data.get("state", ())),
        imports=tuple(data.get("import", ())),
        version_args=tuple(data.get("version_args", ("--version",))),
    )


def common_state() -> tuple[str, ...]:
    """State every account keeps on the data volume (``manifests/common.toml``)."""
    text = resources.files(__package__).joinpath("manifests/common.toml").read_text()
    return tuple(tomllib.loads(text).get("state", ()))


def home_links() -> str:
    """The system layer's ``/etc/containai/home-links``: the common state, then every
    agent's (all of them, whichever the image installs, so an agent added later finds its
    state), one entry per line. The one home of these paths is the manifests."""
    entries: list[str] = []
    for entry in [*common_state(), *(e for n in names() for e in load(n).state)]:
        if entry not in entries:
            entries.append(entry)
    header = (
        "# containai: agent state kept on the data volume (/mnt/agent-data/home/).\n"
        "# Made by cai from the agent manifests (src/containai/agents/); do not edit.\n"
        '# An entry ending in "/" is a directory; any other entry is a file (created empty,\n'
        '# or "{}" for *.json, *.yml, *.yaml). The entrypoint links ~/<entry> -> the volume\n'
        "# on every start.\n"
    )
    return header + "".join(f"{e}\n" for e in entries)


def npm_packages(agent_names: Sequence[str]) -> list[str]:
    """npm packages that install ``agent_names`` (unknown names: exit 4 naming them)."""
    return [load(name).install.npm for name in agent_names if load(name).install.npm]


def npm_binaries(agent_names: Sequence[str]) -> list[str]:
    """The commands of the npm agents of ``agent_names`` (the default template's
    ``AGENT_BINARIES``: when every one is a native executable, the image keeps no node)."""
    return [load(name).binary for name in agent_names if load(name).install.npm]


def pypi_specs(agent_names: Sequence[str]) -> list[str]:
    """The default template's ``PYPI_AGENTS``: ``name|binary|package|python-versions``."""
    out = []
    for name in agent_names:
        agent = load(name)
        if agent.install.pypi:
            fields = (agent.name, agent.binary, agent.install.pypi, agent.install.python)
            out.append("|".join(fields))
    return out


def pypi_packages(agent_names: Sequence[str]) -> list[str]:
    """PyPI packages of ``agent_names``, each installed in a virtual environment of its own."""
    return [load(name).install.pypi for name in agent_names if load(name).install.pypi]


def api_hosts(agent_names: Sequence[str]) -> list[str]:
    """The hosts the agents ``agent_names`` talk to (egress preset ``agents``)."""
    out: list[str] = []
    for name in agent_names:
        out += [h for h in load(name).api_hosts if h not in out]
    return out


def send_env(name: str, host_env: Mapping[str, str]) -> list[str]:
    """The agent's variables (manifest ``env``, e.g. ``ANTHROPIC_API_KEY``) set on the host:
    ssh sends them inside the encrypted session (``SendEnv``; the image's sshd accepts
    them), so a key is never on a command line, in the image or in the container config."""
    if name == "shell":
        return []
    return [k for k in load(name).env if host_env.get(k)]


def agent_command(name: str, workspace: str, args: Sequence[str], env: Mapping[str, str]) -> str:
    """The remote shell command that starts agent ``name`` in ``workspace``.

    A missing binary is a clear error from inside the container (exit 127).
    """
    agent = load(name)
    merged = {**agent.set_env, **env}
    exports = " ".join(shlex.quote(f"{k}={v}") for k, v in merged.items())
    argv = shlex.join([agent.binary, *agent.default_args, *args])
    # Double-quoted so the container's own CAI_TEMPLATE (set at creation) names the template.
    missing = (
        f"\"cai: error: agent '{name}' ({agent.binary}) is not installed in the image of "
        "template '${CAI_TEMPLATE:-default}'; add it to config \\`agents\\` "
        f"(cai config set agents claude,{name}), rebuild with \\`cai image build\\`, "
        'then run \\`cai --fresh\\`"'
    )
    prefix = f"exec env {exports} " if exports else "exec "
    return (
        f"cd {shlex.quote(workspace)} && "
        f"if ! command -v {shlex.quote(agent.binary)} >/dev/null 2>&1; then "
        f"echo {missing} >&2; exit 127; fi; {prefix}{argv}"
    )
