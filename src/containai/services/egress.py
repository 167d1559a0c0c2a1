"""A workspace's egress (SPEC section 15, DESIGN decision 11): its internal network
and its gateway container, the only way out.

Per workspace, measured and chosen (docs/network.md): a container on an internal
Docker network cannot publish a port, so the gateway that publishes the workspace's
SSH port on 127.0.0.1 (socat to sshd) is the workspace's own, and it carries that
workspace's squid (its policy) and a resolver with no upstream (refuse-dns). The network is
created with no address on the host's side of the bridge (``host_address=False``;
Docker's ``com.docker.network.bridge.inhibit_ipv4``): an internal network alone still
lets a container reach the host's services on the bridge address. Its subnet is cai's
choice (a block of CGNAT space, ``domain/egress.workspace_subnet``) and the gateway's
address on it is fixed (``gateway_address``), so the workspace container, whose
resolver that address is, can be made and started while its gateway is: ``prepare``
makes the network, ``ensure`` the gateway.

Services never print; the caller renders.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from containai.domain import egress as E
from containai.domain import labels as L
from containai.domain.engine_objects import (
    ContainerInfo,
    ContainerSpec,
    NetworkInfo,
    Publish,
    Removal,
)
from containai.domain.errors import Failed, NameInUse, SubnetTaken
from containai.lazy import sha256_hex
from containai.services.container_keys import file_tar
from containai.services.ports import Engine

NETWORK_LABEL = "containai.network-of"  # on a workspace network: the container it serves
# on a workspace network made on a subnet cai chose: its gateway's fixed address (a
# network without it was made by an older cai, on a subnet the engine chose)
ADDRESS_LABEL = "containai.gateway-address"
GATEWAY_LABEL = L.GATEWAY_OF  # on a gateway container: the container it serves
POLICY_LABEL = L.NETWORK_POLICY  # on a workspace container: its mode at creation
# Not containai.workspace: a gateway is not a workspace's container (lookups by that
# label, by cai or other tools, must not find it).
GATEWAY_WORKSPACE_LABEL = L.GATEWAY_WORKSPACE
SPEC_LABEL = L.GATEWAY_SPEC  # on a gateway: hash of what it was created with
GATEWAY_KEYS = (GATEWAY_LABEL, GATEWAY_WORKSPACE_LABEL, SPEC_LABEL)
"""The labels ``gateways_in`` reads of a listing."""
SQUID_CONF = "/etc/containai/squid.conf"
GATEWAY_MEMORY = 256 * 1024**2
GATEWAY_USER = "proxy"  # Debian's squid account (uid 13) owns what the gateway writes


def network_name(container: str) -> str:
    return f"cai-net-{container}"


def gateway_name(container: str) -> str:
    """``<container>-gateway`` (a container name holds 63 characters at most)."""
    name = f"{container}-gateway"
    if len(name) <= 63:
        return name
    return f"{container[:46]}-gw-{sha256_hex(container)[:12]}"


def proxy_env() -> dict[str, str]:
    """What every process and session in the workspace container gets."""
    url = f"http://{E.GATEWAY_ALIAS}:{E.PROXY_PORT}"
    no_proxy = "localhost,127.0.0.1,::1"
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
        "CAI_EGRESS_PROXY": f"{E.GATEWAY_ALIAS}:{E.PROXY_PORT}",
    }


def looks_like_a_gateway(row: ContainerInfo) -> str:
    """The container whose gateway ``row`` is named and labelled (``GATEWAY_LABEL``) as,
    else ``""``. cai made it only if it lacks none of the labels of ``missing_labels``."""
    container = row.labels.get(GATEWAY_LABEL, "")
    return container if container and row.name == gateway_name(container) else ""


def missing_labels(row: ContainerInfo) -> list[str]:
    """Which of the labels cai puts on every gateway it makes ``row`` lacks (the hash of
    how it was made, the workspace whose lock guards it): one lacking any is not cai's."""
    return [key for key in (SPEC_LABEL, GATEWAY_WORKSPACE_LABEL) if not row.labels.get(key)]


def gateways_in(listing: Iterable[ContainerInfo]) -> dict[str, str]:
    """``container -> gateway`` for the gateways cai made in ``listing`` (a listing with
    ``GATEWAY_KEYS``): the label names the container, the name is its gateway's, and it
    carries the spec hash and the workspace cai labels each gateway it makes with."""
    found = {}
    for row in listing:
        container = looks_like_a_gateway(row)
        if container and not missing_labels(row):
            found[container] = row.name
    return found


