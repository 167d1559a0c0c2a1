"""``${...}`` variables in a devcontainer.json (SPEC section 18). Pure: no I/O.

The reference (containers.dev, "Variables in devcontainer.json") and its CLI replace
``${name}`` or ``${name:arg:default}`` in string values; an unknown name is left as
written (so a shell's ``${HOME}`` in a command survives). cai's choices:

- ``${localWorkspaceFolder}``, ``${containerWorkspaceFolder}``: the workspace path
  (cai mounts the workspace at its own host path), and their ``...Basename`` forms.
- ``${devcontainerId}``: a stable id of the workspace (52 base-32 digits of a SHA-256,
  the reference's shape; not the reference's value).
- ``${localEnv:NAME[:default]}`` (and its old spelling ``${env:...}``): **never read
  from the host**, trusted or not. A cloned repository could otherwise write
  ``"containerEnv": {"X": "${localEnv:AWS_SECRET_ACCESS_KEY}"}`` and a
  ``postCreateCommand`` that sends ``$X`` anywhere the network allows (or a build arg
  that a build step sends out): the host's secrets would leave with no prompt. The
  default (or an empty string) is used and one warning names the variable and how
  to pass a value on purpose (``cai run -e NAME=VALUE``).
- ``${containerEnv:NAME[:default]}``: the container's own environment, known only once
  it runs: kept as written at first, then replaced by ``container_substitute`` in
  ``remoteEnv`` and the lifecycle commands (the properties where it means something);
  elsewhere it stays as written, with a warning.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from containai.domain.errors import ConfigError, summarize
from containai.lazy import sha256_hex

_VARIABLE = re.compile(r"\$\{(.*?)\}")  # the reference's own pattern (non-greedy)
_LOCAL_ENV = frozenset({"localEnv", "env"})
CONTAINER_ENV = "containerEnv"
_DIGITS = "0123456789abcdefghijklmnopqrstuv"


def devcontainer_id(workspace: str) -> str:
    """A stable id for the workspace's dev container: 52 base-32 digits of a SHA-256."""
    number = int(sha256_hex(workspace), 16)
    digits = []
    while number:
        number, rest = divmod(number, 32)
        digits.append(_DIGITS[rest])
    return "".join(reversed(digits)).rjust(52, "0")


def _split(inner: str) -> tuple[str, list[str]]:
    name, *args = inner.split(":")
    return name, args


class Substitution:
    """Phase one (before the container exists) for one devcontainer.json: the workspace
    variables replaced, ``localEnv`` blanked, ``containerEnv`` kept for phase two.
    ``warnings`` collects one line per variable that did not get what it asked for."""

    def __init__(self, *, source: str, workspace: str) -> None:
        self.source = source
        self.workspace = workspace
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._id: str | None = None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(message)

    def __call__(self, value: str, where: str, *, container_env: bool = False) -> str:
        """``value`` of property ``where`` with phase-one variables replaced.
        ``container_env``: the property may use ``${containerEnv:...}`` (phase two)."""
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, args = _split(match.group(1))
            shown = summarize(match.group(0), 80)
            if (name in _LOCAL_ENV or name == CONTAINER_ENV) and (not args or not args[0]):
                raise ConfigError(
                    f"{self.source}: {where} uses {shown} without a variable "
                    f"name; write ${{{name}:NAME}}"
                )
            if name in _LOCAL_ENV:
                var = summarize(args[0], 60)
                default = args[1] if len(args) > 1 else ""
                got = f"its default {summarize(repr(default), 60)}" if len(args) > 1 else "empty"
                self._warn_once(
                    "localEnv:" + var,
                    f"{self.source}: ${{localEnv:{var}}} becomes {got}: cai never gives a "
                    "repository's devcontainer.json your environment (it could send your "
                    f"secrets out); pass a value yourself with `cai run -e {var}=VALUE`",
                )
                return default
            if name == CONTAINER_ENV:
                if not container_env:
                    self._warn_once(
                        f"containerEnv@{where}",
                        f"{self.source}: {where} uses {shown}, which only remoteEnv "
                        "and the lifecycle commands can use; it is left as written",
                    )
                return match.group(0)
            if name in ("localWorkspaceFolder", "containerWorkspaceFolder"):
                return self.workspace
            if name in ("localWorkspaceFolderBasename", "containerWorkspaceFolderBasename"):
                return posixpath.basename(self.workspace.rstrip("/")) or "/"
            if name == "devcontainerId":
                if self._id is None:
                    self._id = devcontainer_id(self.workspace)
                return self._id
            return match.group(0)  # unknown: left as written (`${HOME}` in a shell command)

        return _VARIABLE.sub(replace, value)


def container_substitute(value: str, container_env: Mapping[str, str]) -> str:
    """Phase two: ``${containerEnv:NAME[:default]}`` replaced from the running
    container's environment (unset and no default: empty, as a shell does)."""
    if "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, args = _split(match.group(1))
        if name != CONTAINER_ENV or not args or not args[0]:
            return match.group(0)
        if args[0] in container_env:
            return container_env[args[0]]
        return args[1] if len(args) > 1 else ""

    return _VARIABLE.sub(replace, value)


def env_from_list(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["PATH=/usr/bin", "A=b=c"]`` (the engine's ``Config.Env``) -> a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if sep and name:
            out[name] = value
    return out
