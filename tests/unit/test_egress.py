"""SPEC section 15: the egress policy (pure rules and the squid configuration)."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai.domain import egress as E
from containai.domain.engine_objects import Removal
from containai.domain.errors import Failed, SubnetTaken, UsageError
from containai.services.egress import (
    ADDRESS_LABEL,
    GATEWAY_KEYS,
    GATEWAY_LABEL,
    GATEWAY_WORKSPACE_LABEL,
    Egress,
    gateway_name,
    gateways_in,
    network_name,
)
from tests.fakes import Box, FakeEngine

CGNAT = ipaddress.ip_network("100.64.0.0/10")
DOCS = ("192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")


def policy(**kw: object) -> E.Policy:
    args: dict[str, object] = {
        "mode": "allowlist",
        "presets": ["git-hosts"],
        "preset_hosts": {"git-hosts": E.GIT_HOSTS},
        "allow": [],
        "deny": [],
        "allow_cidrs": [],
    }
    args.update(kw)
    return E.build_policy(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "host", "ports"),
    [
        ("example.org", "example.org", (80, 443)),
        ("*.example.org", "*.example.org", (80, 443)),
        ("Example.ORG:8443", "example.org", (8443,)),
        ("10.1.2.3:8080", "10.1.2.3", (8080,)),
        ("[fd00::1]:22", "fd00::1", (22,)),
        ("fd00::1", "fd00::1", (80, 443)),
    ],
)
def test_parse_entry(text: str, host: str, ports: tuple[int, ...]) -> None:
    entry = E.parse_entry(text)
    assert (entry.host, entry.ports) == (host, ports)


@pytest.mark.parametrize(
    "text",
    ["", "localhost", "exa mple.org", "a..b", "x.org:0", "x.org:99999", "*.*.x", "http://x.org"],
)
def test_parse_entry_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        E.parse_entry(text)


def test_host_rules() -> None:
    p = policy(allow=["api.example.org", "*.cdn.example.net:8443"], deny=["evil.github.com"])
    assert p.allows("github.com", 443) and p.allows("raw.githubusercontent.com", 443)
    assert p.allows("github.com", 22)  # git over SSH to git hosts
    assert not p.allows("api.example.org", 22)
    assert p.allows("a.cdn.example.net", 8443) and not p.allows("a.cdn.example.net", 443)
    assert not p.allows("evil.github.com", 443)  # deny wins over a preset
    assert not p.allows("example.com", 443)
    assert not policy(mode="none").allows("github.com", 443)
    assert policy(mode="open").allows("anything.example", 443)


def test_squid_conf_refuses_private_destinations_first() -> None:
    conf = E.squid_conf(policy(), client_subnets=["172.30.0.0/16"], host_addresses=["192.0.2.7"])
    lines = conf.splitlines()
    never = next(x for x in lines if x.startswith("acl never_dst dst"))
    for cidr in ("169.254.0.0/16", "10.0.0.0/8", "127.0.0.0/8", "100.64.0.0/10", "fc00::/7"):
        assert cidr in never.split()
    assert "192.0.2.7/32" in never.split()  # the host's own address
    first_allow = next(i for i, x in enumerate(lines) if x.startswith("http_access allow"))
    assert lines.index("http_access deny never_dst") < first_allow
    assert lines.index("http_access deny !clients") < first_allow
    assert lines[-1] == "http_access deny all"
    assert "acl clients src 172.30.0.0/16" in lines


def test_metadata_address_is_never_allowed_even_when_listed() -> None:
    conf = E.squid_conf(
        policy(allow=["169.254.169.254"]), client_subnets=["172.30.0.0/16"], host_addresses=[]
    )
    assert "http_access deny never_dst" in conf.splitlines()


def test_allow_cidrs_lift_the_never_rule_only_for_themselves() -> None:
    conf = E.squid_conf(
        policy(allow_cidrs=["172.31.5.0/24"]), client_subnets=["x"], host_addresses=[]
    )
    assert "acl allow_cidrs dst 172.31.5.0/24" in conf
    assert "http_access deny never_dst !allow_cidrs" in conf


@given(st.ip_addresses())
def test_never_cidrs_cover_every_non_global_address(address: ipaddress._BaseAddress) -> None:
    nets = [ipaddress.ip_network(c) for c in E.NEVER_CIDRS]
    inside = any(address.version == n.version and address in n for n in nets)
    if any(
        address in ipaddress.ip_network(n)
        for n in DOCS
        if address.version == ipaddress.ip_network(n).version
    ):
        return  # documentation ranges: not in SPEC's list (see NEVER_CIDRS)
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or (address.version == 4 and (address.is_reserved or address in CGNAT))
    )
    assert inside or not special, f"{address} is not global but no never-range holds it"


def test_none_policy_allows_nothing() -> None:
    conf = E.squid_conf(policy(mode="none"), client_subnets=["x"], host_addresses=[])
    assert "http_access allow" not in conf


def test_collapse_keeps_the_wider_domain() -> None:
    conf = E.squid_conf(
        policy(allow=["api.anthropic.com", "*.anthropic.com", "anthropic.com"]),
        client_subnets=["x"],
        host_addresses=[],
    )
    hosts = [x for x in conf.splitlines() if x.startswith("acl hosts_") and "anthropic" in x]
    assert hosts and "api.anthropic.com" not in hosts[0] and " anthropic.com" not in hosts[0]


def test_parse_log_line() -> None:
    line = "1796054745.449 172.20.0.3 CONNECT example.com 443 403 TCP_DENIED"
    parsed = E.parse_log_line(line)
    assert parsed is not None and parsed.denied and parsed.host == "example.com"
    assert parsed.port == 443
    ok = E.parse_log_line("1796054745.331 172.20.0.3 CONNECT github.com 443 200 TCP_TUNNEL")
    assert ok is not None and not ok.denied
    assert E.parse_log_line("garbage") is None


@pytest.mark.parametrize(
    "text",
    [
        "fe80::1%x\nhttp_access allow all",
        "fe80::1%eth0",
        "example.org\nhttp_access allow all",
        "example.org http_access",
        "exa\tmple.org",
        "example.org:²",
        "'example.org'",
    ],
)
def test_entries_that_could_inject_into_squid_conf_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        E.parse_entry(text)
    with pytest.raises(UsageError):
        E.parse_cidr(text)


@given(st.text(min_size=1, max_size=40))
def test_no_accepted_entry_renders_outside_its_acl_line(text: str) -> None:
    try:
        entry = E.parse_entry(text)
    except UsageError:
        return
    conf = E.squid_conf(
        policy(allow=[text], deny=[text]), client_subnets=["172.30.0.0/16"], host_addresses=[]
    )
    allowed = {"#", "http_port", "pid_filename", "cache", "cache_mem", "memory_pools"}
    allowed |= {"logformat", "access_log", "cache_log", "coredump_dir", "shutdown_lifetime"}
    allowed |= {"pinger_enable", "client_db"}
    allowed |= {"forwarded_for", "via", "httpd_suppress_version_string", "acl", "http_access"}
    assert {line.split(" ", 1)[0] for line in conf.splitlines()} <= allowed
    assert entry.squid_domain() in conf


def test_names_are_checked_before_anything_resolves_and_never_by_reverse_lookup() -> None:
    conf = E.squid_conf(
        policy(allow=["api.example.org", "10.1.2.3:8080"], deny=["evil.github.com"]),
        client_subnets=["172.30.0.0/16"],
        host_addresses=[],
    )
    lines = conf.splitlines()
    # every name ACL is literal (-n): no PTR lookup for an IP literal request
    assert all(" dstdomain -n " in x for x in lines if " dstdomain " in x)
    # unlisted names are refused before the first ACL that resolves a name (dst)
    deny_unlisted = lines.index("http_access deny !listed")
    first_dst = next(i for i, x in enumerate(lines) if " dst " in x and x.startswith("acl"))
    assert deny_unlisted < first_dst
    assert "10.1.2.3" in next(x for x in lines if x.startswith("acl listed"))


def test_a_half_made_gateway_is_made_again() -> None:
    """A run killed between the gateway's `docker create` and its `network connect` left
    a gateway with no address on the workspace's network: the next run re-makes it."""
    from containai.services.egress import Egress, gateway_name, network_name
    from tests.fakes import FakeEngine

    fake = FakeEngine()
    egress = Egress(fake, image=lambda: "containai-gateway:x")
    policy = E.build_policy(
        mode="allowlist", presets=[], preset_hosts={}, allow=[], deny=[], allow_cidrs=[]
    )
    fixed = E.gateway_address(E.workspace_subnet("app-main"))
    assert egress.ensure("app-main", "/ws", 2300, policy, "runc").dns == fixed
    # the kill: the same gateway, no longer on the workspace's network
    gw = fake.box(gateway_name("app-main"))
    assert gw is not None
    del gw.networks[network_name("app-main")]
    gw.state = "exited"
    assert egress.ensure("app-main", "/ws", 2300, policy, "runc").dns == fixed
    assert fake.calls_of("remove") == [("remove", gateway_name("app-main"))]
    made = fake.box(gateway_name("app-main"))
    assert made is not None and made.networks[network_name("app-main")] == fixed


