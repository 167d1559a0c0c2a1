"""The container lifecycle: converge a workspace's container to running (create, start,
attach, recreate), gateway wiring included. The create step (``Creation.create``) is
``creation.py``, lookup ``lookup.py``, stopping ``stopping.py``, the container's make-up
``container_spec.py``, a remote engine's workspace placement ``remote.py``.

``ensure_running`` is idempotent convergence (DESIGN decision 5): it looks at
what exists and does only the missing steps, under a per-workspace lock, so a
``cai run`` killed at any point is finished by the next one and concurrent
runs end with one container. Services never print: questions go through the
``confirm`` callback, warnings through ``warn``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from containai.domain import labels as L
from containai.domain import naming
from containai.domain.engine_objects import ContainerInfo
from containai.domain.errors import CaiError, Failed, OutOfMemory, PortTaken, UsageError
from containai.domain.host_safety import GitGuard
from containai.services.container_keys import heal_pin, install_keys
from containai.services.container_spec import container_user, template_drift
from containai.services.creation import Creation
from containai.services.egress import POLICY_LABEL, Egress
from containai.services.gateway_wiring import GatewayWiring, in_thread
from containai.services.lookup import Lookup, Target, entry_elsewhere
from containai.services.ports import Config, Engine, HostProbe, Locks, Ssh
from containai.services.run_plan import label_int
from containai.services.run_request import ImageProvider, Ready, RunRequest
from containai.services.stopping import Confirm, guard_sessions
from containai.services.workspace import Workspace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from containai.services.devcontainer import Devcontainers
    from containai.services.remote import RemotePlacement

Warn = Callable[[str], None]
T = TypeVar("T")
_START_ATTEMPTS = 3  # starts of a container whose port the engine refuses, new port each


class Lifecycle:
    def __init__(
        self,
        engine: Engine,
        ssh: Ssh,
        config: Config,
        locks: Locks,
        host: HostProbe,
        images: ImageProvider,
        *,
        warn: Warn = lambda _msg: None,
        info: Warn = lambda _msg: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        git_guard: Callable[[str], GitGuard] = lambda _workspace: GitGuard(),
        egress: Egress | None = None,
        devcontainer: Devcontainers | None = None,
        remote: RemotePlacement | None = None,
    ) -> None:
        self.devcontainer = devcontainer  # the workspace's devcontainer.json (SPEC 18)
        self.engine = engine
        self.ssh = ssh
        self.config = config
        self.locks = locks
        self.host = host
        self.images = images
        self.warn = warn
        self.info = info
        self.clock = clock
        self.egress = egress
        self.remote = remote  # on a remote engine: no bind mounts (SPEC section 16)
        here = "" if remote is None else remote.context
        self.lookup = Lookup(engine, config, elsewhere=entry_elsewhere(ssh, here))
        # The gateway made or started beside the workspace container; joined by _start.
        self.gateways = GatewayWiring(egress, warn)
        # The create step; its taken_ports: refused by the engine at a start in this run.
        self.creation = Creation(
            engine,
            ssh,
            locks,
            host,
            images,
            self.gateways,
            warn=warn,
            git_guard=git_guard,
            egress=egress,
            devcontainer=devcontainer,
            remote=remote,
        )

    def _start(self, name: str) -> None:
        """Start the container, then wait for its gateway (started meanwhile)."""
        try:
            self.engine.start(name)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.gateways.join()  # its own failure, if any, is the lesser news
            if isinstance(exc, PortTaken):
                raise _PortTaken() from None
            if not isinstance(exc, Failed):
                raise
            cause = str(exc).removeprefix("docker start failed: ")
            if isinstance(exc, OutOfMemory):
                raise Failed(
                    f"container '{name}' did not start: its memory limit is too small (the "
                    f"runtime was killed: {cause}); give it more with --memory 4g or "
                    "`cai config set container.memory 4g`"
                ) from None
            raise Failed(f"container '{name}' did not start: {cause}") from None
        try:
            self.gateways.join()
        except PortTaken:  # the gateway publishes the SSH port
            raise _PortTaken() from None

    # --------------------------------------------------------- ensure_running
    def ensure_running(self, req: RunRequest, confirm: Confirm) -> Ready:
        """Converge the workspace's container to running and reachable over SSH."""
        self.images.ca_bundle_path()  # a bad CA bundle is refused before anything is made
        self.ssh.ensure_user_key()
        lock_workspace = req.workspace.path
        if req.container is not None:
            # --container may name another workspace's container: serialize with that one.
            named = self.lookup.find(req.workspace, req.container)
            if named.exists:
                lock_workspace = named.workspace
        with self.locks.workspace(lock_workspace), self.gateways.awaited():
            target = self.lookup.find(req.workspace, req.container)
            workspace = req.workspace
            if target.exists and target.workspace != workspace.path:
                workspace = Workspace(target.workspace, workspace.branch)
                req.workspace = workspace
            volume = req.data_volume
            action = "attach"
            preferred_port: int | None = None
            if target.exists:
                labels = target.labels
                preferred_port = label_int(labels.get(L.SSH_PORT))
                if req.keep and not L.is_kept(labels) and not (req.fresh or req.reset):
                    raise UsageError(
                        f"container '{target.name}' was created without --keep and labels are "
                        "fixed at creation; recreate it with `cai --fresh --keep`"
                    )
                current_volume = labels.get(L.DATA_VOLUME, volume)
                if req.fresh or req.reset:
                    guard_sessions(
                        self.lookup,
                        self.ssh,
                        target,
                        force=req.force,
                        confirm=confirm,
                        info=self.info,
                    )
                if req.reset:
                    volume = self._new_reset_volume(workspace)
                elif req.fresh:
                    volume = volume if req.data_volume_explicit else current_volume
                elif req.data_volume_explicit and current_volume != volume:
                    raise Failed(
                        f"container '{target.name}' uses data volume '{current_volume}', not "
                        f"'{volume}'; recreate it with `cai --fresh --data-volume {volume}`"
                    )
                else:
                    volume = current_volume
                if volume == current_volume:
                    req.data_volume_vetted = True
                if req.fresh or req.reset:
                    self.ssh.exit_master(target.name)
                    self.engine.remove(target.name, force=True)
                    target = Target(target.name, None, workspace.path)
                    action = "recreate"
            elif req.reset:
                volume = self._new_reset_volume(workspace)
            runtime = self._runtime(req.runtime, target)
            created = False
            drift: Future[None] | None = None
            if not target.exists:
                port, runtime = self.creation.create(
                    req, target.name, volume, preferred_port, runtime
                )
                action = "create" if action == "attach" else action
                created = True
            else:
                port = label_int(target.labels.get(L.SSH_PORT)) or 0
                # Only a warning: its image checks run beside the start (joined below).
                drift = in_thread(lambda: template_drift(self.images, target, self.warn))
                if target.labels.get(POLICY_LABEL) not in (None, "open") and self.egress:
                    in_thread(self.egress.gateway_image)  # asked for once, beside the rest
            # The first attempt goes by what is known (just created, or inspected by
            # find under this lock); a retry asks the engine again.
            known: str | None = "created" if created else target.state
            for attempt in range(_START_ATTEMPTS):
                if known is not None:
                    status, known = known, None
                else:
                    info = self.engine.find(target.name)
                    if info is None:
                        raise Failed(
                            f"container '{target.name}' disappeared while starting it; "
                            "run the command again"
                        )
                    status = info.state
                if status == "running":
                    if not created:
                        self.gateways.ensure(req, target, port, runtime, attach=True)
                    break
                # The gateway as the engine has it now (one inspect, handed on to its
                # start below); a running one is stopped first: that frees its port for
                # the check below.
                gateway: tuple[ContainerInfo | None] | None = None
                if (
                    not created
                    and target.labels.get(POLICY_LABEL) not in (None, "open")
                    and self.egress is not None
                ):
                    found = self.egress.gateway(target.name)
                    if found is not None and found.state == "running":
                        self.egress.stop(target.name)
                    else:
                        gateway = (found,)
                if status == "created" and not created:
                    # Created by a run that died before starting it: resend the keys.
                    install_keys(self.engine, self.ssh, target.name)
                # A container made in this run behind a gateway: the port is its gateway's,
                # published a moment ago (taken, by us).
                behind_gateway = (
                    created
                    and self.egress is not None
                    and req.egress is not None
                    and req.egress.mode != "open"
                )
                if not behind_gateway and not self.host.port_is_free(port):
                    # Its port was taken meanwhile: recreate on a new port (volume kept).
                    self.ssh.exit_master(target.name)
                    self.engine.remove(target.name, force=True)
                    port, runtime = self.creation.create(req, target.name, volume, None, runtime)
                    created = True
                    action = "recreate" if action != "create" else action
                if action == "attach":
                    action = "start"
                if not created:
                    self.gateways.ensure(req, target, port, runtime, gateway=gateway)
                try:
                    self._start(target.name)
                    break
                except Failed:
                    if created:  # made for this run with what failed: the next run makes it anew
                        with contextlib.suppress(CaiError):
                            self.engine.remove(target.name, force=True)
                    raise
                except _PortTaken:
                    self.creation.taken_ports.add(port)  # the engine holds it: never again this run
                    self.engine.remove(target.name, force=True)
                    if attempt == _START_ATTEMPTS - 1:
                        tried = ", ".join(map(str, sorted(self.creation.taken_ports)))
                        raise Failed(
                            f"no SSH port could be published for container '{target.name}': "
                            f"the engine holds each port tried ({tried}); run the command "
                            "again, or free ports with `cai gc`"
                        ) from None
                    port, runtime = self.creation.create(req, target.name, volume, None, runtime)
                    created = True
            user = container_user(None if created else target.info)
            if user == "root":
                self.warn(
                    f"container '{target.name}' was created by an older cai with root as its "
                    "agent; recreate it with `cai --fresh` (the agent never runs as root now)"
                )
            self.ssh.write_entry(
                target.name,
                port=port,
                user=user,
                forward_agent=req.forward_agent,
                proxy_jump=None if self.remote is None else self.remote.jump,
                context=None if self.remote is None else self.remote.context,
                workspace=workspace.path,
            )
            if not created and action in ("attach", "start"):
                heal_pin(self.engine, self.ssh, target.name)
            warning = self.ssh.ensure_include()
            if warning:
                self.warn(warning)
            # Recorded while the container boots (its sshd is not up yet): the record
            # names a container that exists whether or not the login below succeeds.
            state: dict[str, Any] = {"container_name": target.name}
            if created:
                state["created_at"] = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            if req.reset or (req.data_volume_explicit and created):
                state["data_volume"] = volume
            if req.container is None or target.workspace == req.workspace.path:
                self.config.set_workspace_state(workspace.path, state)
            try:
                # A remote port is on the remote's loopback: no banner to poll from here.
                local_port = port if self.remote is None else None
                self.ssh.wait_ready(target.name, timeout=req.ssh_timeout, port=local_port)
            except Failed as exc:
                if "host key" in str(exc).lower() or "identification" in str(exc).lower():
                    raise
                log = self.engine.logs_tail(target.name, 20)
                raise Failed(
                    f"container '{target.name}' is not reachable over SSH on 127.0.0.1:{port} "
                    f"after {req.ssh_timeout:.0f} s ({exc}); last lines of its log:\n{log}"
                ) from None
            if self.devcontainer is not None and action != "attach":
                self.devcontainer.started(target.name, workspace.path)  # lifecycle commands
            if self.remote is not None:  # the git remote `cai-<name>` (SPEC section 16)
                self.remote.link(target.name, workspace.path)
            if drift is not None:
                drift.result()  # (template_drift never raises)
            return Ready(target.name, workspace.path, volume, port, user, action, runtime)

    def _runtime(self, requested: str, target: Target) -> str:
        """An existing container's runtime; for a new one, what was asked (``auto`` or a
        name), which ``Creation.create`` resolves and checks against the engine."""
        if target.exists:
            return target.labels.get(L.RUNTIME, "runc")
        return requested

    def _new_reset_volume(self, workspace: Workspace) -> str:
        """A new, empty volume for ``--reset``, recorded in workspace state at once, so a
        run that dies later still leaves the workspace pointing at it."""
        name = naming.reset_volume_name(
            workspace.repo, workspace.branch, self.clock(), secrets.token_hex(3)
        )
        self.engine.create_volume(name, {L.MANAGED: L.TRUE, L.WORKSPACE: workspace.path})
        self.config.set_workspace_state(workspace.path, {"data_volume": name})
        return name


class _PortTaken(Exception):
    pass
