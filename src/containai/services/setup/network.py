"""The dedicated engine's network: its bridge's subnet, the address pool of the
networks created on it, and the NAT/forwarding rules in cai's own iptables chains.

Why ``"iptables": false`` and cai's own chains: a dockerd with iptables enabled
flushes the ``DOCKER`` chains when it starts (libnetwork's ``removeIPChains``),
i.e. the default engine's published-port rules. The dedicated engine therefore
manages no iptables rules itself; ``cai setup`` adds one MASQUERADE rule for
its subnet and two FORWARD accepts, in ``CONTAINAI-POSTROUTING`` and
``CONTAINAI-FORWARD``, which the default engine never touches. Published ports
(``-p 127.0.0.1:PORT:2222``) go through docker-proxy, which needs no rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from containai.domain.errors import Failed
from containai.services.setup.facts import Layout

BRIDGE_CANDIDATES: Final = (
    "10.213.0.1/24",
    "10.199.213.1/24",
    "172.30.213.1/24",
    "192.168.213.1/24",
)
"""Gateway/prefix of the dedicated bridge: the first that overlaps no route here."""

POOL_CANDIDATES: Final = ("10.214.0.0/16", "10.198.0.0/16", "172.29.0.0/16")
"""``default-address-pools`` base for networks created on the dedicated engine."""


@dataclass(frozen=True)
class Rule:
    """One iptables rule: ``iptables -t TABLE -A|-I CHAIN SPEC``."""

    table: str
    chain: str
    spec: tuple[str, ...]
    insert: bool = False  # a jump into a built-in chain goes first (-I CHAIN 1)

    def argv(self, op: str) -> list[str]:
        head = ["iptables", "-w"]
        if self.table != "filter":
            head += ["-t", self.table]
        if op == "add":
            return (
                [*head, "-I", self.chain, "1", *self.spec]
                if self.insert
                else [
                    *head,
                    "-A",
                    self.chain,
                    *self.spec,
                ]
            )
        return [*head, "-C", self.chain, *self.spec]


@dataclass(frozen=True)
class Firewall:
    chains: tuple[tuple[str, str], ...]  # (table, chain) cai owns: created and flushed
    rules: tuple[Rule, ...]

    def commands(self) -> list[list[str]]:
        """The full bring-up, for the systemd network script (and for humans)."""
        out: list[list[str]] = []
        for table, chain in self.chains:
            t = [] if table == "filter" else ["-t", table]
            out.append(["iptables", "-w", *t, "-N", chain])
            out.append(["iptables", "-w", *t, "-F", chain])
        for rule in self.rules:
            out.append(rule.argv("add"))
        return out


def _overlaps(net: ipaddress.IPv4Network | ipaddress.IPv6Network, routes: Sequence[str]) -> bool:
    for route in routes:
        try:
            other = ipaddress.ip_network(route, strict=False)
        except ValueError:
            continue
        if (
            isinstance(other, ipaddress.IPv4Network)
            and isinstance(net, ipaddress.IPv4Network)
            and other.prefixlen > 0
            and net.overlaps(other)
        ):
            return True
    return False


def choose_bridge(existing: Sequence[str] | None, routes: Sequence[str]) -> str:
    """The bridge's ``gateway/prefix``: the one it has, else the first free candidate."""
    for addr in existing or ():
        try:
            iface = ipaddress.ip_interface(addr)
        except ValueError:
            continue
        if isinstance(iface, ipaddress.IPv4Interface):
            return str(iface)
    for cand in BRIDGE_CANDIDATES:
        if not _overlaps(ipaddress.ip_interface(cand).network, routes):
            return cand
    raise Failed(
        "every private subnet cai setup tries for its bridge ("
        + ", ".join(BRIDGE_CANDIDATES)
        + ") is routed here already; free one, or create the bridge cai0 with an "
        "address of your choice and run `cai setup` again"
    )


def choose_pool(current: Mapping[str, Any] | None, subnet: str, routes: Sequence[str]) -> str:
    pools = (current or {}).get("default-address-pools")
    if isinstance(pools, list) and pools and isinstance(pools[0], dict):
        base = pools[0].get("base")
        if isinstance(base, str):
            return base
    taken = [*routes, subnet]
    for cand in POOL_CANDIDATES:
        if not _overlaps(ipaddress.ip_network(cand), taken):
            return cand
    return POOL_CANDIDATES[0]


def firewall_for(layout: Layout, subnet: str) -> Firewall:
    br, fwd, nat = layout.bridge, layout.filter_chain, layout.nat_chain
    return Firewall(
        chains=(("filter", fwd), ("nat", nat)),
        rules=(
            Rule(
                "filter",
                fwd,
                ("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
            ),
            Rule("filter", fwd, ("-i", br, "-j", "ACCEPT")),
            Rule("filter", "FORWARD", ("-j", fwd), insert=True),
            Rule("nat", nat, ("-s", subnet, "!", "-o", br, "-j", "MASQUERADE")),
            Rule("nat", "POSTROUTING", ("-j", nat)),
        ),
    )