def test_the_gateway_spec() -> None:
    """What the gateway is created with: its labels, runc whatever the workspace's runtime,
    an unprivileged user with no capability at all, SSH published on loopback, the policy
    handed in with the creation (no copy before the start)."""
    import base64

    from containai.domain.engine_objects import Publish
    from containai.services.egress import SPEC_LABEL, Egress, gateway_name, network_name
    from tests.fakes import FakeEngine

    fake = FakeEngine()
    egress = Egress(fake, image=lambda: "containai-gateway:x")
    egress.ensure("app-main", "/ws", 2300, policy(), "runsc")
    gw = fake.box(gateway_name("app-main"))
    assert gw is not None and gw.spec is not None
    spec = gw.spec
    assert spec.labels["containai.gateway-of"] == "app-main"
    assert spec.labels["containai.ssh-port"] == "2300"
    assert len(spec.labels[SPEC_LABEL]) == 16
    assert (spec.runtime, spec.init, spec.restart) == ("runc", True, "unless-stopped")
    assert spec.memory == 256 * 1024**2
    assert spec.user == "proxy" and "no-new-privileges" in spec.security_opts
    assert spec.cap_drop == ("ALL",) and spec.cap_add == ()
    assert spec.sysctls == {"net.ipv4.ip_unprivileged_port_start": "53"}
    assert spec.publish == (Publish("127.0.0.1", 2300, E.SSH_LISTEN_PORT),)
    subnet = E.workspace_subnet("app-main")
    assert spec.env["CAI_CLIENT_SUBNET"] == subnet
    conf = base64.b64decode(spec.env["CAI_SQUID_CONF"]).decode()
    assert f"acl clients src {subnet}" in conf and "http_access deny all" in conf
    net = fake.networks[network_name("app-main")]
    assert net.internal and net.labels["containai.network-of"] == "app-main"
    # no address of the host on it: the host's services are out of the workspace's reach
    assert fake.calls_of("create_network") == [
        ("create_network", network_name("app-main"), "internal=True", "host_address=False")
    ]
    assert "copy_in" not in fake.verbs()  # the policy went in with the creation
    # the same request again: the gateway is kept (its spec did not change)
    egress.ensure("app-main", "/ws", 2300, policy(), "runsc")
    assert fake.calls_of("remove") == []
    # another policy, or another runtime of the workspace: kept too, the policy re-rendered
    wider = E.build_policy(
        mode="allowlist", presets=[], preset_hosts={}, allow=["x.example"], deny=[],
        allow_cidrs=[],
    )  # fmt: skip
    gw.state = "exited"
    before = len(fake.verbs())
    egress.ensure("app-main", "/ws", 2300, wider, "runc")
    assert fake.calls_of("remove") == []
    after = fake.verbs()[before:]
    assert "create" not in after and after.index("copy_in") < after.index("start")


