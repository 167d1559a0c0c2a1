"""The egress policy (SPEC section 15, DESIGN decision 11): pure rules and the squid
configuration the gateway enforces them with. No I/O: the caller hands in the
presets' hosts (read from manifests and this machine's package configuration).

Order of decisions, first match wins:
1. a client that is not this workspace's network: denied;
2. a destination that resolves into a never-allowed range (loopback, RFC 1918,
   link-local with 169.254.169.254, CGNAT, unique-local, multicast, the host's own
   addresses) and is not inside ``network.allow_cidrs``: denied (squid's ``dst`` ACL
   resolves the name itself, so an allowed name that rebinds to a private address is
   still refused);
3. an entry of ``network.deny``: denied;
4. an allowed host on one of its ports (default 80 and 443; git hosts also 22 for
   git over SSH through CONNECT): allowed;
5. anything else: denied.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple

from containai.domain.errors import UsageError

POLICIES: Final = ("allowlist", "open", "none")
PRESETS: Final = ("agents", "package-registries", "git-hosts")
DEFAULT_PORTS: Final = (80, 443)
GIT_SSH_PORT: Final = 22
PROXY_PORT: Final = 3128
GATEWAY_ALIAS: Final = "cai-gateway"
SSH_LISTEN_PORT: Final = 2222
ACCESS_LOG: Final = "/var/log/containai/access.log"
# The gateway runs cai's own image under plain runc whatever the workspace's runtime
# (measured: squid under gVisor relays plain HTTP at a tenth of the direct rate); it
# runs no workspace code, as an unprivileged user with no capability
# (docs/decisions.md, "The gateway runs under runc").
GATEWAY_RUNTIME: Final = "runc"

# The git hosts SPEC section 15 names, with the hosts their content comes from.
GIT_HOSTS: Final = (
    "github.com",
    "*.github.com",
    "*.githubusercontent.com",
    "gitlab.com",
    "*.gitlab.com",
    "bitbucket.org",
    "*.bitbucket.org",
)

# Never allowed, whatever the list says (unless a CIDR of network.allow_cidrs holds it):
# SPEC section 15's list. Documentation and benchmarking ranges are not in it: some
# networks (this project's CI among them) route package registries through them.
NEVER_CIDRS: Final = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, 169.254.169.254 (cloud metadata) among them
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",  # IPv4-mapped
    "64:ff9b::/96",  # NAT64: would reach any IPv4 address, private ones too
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2002::/16",  # 6to4: embeds an IPv4 address
    "fc00::/7",  # unique-local
    "fe80::/10",
    "ff00::/8",
)

# Every character an entry may hold: squid.conf is rendered from entries, so nothing
# else (space, newline, '%' of an IPv6 scope, quotes) may ever reach it.
_SAFE_ENTRY_RE: Final = re.compile(r"[0-9a-z.:*\[\]/-]{1,260}")
_SAFE_TOKEN_RE: Final = re.compile(r"[0-9a-z.:/-]{1,260}")
_HOST_RE: Final = re.compile(
    r"(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


class Entry(NamedTuple):
    """One allowlist entry: a host name, ``*.suffix`` or an IP address, and its ports."""

    host: str
    ports: tuple[int, ...]
    source: str  # preset:agents, config, ...

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def squid_domain(self) -> str:
        """squid's ``dstdomain`` form: ``*.x`` -> ``.x`` (which also matches ``x``)."""
        return "." + self.host[2:] if self.host.startswith("*.") else self.host


def parse_entry(text: str, source: str = "config") -> Entry:
    """``host``, ``*.suffix``, ``host:port`` or an IP (``[v6]:port``) -> Entry; UsageError
    naming the entry otherwise."""
    raw = text.strip().lower()
    if _SAFE_ENTRY_RE.fullmatch(raw) is None:  # nothing that could break squid.conf
        raise UsageError(
            f"invalid network entry {text!r}: use a host name (example.org), a pattern "
            "(*.example.org) or an IP address, with an optional :PORT"
        )
    port: int | None = None
    host = raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise UsageError(f"invalid network entry '{text}': use HOST, *.SUFFIX or HOST:PORT")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"invalid network entry '{text}': use [ADDRESS]:PORT")
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
        port = _port(port_text, text)
    try:
        host = str(ipaddress.ip_address(host))  # canonical form
        is_ip = True
    except ValueError:
        is_ip = False
    if not is_ip and (_HOST_RE.fullmatch(host) is None or len(host) > 253 or "." not in host):
        raise UsageError(
            f"invalid network entry '{text}': use a host name (example.org), a pattern "
            "(*.example.org) or an IP address, with an optional :PORT"
        )
    ports = (port,) if port is not None else DEFAULT_PORTS
    return Entry(host, ports, source)