class Attachment(NamedTuple):
    """How a workspace container is wired: its network and resolver."""

    network: str
    dns: str  # the gateway's address on that network
    fresh: bool = False  # the network was made just now (no gateway can be on it yet)


class Egress:
    def __init__(
        self,
        engine: Engine,
        *,
        image: Callable[[], str],
        host_addresses: Callable[[], Sequence[str]] = lambda: (),
    ) -> None:
        self.engine = engine
        self.image = image
        self.host_addresses = host_addresses
        self._image_tag: str | None = None
        self._image_lock = threading.Lock()
        self._made: set[str] = set()  # networks this instance made

    def gateway_image(self) -> str:
        """The gateway's image (built if missing), asked for once per command: a caller
        may ask early, in a thread, so the gateway's creation does not wait for it."""
        with self._image_lock:
            if self._image_tag is None:
                self._image_tag = self.image()
            return self._image_tag

    # ---------------------------------------------------------------- network
    def _network(self, container: str, workspace: str, *, make_first: bool = False) -> NetworkInfo:
        """The workspace's network, made if missing; ``make_first``: try to make it
        before asking whether it exists (one round trip less when it does not: the
        engine refuses a second network of the name)."""
        name = network_name(container)
        info = None if make_first else self.engine.network(name)
        info = info or self._make_network(name, container, workspace)
        if info.labels.get(NETWORK_LABEL) != container or not info.internal:
            raise Failed(
                f"network '{name}' exists but was not made by cai for container "
                f"'{container}' (or is not internal); remove it with `docker network rm {name}`"
            )
        return info

    def network(self, container: str, workspace: str) -> NetworkInfo:
        """The workspace's network (made if missing)."""
        return self._network(container, workspace)

    @staticmethod
    def fixed(net: NetworkInfo) -> bool:
        """Whether the gateway's address on ``net`` is fixed (a network on a subnet cai
        chose): the gateway may then start beside its container, whose resolver it is."""
        return bool(net.labels.get(ADDRESS_LABEL))

    def _make_network(self, name: str, container: str, workspace: str) -> NetworkInfo:
        """The network on the first block of ``E.workspace_subnet`` the engine does not
        use yet (another network on it, whoever made it, or an engine whose address
        pools hand out that space: the next candidate), at most ``E.SUBNET_TRIES``."""
        for attempt in range(E.SUBNET_TRIES):
            subnet = E.workspace_subnet(container, attempt)
            labels = {
                NETWORK_LABEL: container,
                L.WORKSPACE: workspace,
                ADDRESS_LABEL: E.gateway_address(subnet),
            }
            try:
                self.engine.create_network(
                    name,
                    labels,
                    internal=True,
                    host_address=False,
                    subnet=subnet,
                    automatic=E.automatic_range(subnet),
                )
            except SubnetTaken:
                continue
            except NameInUse:  # a concurrent run made it: the caller checks whose it is
                info = self.engine.network(name)
                if info is None:
                    raise Failed(
                        f"network '{name}' disappeared right after it was created"
                    ) from None
                return info
            self._made.add(name)
            return NetworkInfo(name, labels, internal=True, subnets=[subnet])  # no inspect
        raise Failed(
            f"no free subnet for network '{name}': the engine already uses each of the "
            f"{E.SUBNET_TRIES} blocks of {E.SUBNET_POOL} cai tried for it; remove networks "
            "that are no longer needed (`docker network ls`) and run the command again"
        )

    def prepare(self, container: str, workspace: str) -> tuple[Attachment, NetworkInfo]:
        """The network of a container about to be created, and how to attach to it: its
        gateway's address is known before the gateway exists. A network an older cai
        made (on a subnet the engine chose) is made again first, with its gateway: they
        hold no data, and the container is not there yet."""
        net = self._network(container, workspace, make_first=True)
        if not self.fixed(net):
            self.remove(container)
            net = self._network(container, workspace, make_first=True)
        return Attachment(net.name, net.labels[ADDRESS_LABEL], net.name in self._made), net

    def render(self, policy: E.Policy, subnets: Sequence[str]) -> str:
        return E.squid_conf(
            policy, client_subnets=subnets, host_addresses=list(self.host_addresses())
        )

    # ---------------------------------------------------------------- gateway
    def ensure(
        self,
        container: str,
        workspace: str,
        ssh_port: int,
        policy: E.Policy,
        runtime: str,
        net: NetworkInfo | None = None,
        *,
        fresh: bool = False,
        gateway: tuple[ContainerInfo | None] | None = None,
    ) -> Attachment:
        """The workspace's network (``net``, from ``prepare``, when known) and its
        running gateway (created, re-created or started as needed), publishing
        ``ssh_port``; returns how to attach to them. ``runtime`` is the workspace
        container's: the gateway's own is always ``E.GATEWAY_RUNTIME``. ``fresh``: the
        network was made just now, so the gateway is made without asking first (one
        that exists all the same, off the network, goes the usual way). ``gateway``: the
        gateway as the caller looked it up a moment ago (``(None,)``: there was none),
        not asked for again."""
        net = net or self._network(container, workspace)
        address = net.labels.get(ADDRESS_LABEL) or None  # None: the engine chooses
        name = gateway_name(container)
        conf = self.render(policy, net.subnets).encode()
        subnets = [n for n in net.subnets if ":" not in n] or ["255.255.255.255/32"]
        spec = self._spec(name, container, workspace, ssh_port, self.gateway_image(), subnets[0])
        fingerprint = spec.fingerprint()  # of how it is made, not of the policy it holds
        known = (None,) if fresh else gateway  # a network made just now: none on it
        info = known[0] if known is not None else self.engine.find(name)
        if info is not None and (
            info.labels.get(GATEWAY_LABEL) != container
            or info.labels.get(SPEC_LABEL) != fingerprint
            # a run killed between its create and its connect
            or network_name(container) not in info.networks
        ):
            # made by another version, for another port or image, or half made:
            # it holds no data
            self.engine.remove(name, force=True)
            info = None
        if info is None:
            # The policy goes in with the creation (written by the entrypoint on the
            # first start): no `docker cp` before the start.
            labelled = spec.replace(
                labels={**spec.labels, SPEC_LABEL: fingerprint},
                env={**spec.env, "CAI_SQUID_CONF": base64.b64encode(conf).decode()},
            )
            if self._create(name, container, labelled, address):
                self.engine.start(name)
                return Attachment(net.name, address or self._address(name, container))
            if fresh:  # one of that name exists after all: see what it is
                return self.ensure(container, workspace, ssh_port, policy, runtime, net)
        state = None if info is None else info.state
        self._install_conf(name, conf, running=state == "running")
        if state == "running":
            self._reconfigure(name)
        else:
            self.engine.start(name)
        return Attachment(net.name, address or self._address(name, container))

    def _spec(
        self,
        name: str,
        container: str,
        workspace: str,
        ssh_port: int,
        image: str,
        client_subnet: str,
    ) -> ContainerSpec:
        """What the gateway is created from: cai's own image under ``E.GATEWAY_RUNTIME``
        (runc; the workspace container keeps its own runtime), as the unprivileged
        ``proxy`` user with no capability at all (docs/decisions.md)."""
        return ContainerSpec(
            name=name,
            labels={
                GATEWAY_LABEL: container,
                GATEWAY_WORKSPACE_LABEL: workspace,
                L.SSH_PORT: str(ssh_port),  # the port it publishes (leases skip it)
            },
            runtime=E.GATEWAY_RUNTIME,
            init=True,  # squid refuses to signal a PID 1 (`squid -k reconfigure`)
            restart="unless-stopped",
            memory=GATEWAY_MEMORY,
            user=GATEWAY_USER,
            security_opts=["no-new-privileges"],
            cap_drop=["ALL"],
            # the resolver's port 53 without NET_BIND_SERVICE (this container's namespace)
            sysctls={"net.ipv4.ip_unprivileged_port_start": "53"},
            publish=[Publish("127.0.0.1", ssh_port, E.SSH_LISTEN_PORT)],
            env={
                "CAI_SSH_TARGET": f"{container}:2222",
                "CAI_SSH_LISTEN": str(E.SSH_LISTEN_PORT),
                "CAI_CLIENT_SUBNET": client_subnet,
            },
            image=image,
        )

    def _create(self, name: str, container: str, spec: ContainerSpec, address: str | None) -> bool:
        """``False`` when a concurrent run made it meanwhile. On the workspace's network
        at ``address`` (its fixed one), or where the engine puts it (``None``)."""
        try:
            self.engine.create(spec)
        except NameInUse:
            return False  # a concurrent run made it; the checks above hold for both
        self.engine.connect_network(network_name(container), name, [E.GATEWAY_ALIAS], address)
        return True

    def _address(self, name: str, container: str) -> str:
        info = self.engine.find(name)
        address = "" if info is None else info.networks.get(network_name(container), "")
        if not address:
            raise Failed(
                f"gateway '{name}' has no address on network '{network_name(container)}'; "
                f"its log: `docker logs {name}`; `cai --fresh` recreates both"
            )
        return address

    def _reconfigure(self, name: str) -> None:
        proc = self.engine.exec(
            name, ["squid", "-k", "reconfigure", "-f", SQUID_CONF], timeout=10, check=False
        )
        if proc.returncode != 0:
            raise Failed(
                f"gateway '{name}' did not take the new policy ({proc.stderr.strip()}); "
                "`cai --fresh` recreates it"
            )

    def apply(self, container: str, policy: E.Policy) -> bool:
        """Render ``policy`` into the running gateway of ``container`` (live, no restart);
        ``False`` when it has none."""
        name = gateway_name(container)
        info = self.engine.find(name)
        net = self.engine.network(network_name(container))
        if info is None or net is None:
            return False
        conf = self.render(policy, net.subnets).encode()
        running = info.state == "running"
        self._install_conf(name, conf, running=running)
        if running:
            self._reconfigure(name)
        return True

    def _install_conf(self, name: str, conf: bytes, *, running: bool) -> None:
        """The policy file into the gateway: by ``docker cp`` before it runs; through the
        running container itself after (gVisor does not see files changed under it)."""
        if not running:
            self.engine.copy_in(name, file_tar(SQUID_CONF, conf), "/")
            return
        proc = self.engine.exec(
            name,
            ["sh", "-c", f"cat > {SQUID_CONF}.new && mv -f {SQUID_CONF}.new {SQUID_CONF}"],
            input=conf.decode(),
            timeout=10,
            check=False,
        )
        if proc.returncode != 0:
            raise Failed(f"could not update the policy of gateway '{name}': {proc.stderr.strip()}")

    def gateway(self, container: str) -> ContainerInfo | None:
        """The gateway of ``container`` as the engine has it (``None``: there is none)."""
        return self.engine.find(gateway_name(container))

    def running(self, container: str) -> bool:
        info = self.gateway(container)
        return info is not None and info.state == "running"

    def stop(self, container: str) -> None:
        info = self.engine.find(gateway_name(container))
        if info is not None and info.state in ("running", "restarting"):
            self.engine.stop(gateway_name(container), timeout=2)

    def remove(self, container: str) -> None:
        """Remove the gateway and the network of ``container`` (they hold no data)."""
        if self.engine.find(gateway_name(container)) is not None:
            self.engine.remove(gateway_name(container), force=True)
        self.engine.remove_network(network_name(container))

    def remove_many(self, containers: Sequence[str]) -> Removal:
        """Remove the gateways and networks of ``containers`` (which are gone, and had a
        gateway: ``gateways_in``) in two engine calls, however many (``cai gc``); what
        became of each gateway and network (gone already: not a failure)."""
        if not containers:
            return Removal()
        gateways = self.engine.remove_forced([gateway_name(c) for c in containers])
        networks = self.engine.remove_networks([network_name(c) for c in containers])
        return Removal(
            [*gateways.removed, *networks.removed],
            (),
            [*gateways.gone, *networks.gone],
            {**gateways.failed, **networks.failed},
        )

    def orphans(self, listing: Sequence[ContainerInfo] | None = None) -> list[tuple[str, str]]:
        """``(gateway, container)`` of gateways whose container no longer exists (removed
        by other means than cai): ``cai gc`` removes them and their networks. From
        ``listing`` (every container of the engine, with ``GATEWAY_KEYS``) when given,
        else from one listing now."""
        rows = self.engine.list_containers(keys=GATEWAY_KEYS) if listing is None else listing
        names = {c.name for c in rows}
        return sorted(
            (gateway, container)
            for container, gateway in gateways_in(rows).items()
            if container not in names
        )

    # -------------------------------------------------------------------- log
    def log(self, container: str) -> list[E.LogLine]:
        proc = self.engine.exec(
            gateway_name(container), ["cat", E.ACCESS_LOG], timeout=10, check=False
        )
        if proc.returncode != 0:
            return []
        return [x for x in map(E.parse_log_line, str(proc.stdout).splitlines()) if x]

    def follow(self, container: str) -> Iterator[E.LogLine]:
        for line in self.engine.exec_lines(
            gateway_name(container), ["tail", "-n", "0", "-F", E.ACCESS_LOG]
        ):
            parsed = E.parse_log_line(line)
            if parsed is not None:
                yield parsed