# ------------------------------------------- the workspace network's subnet (cai's choice)
@settings(max_examples=300)
@given(
    container=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=63),
    attempt=st.integers(min_value=0, max_value=E.SUBNET_TRIES - 1),
)
def test_the_chosen_subnet_is_a_refused_block_with_the_gateway_off_the_automatic_range(
    container: str, attempt: int
) -> None:
    """Every candidate is an aligned block of the pool, the same for the same name and
    attempt; squid refuses it as a destination (a NEVER range); the gateway's fixed
    address is in it, not the block's own, and outside the range the engine hands out
    by itself (and takes its bridge address from), which is inside the block."""
    import ipaddress

    subnet = E.workspace_subnet(container, attempt)
    assert subnet == E.workspace_subnet(container, attempt)
    net = ipaddress.IPv4Network(subnet)  # strict: aligned on its prefix
    assert net.prefixlen == E.SUBNET_PREFIX
    assert net.subnet_of(ipaddress.IPv4Network(E.SUBNET_POOL))
    assert any(
        net.subnet_of(n)
        for n in map(ipaddress.ip_network, E.NEVER_CIDRS)
        if isinstance(n, ipaddress.IPv4Network)
    )
    gateway = ipaddress.IPv4Address(E.gateway_address(subnet))
    automatic = ipaddress.IPv4Network(E.automatic_range(subnet))
    assert gateway in net and gateway != net.network_address
    assert automatic.subnet_of(net) and gateway not in automatic
    assert automatic.num_addresses >= 4  # the container and a few more