def _port(text: str, entry: str) -> int:
    if re.fullmatch(r"[0-9]{1,5}", text) is None or not 1 <= int(text) <= 65535:
        raise UsageError(f"invalid port in network entry '{entry}': use 1..65535")
    return int(text)


def parse_cidr(text: str) -> str:
    if _SAFE_ENTRY_RE.fullmatch(text.strip()) is None or "%" in text:
        raise UsageError(
            f"invalid CIDR {text!r} in network.allow_cidrs: use ADDRESS/BITS, e.g. 10.1.2.0/24"
        )
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise UsageError(
            f"invalid CIDR '{text}' in network.allow_cidrs: use ADDRESS/BITS, e.g. 10.1.2.0/24"
        ) from None


def validate_policy(value: str) -> str:
    if value not in POLICIES:
        raise UsageError(f"invalid network.policy '{value}': use one of {', '.join(POLICIES)}")
    return value


def validate_presets(values: Sequence[str]) -> list[str]:
    for value in values:
        if value not in PRESETS:
            raise UsageError(f"unknown network preset '{value}': use any of {', '.join(PRESETS)}")
    return list(values)


class Policy(NamedTuple):
    """The effective egress policy of one workspace."""

    mode: str  # allowlist | open | none
    allow: tuple[Entry, ...]
    deny: tuple[str, ...]  # host names or *.suffix patterns
    allow_cidrs: tuple[str, ...]

    def allows(self, host: str, port: int) -> bool:
        """Whether a request for ``host:port`` passes the host rules (3-5 above; the
        address rules are squid's, after resolution)."""
        if self.mode != "allowlist":
            return self.mode == "open"
        host = host.lower().rstrip(".")
        if any(_matches(pattern, host) for pattern in self.deny):
            return False
        return any(_matches(e.host, host) and port in e.ports for e in self.allow)


def _matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host == pattern[2:] or host.endswith(suffix)
    return host == pattern


def build_policy(
    *,
    mode: str,
    presets: Sequence[str],
    preset_hosts: Mapping[str, Iterable[str]],
    allow: Sequence[str],
    deny: Sequence[str],
    allow_cidrs: Sequence[str],
) -> Policy:
    """The policy from settings; ``preset_hosts`` maps each preset to its hosts."""
    entries: list[Entry] = []
    for preset in validate_presets(presets):
        for host in preset_hosts.get(preset, ()):
            entry = parse_entry(host, f"preset:{preset}")
            if preset == "git-hosts" and ":" not in host:
                entry = entry._replace(ports=(*DEFAULT_PORTS, GIT_SSH_PORT))
            entries.append(entry)
    entries += [parse_entry(item, "config") for item in allow]
    denied = tuple(parse_entry(item, "deny").host for item in deny)
    cidrs = tuple(parse_cidr(c) for c in allow_cidrs)
    seen: set[tuple[str, tuple[int, ...]]] = set()
    unique = []
    for e in entries:
        if (e.host, e.ports) not in seen:
            seen.add((e.host, e.ports))
            unique.append(e)
    return Policy(validate_policy(mode), tuple(unique), denied, cidrs)


