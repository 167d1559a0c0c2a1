"""Running the ``docker`` CLI against one engine: the command line, errors, contexts.

Every call names the selected context explicitly (``docker --context NAME``),
and has its failures translated here, once, into domain errors: an engine that
does not answer -> ``EngineUnreachable`` (exit 3, the context named); no such
object -> ``NotFound`` (exit 4); anything else -> ``Failed``. What the calls
mean (and the JSON they answer) is ``adapters/engine/__init__.py``'s.
"""

from __future__ import annotations

import os

from containai import jsonfast
from containai.adapters import spawn
from containai.domain.errors import (
    EngineUnreachable,
    Failed,
    ImageInUse,
    InUse,
    NameInUse,
    NotFound,
    PortTaken,
    SubnetTaken,
    summarize,
)
from containai.lazy import sha256_hex
from containai.paths import docker_config_text

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any, Protocol

    class Completed(Protocol):
        """A finished ``docker`` call (``subprocess.CompletedProcess``, ``spawn.Captured``)."""

        returncode: int
        stdout: Any
        stderr: Any


_UNREACHABLE_MARKERS = (
    "cannot connect to the docker daemon",
    "error during connect",
    "is the docker daemon running",
    "connect: no such file or directory",
    "connect: connection refused",
    "permission denied while trying to connect",
    "context deadline exceeded",
)
# The docker CLI's own words for an unknown context (not a build's "context ... path").
# Compiled at first use (an error), not on every command.
_NO_CONTEXT = (
    r'context "[^"]*" does not exist|context not found|current context "[^"]*" is not found'
)
_NOT_FOUND_MARKERS = (
    "no such container",
    "no such object",
    "no such volume",
    "no such image",
    "no such file or directory",
    "could not find the file",
    "image not known",
)


# What the engine says when something is taken, most specific first (lower case).
_IN_USE_MARKERS = (
    (("port is already allocated", "address already in use"), PortTaken),
    (("is using its referenced image", "image is being used by", "being used by"), ImageInUse),
    # the engine's address manager, then its bridge driver (a network made on a subnet
    # with an --ip-range can pass the first and meet the second)
    (("pool overlaps", "networks have overlapping"), SubnetTaken),
    (("is already in use", "network with name"), NameInUse),
    (("already in use", "is using"), InUse),
)


def _cause(text: str) -> str:
    """The line of a docker CLI message that says why: the daemon's own answer rather
    than the CLI's closing summary (``Error: failed to start containers: NAME``)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error response from daemon:"):
            return line
    return lines[-1] if lines else text


def docker_config_dir(env: Mapping[str, str]) -> Path:
    from pathlib import Path

    return Path(docker_config_text(env))


def context_meta(docker_config: Path, name: str) -> Path:
    """Where the docker CLI keeps context ``name``'s endpoint (its store is keyed by the
    name's SHA-256)."""
    return docker_config / "contexts" / "meta" / sha256_hex(name) / "meta.json"