@given(container=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1))
def test_the_candidates_of_one_name_differ(container: str) -> None:
    blocks = {E.workspace_subnet(container, i) for i in range(E.SUBNET_TRIES)}
    assert len(blocks) >= E.SUBNET_TRIES - 1  # 262,144 blocks: a repeat is a fluke


def test_names_spread_over_the_pool() -> None:
    """Runs for different workspaces pick different blocks, but for the birthday rarity
    (about 2 shared blocks among 1,000 names; the retry takes the next candidate)."""
    blocks = {E.workspace_subnet(f"ws{i}-main") for i in range(1000)}
    assert len(blocks) >= 990


def _egress() -> tuple[FakeEngine, Egress]:
    fake = FakeEngine()
    return fake, Egress(fake, image=lambda: "containai-gateway:x")


def test_a_taken_block_moves_the_network_to_the_next_candidate() -> None:
    """Another network (anyone's) on the first candidate: the next one is used, and the
    gateway's address follows the block actually made."""
    fake, egress = _egress()
    first, second = E.workspace_subnet("app-main", 0), E.workspace_subnet("app-main", 1)
    fake.create_network("someone-elses", {}, subnet=first)
    attach, net = egress.prepare("app-main", "/ws")
    assert list(net.subnets) == [second]
    assert attach == (network_name("app-main"), E.gateway_address(second), True)
    assert net.labels[ADDRESS_LABEL] == attach.dns
    assert egress.ensure("app-main", "/ws", 2300, policy(), "runc", net).dns == attach.dns
    gw = fake.box(gateway_name("app-main"))
    assert gw is not None and gw.networks[network_name("app-main")] == attach.dns


def test_every_candidate_taken_is_one_line_and_bounded() -> None:
    fake, egress = _egress()
    for i in range(E.SUBNET_TRIES):
        with contextlib.suppress(SubnetTaken):  # two candidates may share a /16's ...
            fake.create_network(f"squat-{i}", {}, subnet=E.workspace_subnet("app-main", i))
    with pytest.raises(Failed) as err:
        egress.prepare("app-main", "/ws")
    assert "no free subnet" in str(err.value) and "\n" not in str(err.value)
    assert len(fake.calls_of("create_network")) == E.SUBNET_TRIES * 2


def test_a_network_made_concurrently_is_taken_as_it_is() -> None:
    fake, egress = _egress()
    original = fake.create_network

    def racing(name: str, labels: Mapping[str, str], **kw: Any) -> None:
        original(name, labels, **kw)  # the other run's
        original(name, labels, **kw)  # ours: the name is taken now

    fake.create_network = racing  # type: ignore[method-assign]
    attach, _net = egress.prepare("app-main", "/ws")
    assert attach.dns == E.gateway_address(E.workspace_subnet("app-main"))


def test_a_network_of_an_older_cai_is_made_again_before_a_create() -> None:
    """A network on a subnet the engine chose has no fixed gateway address: before a new
    container is made on it, it and its gateway are made again (they hold no data)."""
    fake, egress = _egress()
    fake.create_network(
        network_name("app-main"), {"containai.network-of": "app-main"}, internal=True
    )
    egress.ensure("app-main", "/ws", 2300, policy(), "runc")  # the older gateway
    assert fake.box(gateway_name("app-main")) is not None
    attach, net = egress.prepare("app-main", "/ws")
    assert net.labels[ADDRESS_LABEL] == attach.dns and list(net.subnets) == [
        E.workspace_subnet("app-main")
    ]
    assert fake.box(gateway_name("app-main")) is None
    assert ("remove_network", network_name("app-main")) in fake.calls


