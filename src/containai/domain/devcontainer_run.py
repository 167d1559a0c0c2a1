"""What cai puts into a container for its devcontainer.json (SPEC section 18). Pure.

- ``render_remote_env``: ``remoteEnv`` as the file ``/etc/containai/remote-env`` that
  the entrypoint turns into sshd's ``SetEnv`` line on every start, so every SSH
  session (``cai run``/``shell``/``exec``, VS Code, plain ``ssh``) gets it. One entry a
  line: ``NAME=VALUE`` sets, ``-NAME`` unsets (the reference's ``null``). A value sshd's
  ``SetEnv`` cannot carry safely (a newline would be a new sshd directive such as
  ``PermitRootLogin yes``; a quote or backslash would end the quoted word) is not
  applied, with a warning; the entrypoint checks every line again.
- ``lifecycle_argv``: a lifecycle command as the argv of one ``docker exec`` run as the
  agent's uid: a fixed script of cai's (never the repository's text) that appends the
  output to the log file and prints the last lines, then the command itself behind
  ``env`` with ``remoteEnv`` applied (no shell between: an array stays an argv).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from containai.domain.errors import summarize

REMOTE_ENV_PATH = "/etc/containai/remote-env"
# In the agent's home inside the container (per container: a new container starts a new
# log, as it runs postCreateCommand anew); `cai logs` shows it.
LOG_PATH = "~/.containai/logs/devcontainer.log"
# Root's, outside the agent's reach: made when postCreateCommand starts, so it runs once
# per container (a new container from `cai --fresh` runs it again).
POST_CREATE_MARKER = "/var/lib/containai/devcontainer-post-create"
TAIL_LINES = 20
# ... and at most this many bytes of them (a line may be as long as the command likes).
TAIL_BYTES = 16384

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What sshd sets for each session itself, or the entrypoint never passes (its list).
_SESSION_OWN = frozenset(
    {"HOSTNAME", "HOME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "USER", "LOGNAME"}
    | {"SHELL", "MAIL"}
)
_SESSION_PREFIXES = ("SSH_", "CAI_", "CONTAINAI_")
_UNSAFE_VALUE = ('"', "\\", "\n", "\r", "\0")


def _remote_env_refusal(name: str, value: str | None) -> str | None:
    if not _NAME.fullmatch(name):
        return "it is not a variable name"
    if name.upper() in _SESSION_OWN or name.upper().startswith(_SESSION_PREFIXES):
        return "sshd or cai sets it for each session"
    if value is not None and any(c in value for c in _UNSAFE_VALUE):
        return "its value holds a quote, backslash or line break, which sshd's SetEnv cannot carry"
    return None


def render_remote_env(source: str, remote_env: Mapping[str, str | None]) -> tuple[bytes, list[str]]:
    """``remoteEnv`` -> (the file's bytes, one warning per entry not applied)."""
    lines: list[str] = []
    warnings: list[str] = []
    for name, value in remote_env.items():
        refusal = _remote_env_refusal(name, value)
        if refusal is not None:
            shown = summarize(repr(name), 40)
            warnings.append(f"{source}: remoteEnv {shown} not applied: {refusal}")
            continue
        lines.append(f"-{name}" if value is None else f"{name}={value}")
    data = "".join(f"{line}\n" for line in lines).encode()
    return data, warnings


def applied_remote_env(remote_env: Mapping[str, str | None]) -> dict[str, str | None]:
    """The entries of ``remoteEnv`` that ``render_remote_env`` keeps."""
    return {k: v for k, v in remote_env.items() if _remote_env_refusal(k, v) is None}


def env_argv(remote_env: Mapping[str, str | None], argv: Sequence[str]) -> list[str]:
    """``argv`` run with ``remote_env`` applied (``None`` unsets), through ``env`` and
    no shell. A program name holding ``=`` (``env`` would read it as an assignment) is
    run through ``sh -c 'exec "$@"'``."""
    prefix = ["env"]
    for name, value in remote_env.items():
        prefix += ["-u", name] if value is None else []
    prefix.append("--")  # a program name starting with "-" is not an option of env's
    prefix += [f"{name}={value}" for name, value in remote_env.items() if value is not None]
    if argv and "=" in argv[0]:
        return [*prefix, "/bin/sh", "-c", 'exec "$@"', "sh", *argv]
    return [*prefix, *argv]


# $1: the stage's name (for the log); $2...: the command (behind env). The session's
# own settings first (as the entrypoint gives SSH sessions: per-user installs on the
# volume), then remoteEnv through `env`. Output: appended to the log as it comes; the
# last lines (at most TAIL_BYTES of them) are printed for cai to report a failure; the
# exit status is the command's.
RUNNER = r"""
stage=$1; shift
log="$HOME/.containai/logs/devcontainer.log"
mkdir -p "${log%/*}" || exit 125
export PATH="$HOME/.local/bin:$PATH" NPM_CONFIG_PREFIX="$HOME/.local" PIP_BREAK_SYSTEM_PACKAGES=1
if [ -n "${CAI_WORKSPACE:-}" ]; then cd "$CAI_WORKSPACE" || exit 125; fi
rc_file=$(mktemp) || exit 125
printf '== %s %s (uid %s) ==\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$stage" "$(id -u)" >>"$log"
{ "$@" </dev/null 2>&1; echo $? >"$rc_file"; } | tee -a "$log" | tail -n TAIL | tail -c BYTES
rc=$(cat "$rc_file"); rm -f "$rc_file"
printf '== %s: exit %s ==\n' "$stage" "${rc:-125}" >>"$log"
exit "${rc:-125}"
""".replace("TAIL", str(TAIL_LINES)).replace("BYTES", str(TAIL_BYTES))


def lifecycle_argv(
    stage: str, argv: Sequence[str], remote_env: Mapping[str, str | None]
) -> list[str]:
    """The ``docker exec`` command (run as the agent's uid) for one lifecycle command."""
    return ["/bin/sh", "-c", RUNNER, "cai-devcontainer", stage, *env_argv(remote_env, argv)]