def current_docker_context(env: Mapping[str, str]) -> str | None:
    """Docker's own choice when cai has none: ``None`` means "let the CLI use DOCKER_HOST"."""
    if env.get("DOCKER_HOST"):
        return None
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    try:
        data = jsonfast.loads((docker_config_dir(env) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    current = data.get("currentContext") if isinstance(data, dict) else None
    return current if isinstance(current, str) and current else "default"


def context_endpoint(meta: Any) -> str:
    """The docker endpoint's ``Host`` of a context's ``meta.json`` (``""``: none)."""
    host = ((meta.get("Endpoints") or {}).get("docker") or {}).get("Host")
    return str(host) if host else ""


def context_host(name: str | None, env: Mapping[str, str]) -> str:
    """The docker endpoint of context ``name`` read from the CLI's store (no fork);
    ``None`` (cai follows ``DOCKER_HOST``) gives ``DOCKER_HOST``; ``default`` and an
    unreadable context give ``""`` (the local socket)."""
    if name is None:
        return env.get("DOCKER_HOST", "")
    if name == "default":
        return env.get("DOCKER_HOST", "")
    return stored_context_host(docker_config_dir(env), name) or ""


def stored_context_host(docker_config: Path, name: str) -> str | None:
    """The docker endpoint of context ``name`` in the store under ``docker_config``:
    ``None`` when the context is absent or unreadable, ``""`` when it has no endpoint."""
    try:
        meta = jsonfast.loads(context_meta(docker_config, name).read_text())
    except (OSError, ValueError):
        return None
    return context_endpoint(meta) if isinstance(meta, dict) else None


def context_names(env: Mapping[str, str]) -> list[str]:
    """Every context of the CLI's store, ``default`` first (no fork)."""
    names = ["default"]
    root = docker_config_dir(env) / "contexts" / "meta"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return names
    for entry in entries:
        try:
            meta = jsonfast.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        name = meta.get("Name") if isinstance(meta, dict) else None
        if isinstance(name, str) and name and name != "default":
            names.append(name)
    return names


def context_exists(name: str, env: Mapping[str, str]) -> bool:
    """Whether a Docker context exists, read from the CLI's context store (no fork)."""
    if name == "default":
        return True
    return context_meta(docker_config_dir(env), name).is_file()


class DockerCli:
    """``docker`` against one engine, selected once per command; ``context=None``
    defers to DOCKER_HOST."""

    def __init__(
        self,
        context: str | None,
        *,
        docker: str = "docker",
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.context = context
        self.docker = docker
        self.env = dict(os.environ if env is None else env)
        self.timeout = timeout

    @property
    def display_name(self) -> str:
        if self.context is None:
            return f"DOCKER_HOST={self.env.get('DOCKER_HOST', '')}"
        return self.context

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``docker ARGS`` against this engine."""
        base = [self.docker]
        if self.context is not None:
            base += ["--context", self.context]
        return [*base, *args]

    def _translate(self, args: Sequence[str], stderr: str) -> Exception:
        text = stderr.strip()
        low = text.lower()
        first = summarize(_cause(text)) if text else f"docker {args[0]} failed"
        import re

        if any(m in low for m in _UNREACHABLE_MARKERS) or re.search(
            _NO_CONTEXT, text, re.IGNORECASE
        ):
            return EngineUnreachable(
                f"the Docker engine of context '{self.display_name}' does not answer ({first}); "
                "start it (scripts/ensure-engine, or `cai setup`) or choose another with --context"
            )
        if any(m in low for m in _NOT_FOUND_MARKERS):
            return NotFound(
                first.removeprefix("Error: ").removeprefix("Error response from daemon: ")
            )
        message = f"docker {args[0]} failed: {first.removeprefix('Error response from daemon: ')}"
        for markers, error in _IN_USE_MARKERS:
            if any(m in low for m in markers):
                return error(message)
        return Failed(message)

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        text: bool = True,
    ) -> Completed:
        """Run ``docker ARGS``; on failure raise the translated domain error (when ``check``).

        Without ``input`` the call goes through ``adapters/spawn.py`` (no ``subprocess``
        import on ``cai list``'s path); with it, through ``subprocess``."""
        cmd = self.argv(*args)
        limit = timeout or self.timeout
        proc: Completed
        try:
            if input is None:
                proc = spawn.capture(cmd, self.env, limit, text=text)
            else:
                import subprocess

                try:
                    proc = subprocess.run(
                        cmd,
                        input=input,
                        capture_output=True,
                        text=text,
                        env=self.env,
                        timeout=limit,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    raise spawn.Timeout(cmd[0]) from None
        except FileNotFoundError:
            raise EngineUnreachable(
                f"the docker CLI ('{self.docker}') is not installed; install the distribution's "
                "docker.io package (scripts/ensure-engine does it)"
            ) from None
        except spawn.Timeout:
            raise EngineUnreachable(
                f"the Docker engine of context '{self.display_name}' did not answer "
                f"'docker {args[0]}' within {limit:.0f} s"
            ) from None
        if check and proc.returncode != 0:
            err = (
                proc.stderr
                if isinstance(proc.stderr, str)
                else proc.stderr.decode("utf-8", "replace")
            )
            raise self._translate(args, err)
        return proc

    def popen(self, *args: str, stdin: Any = None, stdout: Any = None) -> subprocess.Popen[bytes]:
        """A streaming ``docker ARGS`` (tar in/out); the caller waits and checks."""
        import subprocess

        try:
            return subprocess.Popen(
                self.argv(*args),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=self.env,
            )
        except FileNotFoundError:
            raise EngineUnreachable(f"the docker CLI ('{self.docker}') is not installed") from None

    def check_stream(self, args: Sequence[str], proc: subprocess.Popen[bytes]) -> None:
        """Wait for a ``popen`` process and raise its translated error if it failed."""
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise self._translate(args, err)

    def json_lines(self, out: str) -> list[dict[str, Any]]:
        return [jsonfast.loads(line) for line in out.splitlines() if line.strip()]


def docker_available(docker: str = "docker") -> bool:
    import shutil

    return shutil.which(docker) is not None
