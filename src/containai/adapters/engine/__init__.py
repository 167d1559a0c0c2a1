"""The Docker engine, through the ``docker`` CLI the user already runs (DESIGN decisions
1 and 9): the engine port (``services/ports.Engine``) in Docker's terms.

Services ask for what they mean and get ``domain/engine_objects`` values back; the
command lines are built here and in ``argv.py`` (``ContainerSpec`` -> ``docker
create``), the JSON and text Docker answers are read in ``shapes.py``, and
``client.py`` runs ``docker`` against the selected context and turns its failures
into domain errors. Nothing else in cai knows Docker's argv, ``--format`` templates,
inspect shapes or size units.
"""

from __future__ import annotations

from containai import jsonfast
from containai.adapters.engine import shapes
from containai.adapters.engine.client import (
    context_exists,
    context_host,
    context_meta,
    context_names,
    current_docker_context,
    docker_available,
    docker_config_dir,
)
from containai.adapters.engine.storage import VolumesAndNetworks, _missing
from containai.domain import labels as L
from containai.domain.engine_objects import CommandResult
from containai.domain.errors import EngineUnreachable, Failed, InUse, OutOfMemory

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from pathlib import Path
    from typing import Any

    from containai.domain.engine_facts import EngineInfo, EngineVersion
    from containai.domain.engine_objects import (
        ContainerInfo,
        ContainerSpec,
        ContainerStats,
        ImageInfo,
        Removal,
    )

__all__ = [
    "DockerEngine",
    "context_exists",
    "context_host",
    "context_meta",
    "context_names",
    "current_docker_context",
    "docker_available",
    "docker_config_dir",
]

# How a start killed for lack of memory reads (runc's OOM kill, gVisor's sandbox killed
# while booting: exit status 137, or its start RPC cut off), lower case.
_OUT_OF_MEMORY = (
    "exit status 137",
    "oom-kill",
    "out of memory",
    "cannot allocate memory",
    "startroot",
)


def _filters(labels: Mapping[str, str | None]) -> list[str]:
    args: list[str] = []
    for key, value in labels.items():
        args += ["--filter", f"label={key}" if value is None else f"label={key}={value}"]
    return args


def _result(proc: Any) -> CommandResult:
    return CommandResult(proc.returncode, str(proc.stdout or ""), str(proc.stderr or ""))


