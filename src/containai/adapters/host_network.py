"""The dedicated engine's network on this machine: its bridge (``ip``) and cai's own
iptables chains (``iptables -w``). Read (``ip -j``, ``iptables -C``) and bring up,
idempotently; ``services.setup.network`` decides the addresses and the rules."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from containai.adapters import programs

# --------------------------------------------------------------------------- #
# what the programs say (pure)
# --------------------------------------------------------------------------- #


def parse_link(output: bytes) -> tuple[tuple[str, ...], bool] | None:
    """``ip -j addr show dev NAME``: its IPv4 ``addr/prefix`` and whether it is up."""
    try:
        data = json.loads(output or b"[]")
    except ValueError:
        return None
    if not data:
        return None
    link = data[0]
    addrs = tuple(
        f"{a['local']}/{a['prefixlen']}"
        for a in link.get("addr_info", [])
        if a.get("family") == "inet" and "local" in a
    )
    return addrs, "UP" in (link.get("flags") or [])


def parse_routes(output: bytes, exclude_dev: str) -> tuple[str, ...]:
    """``ip -j -4 route show table all``: destinations routed here, except on
    ``exclude_dev``, the default route and local/broadcast entries."""
    try:
        data = json.loads(output or b"[]")
    except ValueError:
        return ()
    out: list[str] = []
    for r in data:
        dst = str(r.get("dst") or "")
        if (
            r.get("dev") == exclude_dev
            or dst in ("", "default")
            or r.get("type") in ("local", "broadcast")
        ):
            continue
        out.append(dst)
    return tuple(out)


def rule_state(proc: subprocess.CompletedProcess[bytes]) -> bool | None:
    """``iptables -C``'s answer: present, absent, or ``None`` (cannot tell: not root)."""
    if proc.returncode == 0:
        return True
    text = programs.last_error(proc).lower()
    if proc.returncode == 127 or "permission denied" in text or "must be root" in text:
        return None
    return False


# --------------------------------------------------------------------------- #
# the machine
# --------------------------------------------------------------------------- #


class HostNetwork:
    """``link_addrs``/``routes``/``rule_present`` and ``ensure_*`` of ``SetupHost``."""

    def __init__(self, run: programs.Runner = programs.run) -> None:
        self._run = run

    def link_addrs(self, name: str) -> tuple[tuple[str, ...], bool] | None:
        proc = self._run(["ip", "-j", "addr", "show", "dev", name], timeout=10)
        return parse_link(proc.stdout) if proc.returncode == 0 else None

    def routes(self, exclude_dev: str) -> tuple[str, ...]:
        proc = self._run(["ip", "-j", "-4", "route", "show", "table", "all"], timeout=10)
        return parse_routes(proc.stdout, exclude_dev) if proc.returncode == 0 else ()

    def rule_present(self, rule: Any) -> bool | None:
        return rule_state(self._run(rule.argv("check"), timeout=15))

    def _must(self, argv: list[str], what: str) -> None:
        programs.check(self._run(argv), what)

    def ensure_bridge(self, name: str, cidr: str) -> None:
        state = self.link_addrs(name)
        if state is None:
            self._must(["ip", "link", "add", name, "type", "bridge"], f"creating bridge {name}")
            state = ((), False)
        if cidr not in state[0]:
            self._must(["ip", "addr", "add", cidr, "dev", name], f"adding {cidr} to {name}")
        self._must(["ip", "link", "set", name, "up"], f"bringing {name} up")

    def ensure_firewall(self, firewall: Any) -> None:
        """Create and flush cai's own chains, fill them, and jump to them (once)."""
        own = {chain for _, chain in firewall.chains}
        for table, chain in firewall.chains:
            t = [] if table == "filter" else ["-t", table]
            self._run(["iptables", "-w", *t, "-N", chain])  # exists already: fine
            self._must(["iptables", "-w", *t, "-F", chain], f"iptables -F {chain}")
        for rule in firewall.rules:
            if rule.chain not in own and self._run(rule.argv("check")).returncode == 0:
                continue
            self._must(rule.argv("add"), " ".join(rule.argv("add")))
