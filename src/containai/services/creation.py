"""The create step of ``cai run``: make a workspace's container (not started) with its
data volume, host key, mounts, SSH port and, behind egress, its network and gateway
wiring. ``Lifecycle.ensure_running`` (``lifecycle.py``) decides when to create and
starts what this made; the container's make-up is ``container_spec.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from containai.domain import labels as L
from containai.domain.engine_objects import NetworkInfo
from containai.domain.errors import Failed, NameInUse, Refused
from containai.domain.host_safety import GitGuard
from containai.domain.isolation import choose_runtime, is_weakened
from containai.services.container_keys import send_keys
from containai.services.container_spec import (
    MountGuard,
    build_spec,
    ca_mount,
    check_volume_owner,
    limits,
)
from containai.services.egress import Attachment, Egress
from containai.services.gateway_wiring import GatewayWiring, in_thread
from containai.services.identity import git_identity_env
from containai.services.port_lease import lease_port
from containai.services.ports import Engine, HostProbe, Locks, Ssh
from containai.services.run_request import ImageProvider, RunRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from containai.services.devcontainer import Devcontainers
    from containai.services.remote import RemotePlacement

Warn = Callable[[str], None]


class Creation:
    """Creates containers for ``Lifecycle``; ``taken_ports`` (ports the engine refused
    at a start in this run) is shared with it and never leased again."""

    def __init__(
        self,
        engine: Engine,
        ssh: Ssh,
        locks: Locks,
        host: HostProbe,
        images: ImageProvider,
        gateways: GatewayWiring,
        *,
        warn: Warn,
        git_guard: Callable[[str], GitGuard],
        egress: Egress | None,
        devcontainer: Devcontainers | None,
        remote: RemotePlacement | None,
    ) -> None:
        self.engine = engine
        self.ssh = ssh
        self.locks = locks
        self.host = host
        self.images = images
        self.gateways = gateways  # the gateway made beside the container
        self.warn = warn
        self.egress = egress
        self.devcontainer = devcontainer  # the workspace's devcontainer.json (SPEC 18)
        self.remote = remote  # on a remote engine: no bind mounts (SPEC section 16)
        self.guard_mounts = MountGuard(git_guard, host, warn)
        self.taken_ports: set[int] = set()

    def create(
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
            # the start (of the container, or of its gateway): ``Lifecycle._start`` says so
            # and ``ensure_running`` makes it again on the next port.
            port = lease_port(
                self.engine, self.host, req.port_range, preferred_port, self.taken_ports, own=name
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