class DockerEngine(VolumesAndNetworks):
    """One engine, selected once per command; ``context=None`` defers to DOCKER_HOST."""

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

    def engine_version(self) -> EngineVersion:
        """The server's version (``EngineUnreachable`` when the engine does not answer)."""
        return shapes.version_of(self.version())

    def engine_info(self) -> EngineInfo:
        return shapes.info_of(self.info())

    def runtimes(self) -> list[str]:
        """OCI runtimes the engine knows (``runc``, ``runsc``, ``sysbox-runc`` ...)."""
        return sorted((self.info().get("Runtimes") or {}).keys())

    # ------------------------------------------------------- finding containers
    def find(self, name: str) -> ContainerInfo | None:
        """One container by name or id, or ``None`` when it does not exist."""
        proc = self.run("container", "inspect", "--format", "{{json .}}", name, check=False)
        if proc.returncode != 0:
            if _missing(proc.stderr, "no such container", "no such object"):
                return None
            raise self._translate(["container", "inspect"], proc.stderr)
        return shapes.container_of(jsonfast.loads(proc.stdout))

    def find_many(self, refs: Iterable[str]) -> list[ContainerInfo]:
        """Many containers in one call (those that do not exist are left out)."""
        refs = list(refs)
        if not refs:
            return []
        proc = self.run("container", "inspect", "--format", "{{json .}}", *refs, check=False)
        if proc.returncode != 0 and not proc.stdout.strip():
            if _missing(proc.stderr, "no such"):
                return []
            raise self._translate(["container", "inspect"], proc.stderr)
        return [shapes.container_of(doc) for doc in self.json_lines(proc.stdout)]

    def list_containers(
        self,
        labels: Mapping[str, str | None] | None = None,
        *,
        keys: Sequence[str] = (),
        mounts: bool = False,
    ) -> list[ContainerInfo]:
        """Every container (running or not) with ``labels`` (value ``None``: any value),
        in one call; each with the exact values of the labels in ``keys`` (and, with
        ``mounts``, the sources of its mounts)."""
        args = ["ps", "--all", "--no-trunc", *_filters(labels or {})]
        out = self.run(*args, "--format", shapes.ps_format(keys, mounts=mounts)).stdout
        return [shapes.container_of_row(row) for row in self.json_lines(str(out))]

    def list_managed(self) -> list[ContainerInfo]:
        """Every container cai manages (``containai.managed=true``), in ONE call, with
        the labels of ``shapes.MANAGED_KEYS``."""
        out = self.run(
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            f"label={L.MANAGED_FILTER}",
            "--format",
            shapes.LIST_FORMAT,
        ).stdout
        rows = [
            shapes.container_of_row(jsonfast.loads(line))
            for line in str(out).splitlines()
            if line.strip()
        ]
        return [r for r in rows if L.is_managed(r.labels)]

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]:
        """Full ids of the containers with ``labels`` (and, if given, in one of ``states``)."""
        args = ["ps", "--all", "--quiet", "--no-trunc", *_filters(labels)]
        for state in states:
            args += ["--filter", f"status={state}"]
        return [line for line in self.run(*args).stdout.split() if line]

    def used_ssh_ports(self) -> list[tuple[str, int]]:
        """``(container, port)`` of every container, running or not, labelled with an SSH
        port (cai's containers and their gateways)."""
        found = self.list_containers({L.SSH_PORT: None}, keys=(L.SSH_PORT,))
        out = []
        for c in found:
            value = c.labels.get(L.SSH_PORT, "").strip()
            if value.isdigit():
                out.append((c.name, int(value)))
        return out

    # ------------------------------------------------------ making and running
    def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container of ``spec``; its id."""
        from containai.adapters.engine.argv import create_args

        return str(self.run("create", *create_args(spec)).stdout.strip())

    def run_once(self, spec: ContainerSpec, *, timeout: float) -> CommandResult:
        """Run the container of ``spec`` to its end, attached; what it printed."""
        from containai.adapters.engine.argv import create_args

        return _result(self.run("run", *create_args(spec), check=False, timeout=timeout))

    def start(self, name: str) -> None:
        """``PortTaken`` when a port it publishes is taken, ``OutOfMemory`` when the
        runtime was killed for lack of memory while starting it."""
        try:
            self.run("start", name)
        except InUse:
            raise
        except Failed as exc:
            if any(marker in str(exc).lower() for marker in _OUT_OF_MEMORY):
                raise OutOfMemory(str(exc)) from None
            raise
        except EngineUnreachable as exc:
            if "did not answer" not in str(exc):
                raise
            self.ping()  # the engine answers (else that is the error): the start hung
            raise Failed(
                f"container '{name}' did not start within {self.timeout:.0f} s though the "
                f"engine answers; see `docker logs {name}` and the engine's log"
            ) from None

    def start_attached(self, name: str, *, timeout: float) -> CommandResult:
        """Start a (helper) container and wait for its end; what it printed. Ctrl-C is
        forwarded to it."""
        return _result(self.run("start", "--attach", name, check=False, timeout=timeout))

    def stop(self, name: str, *, timeout: int = 10) -> None:
        self.run("stop", "--time", str(timeout), name, timeout=timeout + 60)

    def remove(self, *names: str, force: bool = False) -> None:
        if names:
            self.run("rm", *(["--force"] if force else []), *names)

    def remove_stopped(self, refs: Sequence[str]) -> Removal:
        """Remove stopped containers in one call, never by force: the engine refuses one
        that runs. ``Failed`` when the call failed as a whole."""
        if not refs:
            return shapes.removal_of([], "", "")
        proc = self.run("rm", *refs, check=False)
        return shapes.removal_of(refs, str(proc.stdout or ""), str(proc.stderr or ""))

    def remove_forced(self, refs: Sequence[str]) -> Removal:
        """Remove containers in one call, by force (running ones too): for containers that
        hold no data (gateways). Those already gone are ``gone``."""
        if not refs:
            return shapes.removal_of([], "", "")
        proc = self.run("rm", "--force", *refs, check=False)
        return shapes.removal_of(refs, str(proc.stdout or ""), str(proc.stderr or ""))

    def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str | None = None,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        args = ["exec", "-i"] if input is not None else ["exec"]
        if user is not None:
            args += ["--user", user]
        proc = self.run(*args, name, *command, input=input, timeout=timeout, check=check)
        return _result(proc)

    def exec_argv(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str,
        workdir: str,
        env: Mapping[str, str],
        tty: bool,
    ) -> list[str]:
        """The ``docker exec`` command line to exec into (``cai exec --root``): stdin
        always passes through, a TTY only when asked."""
        args = ["exec", "-it" if tty else "-i", "-u", user, "-w", workdir]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        return self.argv(*args, name, *command)

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

    def copy_in(self, name: str, tar_bytes: bytes, dest: str) -> None:
        """Extract a tar stream into ``dest`` of a (possibly stopped) container."""
        self.run("cp", "-", f"{name}:{dest}", input=tar_bytes, text=False)

    def copy_in_file(self, name: str, tar_path: Path, dest: str) -> None:
        """Stream a tar file into ``dest`` of a (possibly stopped) container. Members keep
        the tar's uid/gid: that is the daemon's default for a tar stream, whereas
        ``docker cp --archive`` would give every file the image's ``USER`` (root)."""
        with open(tar_path, "rb") as fh:
            args = ["cp", "-", f"{name}:{dest}"]
            self.check_stream(args, self.popen(*args, stdin=fh))

    def send_image(self, ref: str, to: DockerEngine, *, timeout: float = 3600.0) -> None:
        """``docker save REF | docker --context TO load``: the image with its tags and
        labels onto another engine (SPEC section 16; docs/remote.md for the choice)."""
        import subprocess

        save = self.popen("save", ref, stdout=subprocess.PIPE)
        try:
            load = to.popen("load", "--quiet", stdin=save.stdout, stdout=subprocess.DEVNULL)
            assert save.stdout is not None
            save.stdout.close()  # load holds it now; save sees EPIPE if load dies
            try:
                load.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                load.kill()
                raise Failed(
                    f"sending image '{ref}' to context '{to.display_name}' took longer than "
                    f"{timeout:.0f} s"
                ) from None
            to.check_stream(["load"], load)
            self.check_stream(["save"], save)
        finally:
            if save.poll() is None:
                save.kill()
                save.wait()

    def logs_tail(self, name: str, lines: int = 20) -> str:
        proc = self.run("logs", "--tail", str(lines), name, check=False)
        return str(proc.stdout + proc.stderr).strip()

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        """``docker logs [--tail N] [--follow] NAME``, line by line (``streaming.py``)."""
        from containai.adapters.engine import streaming

        return streaming.logs(self, name, tail=tail, follow=follow)

    def stats(self, name: str, timeout: float = 5.0) -> ContainerStats | None:
        """Memory (bytes) and CPU use of a running container; ``None`` when the engine
        has none (``EngineUnreachable`` past ``timeout``)."""
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
        return shapes.stats_of(jsonfast.loads(proc.stdout.splitlines()[0]))

    # ------------------------------------------------------------------ images
    def _inspect_image(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect`` as JSON; ``None`` when the image is not here."""
        proc = self.run("image", "inspect", "--format", "{{json .}}", ref, check=False)
        if proc.returncode != 0:
            if _missing(proc.stderr, "no such image", "no such object", "not found"):
                return None
            raise self._translate(["image", "inspect"], proc.stderr)
        data: dict[str, Any] = jsonfast.loads(proc.stdout)
        return data

    def image(self, ref: str) -> ImageInfo | None:
        """A local image by reference or id; ``None`` when it is not here."""
        doc = self._inspect_image(ref)
        return None if doc is None else shapes.image_of(doc)

    def list_images(self, reference: str | None = None) -> list[ImageInfo]:
        """Local images (every tag its own), those matching ``reference`` if given."""
        args = ["image", "ls", "--no-trunc", "--format", "{{json .}}"]
        if reference:
            args += ["--filter", f"reference={reference}"]
        return [shapes.image_of_row(row) for row in self.json_lines(self.run(*args).stdout)]

    def remove_image(self, ref: str) -> None:
        self.run("image", "rm", ref)

    def pull(self, ref: str, timeout: float = 60.0) -> bool:
        """Try to pull ``ref``; ``False`` when no registry can give it (air-gapped)."""
        proc = self.run("pull", "--quiet", ref, check=False, timeout=timeout)
        return proc.returncode == 0

    def tag_image(self, source: str, target: str) -> None:
        """``docker tag SOURCE TARGET`` (moves ``target`` if it names another image)."""
        self.run("tag", source, target)

    def build(
        self,
        context_dir: Path,
        *,
        tag: str,
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        dockerfile: Path | None = None,
        on_line: Callable[[str, tuple[int, int] | None], None] | None = None,
        timeout: float = 3600.0,
        target: str | None = None,
    ) -> None:
        """``docker build``, its output line by line to ``on_line`` (``streaming.py``)."""
        from containai.adapters.engine import streaming

        streaming.build(
            self,
            context_dir,
            tag=tag,
            build_args=build_args,
            labels=labels,
            dockerfile=dockerfile,
            on_line=on_line,
            timeout=timeout,
            target=target,
        )