def test_a_gateway_on_a_fresh_network_is_made_without_asking_first() -> None:
    """The network made just now: the gateway is created without a lookup first; one of
    that name that exists all the same (off the network: its network was removed by
    hand) is found by the refusal and made again on the new network."""
    fake, egress = _egress()
    attach, net = egress.prepare("app-main", "/ws")
    assert attach.fresh
    egress.ensure("app-main", "/ws", 2300, policy(), "runc", net, fresh=True)
    assert "find" not in fake.verbs()
    # the network goes (by hand: disconnected, removed), the gateway stays
    old = fake.box(gateway_name("app-main"))
    assert old is not None
    del old.networks[network_name("app-main")]
    fake.remove_network(network_name("app-main"))
    egress = Egress(fake, image=lambda: "containai-gateway:x")
    attach, net = egress.prepare("app-main", "/ws")
    assert attach.fresh
    egress.ensure("app-main", "/ws", 2300, policy(), "runc", net, fresh=True)
    gw = fake.box(gateway_name("app-main"))
    assert gw is not None and gw.networks[network_name("app-main")] == attach.dns
    assert fake.calls_of("remove") == [("remove", gateway_name("app-main"))]
    # a network that was there already is not fresh
    again = Egress(fake, image=lambda: "containai-gateway:x")
    assert not again.prepare("app-main", "/ws")[0].fresh


def gatewayed(*containers: str) -> tuple[FakeEngine, Egress]:
    """A fake engine where each of ``containers`` has its gateway and network."""
    fake = FakeEngine()
    egress = Egress(fake, image=lambda: "containai-gateway:x")
    for i, container in enumerate(containers):
        egress.ensure(container, f"/ws/{container}", 2300 + i, policy(), "runc")
    fake.calls.clear()
    return fake, egress


def test_gateways_in_a_listing_are_only_the_ones_cai_made() -> None:
    """cai gc removes the gateways of the containers it removed from its one listing:
    a container merely labelled for one (not named as its gateway) is never taken, nor
    one labelled and named so without the hash of how cai made it (SPEC_LABEL)."""
    fake, _egress = gatewayed("app-main")
    fake.add(Box("impostor", labels={GATEWAY_LABEL: "app-other"}))  # not app-other-gateway
    unmade = {GATEWAY_LABEL: "app-x", GATEWAY_WORKSPACE_LABEL: "/ws/app-x"}  # no spec
    fake.add(Box(gateway_name("app-x"), labels=unmade))
    fake.add(Box("app-main", labels={"containai.managed": "true"}))
    listing = fake.list_containers(keys=GATEWAY_KEYS)
    assert gateways_in(listing) == {"app-main": gateway_name("app-main")}


def test_orphans_take_one_listing_or_none_given_one() -> None:
    fake, egress = gatewayed("app-main", "app-gone")
    fake.add(Box("app-main", labels={"containai.managed": "true"}))
    assert egress.orphans() == [(gateway_name("app-gone"), "app-gone")]
    assert fake.verbs() == ["list_containers"]  # one listing, not one per gateway
    listing = fake.list_containers(keys=GATEWAY_KEYS)
    fake.calls.clear()
    assert egress.orphans(listing) == [(gateway_name("app-gone"), "app-gone")]
    assert fake.calls == []


def test_remove_many_is_two_engine_calls_however_many_go() -> None:
    names = [f"app-{i}" for i in range(6)]
    fake, egress = gatewayed(*names, "app-stays")
    del fake.containers[fake.box(gateway_name("app-5")).id]  # type: ignore[union-attr]
    outcome = egress.remove_many(names)
    assert fake.verbs() == ["remove_forced", "remove_networks"]
    assert sorted(outcome.removed) == sorted(
        [gateway_name(n) for n in names[:5]] + [network_name(n) for n in names]
    )
    assert outcome.gone == (gateway_name("app-5"),) and outcome.failed == {}
    assert fake.box(gateway_name("app-stays")) is not None
    assert network_name("app-stays") in fake.networks
    assert egress.remove_many([]) == Removal() and len(fake.calls) == 2


def test_remove_many_reports_what_could_not_go() -> None:
    fake, egress = gatewayed("app-a", "app-b")
    fake.network_errors = {network_name("app-a"): "network has active endpoints"}
    outcome = egress.remove_many(["app-a", "app-b"])
    assert outcome.failed == {network_name("app-a"): "network has active endpoints"}
    assert network_name("app-b") not in fake.networks
