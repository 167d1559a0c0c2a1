"""The Docker engine, through the ``docker`` CLI the user already runs (DESIGN decision 1).

Every call names the selected context explicitly (``docker --context NAME``),
asks for JSON, and has its failures translated here, once, into domain errors:
an engine that does not answer -> ``EngineUnreachable`` (exit 3, the context
named); no such object -> ``NotFound`` (exit 4); anything else -> ``Failed``.
"""

from __future__ import annotations

import os

from containai import jsonfast
from containai.adapters import spawn
from containai.domain.errors import EngineUnreachable, Failed, NotFound, summarize
from containai.domain.labels import SSH_PORT
from containai.lazy import sha256_hex
from containai.paths import docker_config_text

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path
    from typing import IO, Any

    from containai.services.ports import Completed

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


def context_exists(name: str, env: Mapping[str, str]) -> bool:
    """Whether a Docker context exists, read from the CLI's context store (no fork)."""
    if name == "default":
        return True
    return context_meta(docker_config_dir(env), name).is_file()


class DockerEngine:
    """One engine, selected once per command; ``context=None`` defers to DOCKER_HOST."""

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

    # ----------------------------------------------------------------- plumbing
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
        return Failed(
            f"docker {args[0]} failed: {first.removeprefix('Error response from daemon: ')}"
        )

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

    def _json_lines(self, out: str) -> list[dict[str, Any]]:
        return [jsonfast.loads(line) for line in out.splitlines() if line.strip()]

    # ------------------------------------------------------------------ engine
    def ping(self) -> None:
        """Raise ``EngineUnreachable`` unless the engine answers."""
        self.version()

    def version(self) -> dict[str, Any]:
        out = self.run("version", "--format", "{{json .}}", timeout=20).stdout
        data: dict[str, Any] = jsonfast.loads(out)
        if not data.get("Server"):
            raise EngineUnreachable(
                f"the Docker engine of context '{self.display_name}' does not answer"
            )
        return data

    def server_version(self) -> str:
        server = self.version().get("Server") or {}
        return str(server.get("Version", "unknown"))

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = jsonfast.loads(
            self.run("info", "--format", "{{json .}}", timeout=20).stdout
        )
        return data

    def runtimes(self) -> list[str]:
        """OCI runtimes the engine knows (``runc``, ``runsc``, ``sysbox-runc`` ...)."""
        return sorted((self.info().get("Runtimes") or {}).keys())

    # -------------------------------------------------------------- containers
    def inspect_container(self, name: str) -> dict[str, Any] | None:
        """``docker inspect`` of one container, or ``None`` when it does not exist."""
        proc = self.run("container", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            low = proc.stderr.lower()
            if "no such container" in low or "no such object" in low:
                return None
            raise self._translate(["container", "inspect"], proc.stderr)
        data: dict[str, Any] = jsonfast.loads(proc.stdout)
        return data

    def inspect_containers(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """One ``docker inspect`` for many containers (missing ones are left out)."""
        names = list(names)
        if not names:
            return []
        proc = self.run("container", "inspect", "--format", "{{json .}}", *names, check=False)
        if proc.returncode != 0 and not proc.stdout.strip():
            low = proc.stderr.lower()
            if "no such" in low:
                return []
            raise self._translate(["container", "inspect"], proc.stderr)
        return self._json_lines(proc.stdout)

    def list_containers(
        self, labels: Mapping[str, str | None] | None = None, *, all: bool = True
    ) -> list[dict[str, Any]]:
        """``docker ps`` rows (``{{json .}}``) filtered by labels (value ``None`` = any)."""
        args = ["ps", "--no-trunc", "--format", "{{json .}}"]
        if all:
            args.append("--all")
        for key, value in (labels or {}).items():
            args += ["--filter", f"label={key}" if value is None else f"label={key}={value}"]
        return self._json_lines(self.run(*args).stdout)

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]:
        """Full ids of the containers with ``labels`` (and, if given, in one of ``states``)."""
        args = ["ps", "--all", "--quiet", "--no-trunc"]
        for key, value in labels.items():
            args += ["--filter", f"label={key}" if value is None else f"label={key}={value}"]
        for state in states:
            args += ["--filter", f"status={state}"]
        return [line for line in self.run(*args).stdout.split() if line]

    def ssh_ports_in_use(self) -> list[tuple[str, int]]:
        """``(container, port)`` of every container, running or not, labelled with an SSH
        port (cai's containers and their gateways). One label per line: a comma-joined
        label string cannot be split back when a workspace path holds a comma."""
        listing = self.run(
            "ps",
            "--all",
            "--filter",
            f"label={SSH_PORT}",
            "--format",
            f'{{{{.Names}}}} {{{{.Label "{SSH_PORT}"}}}}',
        ).stdout
        out = []
        for row in str(listing).splitlines():
            name, _, value = row.strip().rpartition(" ")
            if value.isdigit():
                out.append((name, int(value)))
        return out

    def create_container(self, args: Sequence[str]) -> str:
        """``docker create ARGS`` -> the new container's id."""
        return str(self.run("create", *args).stdout.strip())

    def start(self, name: str) -> None:
        try:
            self.run("start", name)
        except EngineUnreachable as exc:
            if "did not answer" not in str(exc):
                raise
            self.ping()  # the engine answers (else that is the error): the start hung
            raise Failed(
                f"container '{name}' did not start within {self.timeout:.0f} s though the "
                f"engine answers; see `docker logs {name}` and the engine's log"
            ) from None

    def stop(self, name: str, *, timeout: int = 10) -> None:
        self.run("stop", "--time", str(timeout), name, timeout=timeout + 60)

    def remove(self, *names: str, force: bool = False) -> None:
        if names:
            self.run("rm", *(["--force"] if force else []), *names)

    def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str | None = None,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed:
        args = ["exec", "-i"] if input is not None else ["exec"]
        if user is not None:
            args += ["--user", user]
        return self.run(*args, name, *command, input=input, timeout=timeout, check=check)

    def exec_lines(self, name: str, command: Sequence[str]) -> Iterator[str]:
        """The output lines of ``command`` in container ``name`` as they come (``tail -F``);
        the process ends when the caller stops iterating."""
        import subprocess

        proc = self.popen("exec", name, *command, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                yield raw.decode("utf-8", "replace").rstrip("\n")
        finally:
            proc.kill()
            proc.wait()

    def copy_to(self, name: str, tar_bytes: bytes, dest: str) -> None:
        """Extract a tar stream into ``dest`` of a (possibly stopped) container."""
        self.run("cp", "-", f"{name}:{dest}", input=tar_bytes, text=False)

    def logs_tail(self, name: str, lines: int = 20) -> str:
        proc = self.run("logs", "--tail", str(lines), name, check=False)
        return str(proc.stdout + proc.stderr).strip()

    def stats(self, name: str, timeout: float = 5.0) -> dict[str, Any] | None:
        proc = self.run(
            "stats",
            "--no-stream",
            "--no-trunc",
            "--format",
            "{{json .}}",
            name,
            check=False,
            timeout=timeout,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        data: dict[str, Any] = jsonfast.loads(proc.stdout.splitlines()[0])
        return data

    # ----------------------------------------------------------------- volumes
    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        proc = self.run("volume", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            if "no such volume" in proc.stderr.lower():
                return None
            raise self._translate(["volume", "inspect"], proc.stderr)
        data: dict[str, Any] = jsonfast.loads(proc.stdout)
        return data

    # ---------------------------------------------------------------- networks
    def inspect_network(self, name: str) -> dict[str, Any] | None:
        proc = self.run("network", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            text = proc.stderr.lower()
            if "no such network" in text or "not found" in text:
                return None
            raise self._translate(["network", "inspect"], proc.stderr)
        data: dict[str, Any] = jsonfast.loads(proc.stdout)
        return data

    def create_network(
        self,
        name: str,
        labels: Mapping[str, str],
        *,
        internal: bool = False,
        options: Mapping[str, str] | None = None,
    ) -> None:
        args = ["network", "create", "--driver", "bridge"]
        if internal:
            args.append("--internal")
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        for key, value in (options or {}).items():
            args += ["--opt", f"{key}={value}"]
        self.run(*args, name)

    def remove_network(self, name: str) -> bool:
        """Remove network ``name``; ``False`` when it did not exist."""
        proc = self.run("network", "rm", name, check=False)
        if proc.returncode == 0:
            return True
        text = proc.stderr.lower()
        if "no such network" in text or "not found" in text:
            return False
        raise self._translate(["network", "rm"], proc.stderr)

    def connect_network(self, network: str, container: str, aliases: Sequence[str] = ()) -> None:
        args = ["network", "connect"]
        for alias in aliases:
            args += ["--alias", alias]
        self.run(*args, network, container)

    def list_networks(self, labels: Mapping[str, str]) -> list[str]:
        args = ["network", "ls", "--format", "{{.Name}}"]
        for key, value in labels.items():
            args += ["--filter", f"label={key}={value}"]
        return [line for line in self.run(*args).stdout.split() if line]

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        args = ["volume", "create"]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        self.run(*args, name)

    # ------------------------------------------------------------------ images
    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        proc = self.run("image", "inspect", "--format", "{{json .}}", ref, check=False)
        if proc.returncode != 0:
            low = proc.stderr.lower()
            if "no such image" in low or "no such object" in low or "not found" in low:
                return None
            raise self._translate(["image", "inspect"], proc.stderr)
        data: dict[str, Any] = jsonfast.loads(proc.stdout)
        return data

    def list_images(self, reference: str | None = None) -> list[dict[str, Any]]:
        args = ["image", "ls", "--no-trunc", "--format", "{{json .}}"]
        if reference:
            args += ["--filter", f"reference={reference}"]
        return self._json_lines(self.run(*args).stdout)

    def remove_image(self, ref: str) -> None:
        self.run("image", "rm", ref)

    def pull(self, ref: str, timeout: float = 60.0) -> bool:
        """Try to pull ``ref``; ``False`` when no registry can give it (air-gapped)."""
        proc = self.run("pull", "--quiet", ref, check=False, timeout=timeout)
        return proc.returncode == 0

    def build(
        self,
        context_dir: Path,
        *,
        tag: str,
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        dockerfile: Path | None = None,
        stream: IO[str] | None = None,
        timeout: float = 3600.0,
    ) -> None:
        """``docker build``; output goes to ``stream`` (progress) or is kept for errors."""
        args = ["build", "--tag", tag]
        if dockerfile is not None:
            args += ["--file", str(dockerfile)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        args.append(str(context_dir))
        env = {**self.env, "DOCKER_BUILDKIT": self.env.get("DOCKER_BUILDKIT", "0")}
        import subprocess

        try:
            proc = subprocess.run(
                self.argv(*args),
                env=env,
                text=True,
                timeout=timeout,
                check=False,
                stdout=stream if stream is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except FileNotFoundError:
            raise EngineUnreachable(f"the docker CLI ('{self.docker}') is not installed") from None
        except subprocess.TimeoutExpired:
            raise Failed(f"building image '{tag}' took longer than {timeout:.0f} s") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout or "").strip().splitlines()[-15:])
            err = self._translate(["build"], tail)
            if isinstance(err, EngineUnreachable):
                raise err
            raise Failed(f"building image '{tag}' failed:\n{tail}")

    # ---------------------------------------------------------------- contexts
    def list_contexts(self) -> list[dict[str, Any]]:
        import subprocess

        proc = subprocess.run(
            [self.docker, "context", "ls", "--format", "{{json .}}"],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if proc.returncode != 0:
            return []
        return self._json_lines(proc.stdout)


def docker_available(docker: str = "docker") -> bool:
    import shutil

    return shutil.which(docker) is not None
