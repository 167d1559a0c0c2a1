"""The run use case: ``cai run [AGENT]`` (bare ``cai``), ``cai shell`` and ``cai exec``.

Make sure the workspace's container exists, runs and is reachable (``lifecycle``), then
say what to attach with: the ``ssh`` command line (or, for ``exec --root``, the
engine's) that the CLI ``exec``s into, so signals, the TTY and the exit code are that
program's own. ``--dry-run`` answers with the plan instead.

The hot path (DESIGN decision 2): when the workspace's container is cached and its SSH
control master is alive, the container is provably up, so the answer comes at once,
asking the engine nothing. This module is on that path: it imports neither ``typing``
nor ``dataclasses`` at run time, and the rest of the use case only when it is needed.
"""

from __future__ import annotations

from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Protocol

    from containai.domain.egress import Policy
    from containai.services.engine_select import Selection
    from containai.services.lifecycle import Lifecycle
    from containai.services.lookup import Lookup
    from containai.services.ports import Config, HostProbe
    from containai.services.run_request import RunRequest
    from containai.services.workspace import Settings, Workspace

    class Notes(Protocol):
        def info(self, message: str) -> None: ...

        def changed(self, message: str) -> None: ...

    class AttachSsh(Protocol):
        """What attaching needs of OpenSSH (``adapters.ssh.OpenSsh``)."""

        def master_alive(self, name: str) -> bool: ...

        def ssh_argv(
            self,
            name: str,
            remote: Sequence[str] | str | None,
            *,
            tty: bool,
            extra: Sequence[str] = (),
        ) -> list[str]: ...

        def remote_command(
            self, workspace: str, argv: Sequence[str], env: Mapping[str, str]
        ) -> str: ...

    class ContainerCache(Protocol):
        """Which container served a workspace last (``adapters.hotcache``)."""

        def read(self, workspace: str) -> str | None: ...

        def write(self, workspace: str, name: str) -> None: ...

    class RootExec(Protocol):
        """Running a command as root through the engine (``cai exec --root``)."""

        def exec_argv(
            self,
            name: str,
            command: Sequence[str],
            *,
            user: str,
            workdir: str,
            env: Mapping[str, str],
            tty: bool,
        ) -> list[str]: ...

    class RunWorld(Protocol):
        """The adapters and settings the use case reaches (``cli/app.App``), each made
        on first use."""

        @property
        def env(self) -> Mapping[str, str]: ...

        @property
        def out(self) -> Notes: ...

        @property
        def ssh(self) -> AttachSsh: ...

        @property
        def container_cache(self) -> ContainerCache: ...

        @property
        def lookup(self) -> Lookup: ...

        @property
        def host(self) -> HostProbe: ...

        @property
        def config(self) -> Config: ...

        @property
        def selection(self) -> Selection: ...

        @property
        def engine(self) -> RootExec: ...

        def settings(
            self, workspace: str | None, cli: Mapping[str, Any] | None = None
        ) -> Settings: ...

        def lifecycle(self, settings: Settings) -> Lifecycle: ...

        def egress_policy(self, settings: Settings) -> Policy: ...

        def confirm_sessions(self, name: str, sessions: Any) -> bool: ...

        def restore_forwards(
            self, name: str, workspace: str, settings: Settings | None = None
        ) -> None: ...


class Request(Record):
    """What the command line asked for (RUN-OPTIONS, validated by the CLI)."""

    __slots__ = (
        "agent",
        "command",
        "container",
        "cpus",
        "data_volume",
        "detached",
        "dry_run",
        "env",
        "force",
        "fresh",
        "keep",
        "memory",
        "reset",
        "rest",
        "root",
        "runtime",
        "stdin_tty",
        "stdout_tty",
        "template",
        "workspace",
    )

    def __init__(
        self,
        *,
        command: str,  # run | shell | exec
        workspace: Workspace,
        agent: str | None = None,
        rest: Sequence[str] = (),  # after `--` (run: the agent's; exec: CMD ARGS)
        env: Mapping[str, str] | None = None,  # -e KEY=VALUE
        container: str | None = None,
        data_volume: str | None = None,
        template: str | None = None,
        runtime: str | None = None,
        memory: str | None = None,
        cpus: str | None = None,
        fresh: bool = False,
        reset: bool = False,
        keep: bool = False,
        force: bool = False,
        detached: bool = False,
        dry_run: bool = False,
        root: bool = False,  # exec --root
        stdin_tty: bool = False,
        stdout_tty: bool = False,
    ) -> None:
        self._set(
            command=command,
            workspace=workspace,
            agent=agent,
            rest=tuple(rest),
            env=dict(env or {}),
            container=container,
            data_volume=data_volume,
            template=template,
            runtime=runtime,
            memory=memory,
            cpus=cpus,
            fresh=fresh,
            reset=reset,
            keep=keep,
            force=force,
            detached=detached,
            dry_run=dry_run,
            root=root,
            stdin_tty=stdin_tty,
            stdout_tty=stdout_tty,
        )

    command: str
    workspace: Workspace
    agent: str | None
    rest: tuple[str, ...]
    env: dict[str, str]
    container: str | None
    data_volume: str | None
    template: str | None
    runtime: str | None
    memory: str | None
    cpus: str | None
    fresh: bool
    reset: bool
    keep: bool
    force: bool
    detached: bool
    dry_run: bool
    root: bool
    stdin_tty: bool
    stdout_tty: bool


class Outcome(Record):
    """``argv``: the program to become (ssh, or the engine for ``--root``); ``plan``: the
    ``--dry-run`` answer; neither: done (``--detached``)."""

    __slots__ = ("argv", "plan")

    def __init__(self, argv: list[str] | None = None, plan: dict[str, Any] | None = None) -> None:
        self._set(argv=argv, plan=plan)

    argv: list[str] | None
    plan: dict[str, Any] | None