def squid_conf(
    policy: Policy, *, client_subnets: Sequence[str], host_addresses: Sequence[str]
) -> str:
    """The gateway's squid.conf for ``policy``; only ``client_subnets`` may use it.

    Name rules come before address rules, and every name ACL is ``dstdomain -n``: squid
    resolves a name only once it is on the allowlist (a request for an unlisted name
    causes no DNS query: no DNS tunnel through the gateway's resolver), and an IP
    address is never matched by its reverse (PTR) name."""
    lines = [
        "# containai egress gateway: rendered by cai from the workspace's policy; do not edit",
        f"http_port {PROXY_PORT}",
        "pid_filename /run/squid/squid.pid",
        "cache deny all",
        "cache_mem 8 MB",
        "memory_pools off",
        "logformat containai %ts.%03tu %>a %rm %>rd %>rP %>Hs %Ss",
        f"access_log stdio:{ACCESS_LOG} containai",
        "cache_log stdio:/dev/stderr",
        "coredump_dir /var/spool/squid",
        "shutdown_lifetime 1 seconds",
        "pinger_enable off",  # no ICMP socket (the gateway has no capability for one)
        "client_db off",
        "forwarded_for delete",
        "via off",
        "httpd_suppress_version_string on",
        "acl CONNECT method CONNECT",
        "acl clients src " + _tokens(client_subnets or ["255.255.255.255/32"]),
        "http_access deny !clients",
    ]
    if policy.mode != "allowlist" or not policy.allow:
        lines.append("http_access deny all")
        return "\n".join(lines) + "\n"
    names = _collapse(sorted({e.squid_domain() for e in policy.allow}))
    lines.append("acl listed dstdomain -n " + _tokens(names))
    lines.append("http_access deny !listed")  # before anything that resolves a name
    if policy.deny:
        lines.append("acl denied dstdomain -n " + _tokens(_squid_domains(policy.deny)))
        lines.append("http_access deny denied")
    never = [*NEVER_CIDRS, *_outside(NEVER_CIDRS, host_addresses)]
    lines.append("acl never_dst dst " + _tokens(never))
    if policy.allow_cidrs:
        lines.append("acl allow_cidrs dst " + _tokens(policy.allow_cidrs))
        lines.append("http_access deny never_dst !allow_cidrs")
    else:
        lines.append("http_access deny never_dst")
    by_ports: dict[tuple[int, ...], list[Entry]] = {}
    for entry in policy.allow:
        by_ports.setdefault(entry.ports, []).append(entry)
    for n, (ports, group) in enumerate(sorted(by_ports.items())):
        lines.append(f"acl ports_{n} port " + " ".join(str(int(p)) for p in ports))
        group_names = _collapse(sorted({e.squid_domain() for e in group}))
        lines.append(f"acl hosts_{n} dstdomain -n " + _tokens(group_names))
        lines.append(f"http_access allow hosts_{n} ports_{n}")
    lines.append("http_access deny all")
    return "\n".join(lines) + "\n"


def _tokens(values: Iterable[str]) -> str:
    """ACL values joined; each must be a plain host, address or CIDR (defence in depth:
    entries were validated, but nothing else may ever reach squid.conf)."""
    out = []
    for value in values:
        if _SAFE_TOKEN_RE.fullmatch(value) is None:
            raise ValueError(f"refusing to render {value!r} into squid.conf")
        out.append(value)
    return " ".join(out)


def _outside(cidrs: Sequence[str], addresses: Iterable[str]) -> list[str]:
    """``addresses`` as CIDRs, less those a range of ``cidrs`` holds already (squid warns
    about, and drops, an entry inside another)."""
    nets = [ipaddress.ip_network(c) for c in cidrs]
    out = []
    for address in addresses:
        net = ipaddress.ip_network(address, strict=False)
        if not any(net.version == n.version and net.subnet_of(n) for n in nets):  # type: ignore[arg-type]
            out.append(str(net))
    return sorted(set(out))


def _squid_domains(patterns: Iterable[str]) -> list[str]:
    return _collapse(sorted({"." + p[2:] if p.startswith("*.") else p for p in patterns}))


def _collapse(domains: list[str]) -> list[str]:
    """squid refuses a dstdomain list holding both ``.x`` and ``a.x`` (or ``x``): keep the
    wider one."""
    wide = {d for d in domains if d.startswith(".")}
    out = []
    for d in domains:
        bare = d.lstrip(".")
        covered = any((bare == w[1:] or bare.endswith(w)) and d != w for w in wide)
        if not covered:
            out.append(d)
    return out


class LogLine(NamedTuple):
    time: float
    client: str
    method: str
    host: str
    port: int | None
    status: int
    decision: str  # allowed | denied

    @property
    def denied(self) -> bool:
        return self.decision == "denied"


def parse_log_line(line: str) -> LogLine | None:
    """One line of the gateway's access log (``logformat containai``); ``None`` when it
    is not one."""
    parts = line.split()
    if len(parts) != 7:
        return None
    stamp, client, method, host, port, status, code = parts
    try:
        when = float(stamp)
        status_n = int(status)
    except ValueError:
        return None
    port_n = int(port) if port.isdigit() else None
    decision = "denied" if "DENIED" in code or status_n == 403 else "allowed"
    return LogLine(when, client, method, host, port_n, status_n, decision)
