"""The egress side of convergence (SPEC 15): how a new container is wired (the
workspace's internal network, its gateway, the proxy variables; or open), an existing
container's gateway brought to running with the current policy, and the gateway's job
run beside the container's own create and start (its address is fixed with the
network, so nothing waits for it until the first SSH login)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from containai.domain.egress import Policy
from containai.domain.engine_objects import ContainerInfo, NetworkInfo, Publish
from containai.services.container_spec import CONTAINER_SSH_PORT, Wiring
from containai.services.egress import POLICY_LABEL, Attachment, Egress, proxy_env
from containai.services.lookup import Target
from containai.services.run_request import RunRequest

T = TypeVar("T")
Warn = Callable[[str], None]


class GatewayWiring:
    """One convergence's gateway: at most one job (make or start) in flight."""

    def __init__(self, egress: Egress | None, warn: Warn) -> None:
        self.egress = egress
        self.warn = warn
        self._gateway: Future[object] | None = None
        self.started = False  # a gateway job was started (the network is in use)

    def wiring(
        self,
        req: RunRequest,
        name: str,
        port: int,
        runtime: str,
        network: Future[tuple[Attachment, NetworkInfo]] | None,
    ) -> Wiring:
        """Under an allowlist (or none) policy: the workspace's internal network, its
        gateway (it publishes the SSH port and is the resolver, at an address fixed with
        the network) made and started meanwhile, and the proxy variables. Fail closed
        all the same: the container's only network is the internal one, so before its
        gateway answers it has no way out at all. Open: the engine's default network,
        SSH published."""
        policy = req.egress
        egress = self.egress
        if policy is None or policy.mode == "open" or egress is None:
            return Wiring(
                labels={POLICY_LABEL: "open"},
                publish=(Publish("127.0.0.1", port, CONTAINER_SSH_PORT),),
            )
        workspace = req.workspace.path
        attach, net = egress.prepare(name, workspace) if network is None else network.result()
        self.meanwhile(
            lambda: egress.ensure(name, workspace, port, policy, runtime, net, fresh=attach.fresh)
        )
        return Wiring(
            labels={POLICY_LABEL: policy.mode},
            network=attach.network,
            dns=(attach.dns,),
            env=proxy_env(),
        )

    def ensure(
        self,
        req: RunRequest,
        target: Target,
        port: int,
        runtime: str,
        *,
        attach: bool = False,
        gateway: tuple[ContainerInfo | None] | None = None,
    ) -> None:
        """An existing container's gateway running with the current policy; a container
        made before egress policies gets a warning naming the move. Attaching to a running
        container, a running gateway is left as it is (one inspect): `cai network allow|
        deny` applies changes live, and a start renders the policy afresh. ``gateway``:
        the gateway as the caller looked it up just now (not asked again)."""
        mode = target.labels.get(POLICY_LABEL)
        if mode is None:
            self.warn(
                f"container '{target.name}' was created before cai's egress policy: its "
                "network is open (plain Docker egress); move it behind the gateway with "
                "`cai --fresh` (the data volume is kept)"
            )
            return
        if mode == "open" or self.egress is None:
            return
        if attach and self.egress.running(target.name):
            return
        policy = req.egress or Policy(mode, (), (), ())
        if policy.mode != mode:  # fixed at creation, like the labels
            self.warn(
                f"container '{target.name}' was created with network.policy {mode}, not "
                f"{policy.mode}; recreate it with `cai --fresh` to change it"
            )
            policy = policy._replace(mode=mode)
        egress = self.egress
        net = egress.network(target.name, target.workspace)
        if attach or not egress.fixed(net):
            # The container runs already; or its network is an older cai's, where the
            # engine gives out the gateway's address (the container's resolver): the
            # gateway first, as it was made.
            egress.ensure(target.name, target.workspace, port, policy, runtime, net)
            return
        self.meanwhile(
            lambda: egress.ensure(
                target.name, target.workspace, port, policy, runtime, net, gateway=gateway
            )
        )

    def meanwhile(self, job: Callable[[], object]) -> None:
        """Run ``job`` (the gateway's making or start) beside the container's own
        create and start; ``Lifecycle._start`` waits for it."""
        self.join()
        self.started = True
        self._gateway = in_thread(job)

    @contextlib.contextmanager
    def awaited(self) -> Iterator[None]:
        """Whatever happens, the gateway's job has ended when ``ensure_running`` does
        (a failure elsewhere first: that failure is the news)."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.join()
            raise
        self.join()

    def join(self) -> None:
        job, self._gateway = self._gateway, None
        if job is not None:
            job.result()


def in_thread(job: Callable[[], T]) -> Future[T]:
    """``job`` run in a thread of its own (its result or exception in the future)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cai-egress")
    try:
        return pool.submit(job)
    finally:
        pool.shutdown(wait=False)