def agent_name(agent: str | None, settings: Settings) -> str:
    """The agent ``cai run`` starts: AGENT, else the setting ``agent.default``."""
    return str(agent or settings.value("agent.default"))


def start(request: Request, world: RunWorld) -> Outcome:
    """Attach at once through a live control master, else converge and attach."""
    workspace = request.workspace
    if request.container is None:
        workspace.check()  # /, /tmp, ~: exit 2 before anything is made or granted
    fast = _fast_path(request, world)
    if fast is not None:
        return fast
    req, settings = build_request(request, world)
    if request.dry_run:
        from containai.services.run_plan import dry_run

        return Outcome(plan=dry_run(request, req, settings, world))
    ready = world.lifecycle(settings).ensure_running(req, world.confirm_sessions)
    if request.container is None:
        world.container_cache.write(ready.workspace, ready.name)
    world.out.info(f"container '{ready.name}' ready ({ready.action}) on port {ready.ssh_port}")
    from containai.services.changes import ready_lines

    for line in ready_lines(ready, reset=req.reset):  # created/started ... (SPEC section 2)
        world.out.changed(line)
    # SPEC 17: background forwards back (the settings read once, when they are its own)
    same = ready.workspace == request.workspace.path
    world.restore_forwards(ready.name, ready.workspace, settings if same else None)
    if request.detached:
        return Outcome()
    if request.root:
        # CMD as root through the engine, never through the agent's SSH account, which
        # has no way to root (SPEC section 8); a TTY only when stdin is one.
        return Outcome(
            argv=world.engine.exec_argv(
                ready.name,
                request.rest,
                user="0",
                workdir=ready.workspace,
                env={"HOME": "/root", **request.env},
                tty=request.stdin_tty,
            )
        )
    return Outcome(argv=_attach(request, world, ready.name, ready.workspace, settings))


def _fast_path(request: Request, world: RunWorld) -> Outcome | None:
    """The attach command through a live control master; ``None`` when that is not
    proven (or the request changes something)."""
    r = request
    if r.dry_run or r.detached or r.fresh or r.reset or r.keep or r.root:
        return None
    if r.data_volume is not None or r.container is not None:
        return None
    workspace = r.workspace.path
    name = world.container_cache.read(workspace)
    if name is None or not world.ssh.master_alive(name):
        return None
    world.out.info(f"attaching to '{name}' through its live SSH control master")
    settings = world.settings(workspace) if r.command == "run" else None
    return Outcome(argv=_attach(r, world, name, workspace, settings))


def _attach(
    request: Request, world: RunWorld, name: str, workspace: str, settings: Settings | None
) -> list[str]:
    """The ``ssh`` command line: the agent (run), a login shell (shell), CMD (exec)."""
    tty = request.stdin_tty and request.stdout_tty
    if request.command == "exec":
        tty = request.stdin_tty
    extra: list[str] = []
    if request.command == "exec":
        remote = world.ssh.remote_command(workspace, request.rest, request.env)
    elif request.command == "shell":
        remote = world.ssh.remote_command(workspace, [], request.env)
    else:
        from containai import agents

        agent = agent_name(request.agent, settings or world.settings(workspace))
        if agent == "shell":
            remote = world.ssh.remote_command(workspace, [], request.env)
        else:
            remote = agents.agent_command(agent, workspace, list(request.rest), request.env)
        for var in agents.send_env(agent, world.env):
            extra += ["-o", f"SendEnv={var}"]
    return world.ssh.ssh_argv(name, remote, tty=tty, extra=extra)


def build_request(request: Request, world: RunWorld) -> tuple[RunRequest, Settings]:
    """The lifecycle's request from the command line and the effective settings."""
    from containai.services.run_request import RunRequest

    workspace = request.workspace
    settings = world.settings(
        workspace.path,
        {
            "data_volume": request.data_volume,
            "template": request.template,
            "runtime": request.runtime,
            "container.memory": request.memory,
            "container.cpus": request.cpus,
        },
    )
    runtime = settings.get("runtime")
    memory = settings.get("container.memory")
    cpus = settings.get("container.cpus")
    volume = settings.get("data_volume")
    req = RunRequest(
        workspace=workspace,
        container=request.container,
        data_volume=str(settings.value("data_volume")),
        data_volume_explicit=request.data_volume is not None,
        data_volume_vetted=volume.source in ("cli", "workspace"),
        template=str(settings.value("template")),
        runtime=str(runtime.value),
        runtime_may_lower=runtime.source != "repo",
        runtime_source=_source_name(world.config, workspace, runtime.source),
        fresh=request.fresh,
        reset=request.reset,
        keep=request.keep,
        force=request.force,
        memory=memory.value,
        cpus=cpus.value,
        memory_from_repo=memory.source == "repo",
        cpus_from_repo=cpus.source == "repo",
        memory_user=settings.user("container.memory"),
        cpus_user=settings.user("container.cpus"),
        env=request.env,
        port_range=settings.port_range(),
        forward_agent=bool(settings.value("ssh.forward_agent")),
        git_config_writable=bool(settings.value("git.config_writable")),
        egress=None if request.dry_run else world.egress_policy(settings),
    )
    return req, settings


def _source_name(config: Config, workspace: Workspace, source: str) -> str:
    """Where a setting came from, for messages: the file for ``repo``/``global``."""
    if source == "repo":
        return str(config.repo_path(workspace.path))
    if source == "global":
        return str(config.global_path)
    return source
