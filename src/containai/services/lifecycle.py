"""The container lifecycle: converge a workspace's container to running (create, start,
attach, recreate), gateway wiring included. Lookup is ``lookup.py``, stopping
``stopping.py``, the container's make-up ``container_spec.py``, a remote engine's
workspace placement ``remote.py``.

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
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from containai.domain import labels as L
from containai.domain import naming
from containai.domain.engine_objects import ContainerInfo, NetworkInfo
from containai.domain.errors import (
    CaiError,
    Failed,
    NameInUse,
    OutOfMemory,
    PortTaken,
    Refused,
    UsageError,
)
from containai.domain.host_safety import GitGuard
from containai.domain.isolation import choose_runtime, is_weakened
from containai.services.container_keys import heal_pin, install_keys, send_keys
from containai.services.container_spec import (
    MountGuard,
    build_spec,
    ca_mount,
    check_volume_owner,
    container_user,
    limits,
    template_drift,
)
from containai.services.egress import POLICY_LABEL, Attachment, Egress
from containai.services.gateway_wiring import GatewayWiring, in_thread
from containai.services.identity import git_identity_env
from containai.services.lookup import Lookup, Target, entry_elsewhere
from containai.services.port_lease import lease_port
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
        self.guard_mounts = MountGuard(git_guard, host, warn)
        # The gateway made or started beside the workspace container; joined by _start.
        self.gateways = GatewayWiring(egress, warn)
        self._taken_ports: set[int] = set()  # refused by the engine at a start in this run

    def _create(
        self, req: RunRequest, name: str, volume: str, preferred_port: int | None, runtime: str
    ) -> tuple[int, str]:
        """Create the container (not started); return its SSH port and its runtime
        (``auto`` resolved to the strongest the engine has). Never for a directory that
        may not be a workspace (``/tmp``, a home: exit 2), whatever ``--container`` says."""
        req.workspace.check()
        # The workspace network (egress) is made from the start, beside the checks below
        # (it needs none of them); if the container is not made after all, a network made
        # here goes again (``_unmake``).
        egress, workspace = self.egress, req.workspace.path
        network = None
        if egress is not None and req.egress is not None and req.egress.mode != "open":
            network = in_thread(lambda: egress.prepare(name, workspace))
        try:
            return self._make(req, name, volume, preferred_port, runtime, network)
        except BaseException:
            self._unmake(name, network)
            raise

    def _unmake(self, name: str, network: Future[tuple[Attachment, NetworkInfo]] | None) -> None:
        """After a failed ``_make``: the network made for it, unless the container or its
        gateway was made after all (the next run takes them as they are)."""
        if network is None or self.egress is None:
            return
        with contextlib.suppress(Exception):
            attach, _net = network.result()
            if attach.fresh and not self.gateways.started and self.engine.find(name) is None:
                self.engine.remove_network(attach.network)

    def _make(
        self,
        req: RunRequest,
        name: str,
        volume: str,
        preferred_port: int | None,
        runtime: str,
        network: Future[tuple[Attachment, NetworkInfo]] | None,
    ) -> tuple[int, str]:
        # The engine's runtimes, the data volume and the image are asked for at once
        # (a round trip each); nothing of the container is made before the runtime is
        # known to exist.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cai-create") as pool:
            runtimes = pool.submit(self.engine.runtimes)
            existing_volume = pool.submit(self.engine.volume, volume)
            dc, ws = self.devcontainer, req.workspace.path
            image = (
                dc.image(ws, req.template, lambda: self.images.ensure(req.template))
                if dc is not None
                else self.images.ensure(req.template)
            )
            available = runtimes.result()
            runtime, warning = choose_runtime(
                runtime, available, may_lower=req.runtime_may_lower, source=req.runtime_source
            )
            volume_info = existing_volume.result()
            volume_missing = volume_info is None
        if warning:
            self.warn(warning)
        if network is not None and self.egress is not None:
            # The gateway's image is asked for (or built) once the container's is there:
            # never two builds at once, each drawing its progress.
            in_thread(self.egress.gateway_image)
        if volume_info is not None and not (req.data_volume_explicit or req.data_volume_vetted):
            check_volume_owner(volume, volume_info, req.workspace.path)
        if volume_missing:
            try:
                self.engine.create_volume(volume, {L.MANAGED: L.TRUE})
            except Failed:
                if self.engine.volume(volume) is None:
                    raise
        private, public = self.ssh.ensure_host_key(name)
        uid, gid = self.host.agent_ids(req.workspace.path)
        if self.remote is None:  # the workspace bound at its own path, guarded
            mounts = [*self.guard_mounts(req, uid, gid), *ca_mount(self.images.ca_bundle_path())]
        else:  # a volume on the remote at that path; nothing of this machine is mounted
            mounts = self.remote.mounts(name, ws)
        memory, cpus = limits(req, self.host, self.warn)
        with self.locks.ports():
            # A port the engine still holds (a container it has not released) shows at
            # the start (of the container, or of its gateway): ``_start`` says so and
            # ``ensure_running`` makes it again on the next port.
            port = lease_port(
                self.engine, self.host, req.port_range, preferred_port, self._taken_ports, own=name
            )
            wiring = self.gateways.wiring(req, name, port, runtime, network)
            spec = build_spec(
                req,
                name=name,
                volume=volume,
                port=port,
                runtime=runtime,
                weakened=is_weakened(runtime, available),
                image=image,
                ids=(uid, gid),
                mounts=mounts,
                bind_workspace=self.remote is None,
                wiring=wiring,
                memory=memory,
                cpus=cpus,
                extra_env=dc.container_env(ws) if dc is not None else {},
                extra_labels=dc.labels(ws, image) if dc is not None else {},
                identity=git_identity_env(self.host),  # user.name/email, if the volume has none
            )
            try:
                self.engine.create(spec)
            except NameInUse:
                # Someone created that name meanwhile: reuse it only if it is this
                # workspace's own managed container, never another's or an unmanaged one.
                info = self.engine.find(name)
                labels = {} if info is None else dict(info.labels)
                if L.is_managed(labels) and labels.get(L.WORKSPACE) == req.workspace.path:
                    return int(labels.get(L.SSH_PORT, port)), labels.get(L.RUNTIME, runtime)
                raise Refused(
                    f"container name '{name}' was taken meanwhile by another workspace or a "
                    "container cai does not manage; run the command again (cai then picks "
                    "the next free name) or choose one with --container NAME"
                ) from None
        self.ssh.pin_host_key(name, public)
        send_keys(self.engine, self.ssh, name, private, public)
        if self.remote is not None:  # the workspace copy and the CA bundle, sent
            self.remote.after_create(name, ws, uid, gid, self.images.ca_bundle_path())
        if dc is not None:
            dc.prepare(name, ws)  # remoteEnv for sshd, before the first start
        return port, runtime

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
                port, runtime = self._create(req, target.name, volume, preferred_port, runtime)
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
                    port, runtime = self._create(req, target.name, volume, None, runtime)
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
                    self._taken_ports.add(port)  # the engine holds it: never again this run
                    self.engine.remove(target.name, force=True)
                    if attempt == _START_ATTEMPTS - 1:
                        tried = ", ".join(map(str, sorted(self._taken_ports)))
                        raise Failed(
                            f"no SSH port could be published for container '{target.name}': "
                            f"the engine holds each port tried ({tried}); run the command "
                            "again, or free ports with `cai gc`"
                        ) from None
                    port, runtime = self._create(req, target.name, volume, None, runtime)
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
        name), which ``_create`` resolves and checks against the engine."""
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
