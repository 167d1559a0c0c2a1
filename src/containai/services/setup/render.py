"""The text of the files ``cai setup`` writes: ``daemon.json``, the systemd unit and
its ``network-up`` script. Pure: the plan compares them with what is on disk."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from containai.services.setup.facts import Layout
from containai.services.setup.network import Firewall


def daemon_config(
    layout: Layout, *, pool: str, runtimes: Mapping[str, Any], default_runtime: str
) -> dict[str, Any]:
    """The dedicated engine's daemon.json: nothing shared with the default engine."""
    config: dict[str, Any] = {
        "hosts": [layout.host],
        "data-root": str(layout.data_root),
        "exec-root": str(layout.exec_root),
        "pidfile": str(layout.pidfile),
        "containerd-namespace": layout.namespace,
        "containerd-plugins-namespace": f"{layout.namespace}-plugins",
        "bridge": layout.bridge,
        "iptables": False,
        "ip-masq": False,
        "default-address-pools": [{"base": pool, "size": 24}],
        # Required, not a nicety: a dockerd that restarts with a stale "bridge" network and
        # address pools deletes the interface `docker0` (moby's
        # removeDefaultBridgeInterface) unless live-restore is on, and `docker0` belongs to
        # the user's own engine in the same network namespace. It also keeps agent
        # containers running across restarts of this engine.
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "default-runtime": default_runtime,
    }
    if runtimes:
        config["runtimes"] = dict(runtimes)
    return config


def render_config(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def script_text(layout: Layout, bridge_cidr: str, firewall: Firewall) -> str:
    """``network-up``: the bridge and firewall, for systemd's ExecStartPre (idempotent)."""
    br = shlex.quote(layout.bridge)
    cidr = shlex.quote(bridge_cidr)
    lines = [
        "#!/bin/sh",
        "# Written by `cai setup`: the bridge and firewall rules of cai's dedicated engine.",
        "set -e",
        f"ip link show {br} >/dev/null 2>&1 || ip link add {br} type bridge",
        f"ip -4 addr show dev {br} | grep -qF 'inet {bridge_cidr} ' || ip addr add {cidr} dev {br}",
        f"ip link set {br} up",
    ]
    for table, chain in firewall.chains:
        t = "" if table == "filter" else f"-t {table} "
        lines.append(f"iptables -w {t}-N {chain} 2>/dev/null || true")
        lines.append(f"iptables -w {t}-F {chain}")
    for rule in firewall.rules:
        add = shlex.join(rule.argv("add"))
        if rule.chain in {c for _, c in firewall.chains}:
            lines.append(add)
        else:
            lines.append(f"{shlex.join(rule.argv('check'))} 2>/dev/null || {add}")
    return "\n".join(lines) + "\n"


def unit_text(layout: Layout, dockerd: str) -> str:
    return "\n".join(
        [
            "# Written by `cai setup` (ContainAI): the dedicated Docker engine for agents.",
            "[Unit]",
            "Description=ContainAI dedicated Docker engine",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            f"ExecStartPre=/bin/sh {layout.network_script}",
            f"ExecStart={dockerd} --config-file {layout.config_file}",
            "ExecReload=/bin/kill -s HUP $MAINPID",
            "TimeoutStartSec=0",
            "Restart=always",
            "RestartSec=2",
            "LimitNOFILE=infinity",
            "LimitNPROC=infinity",
            "TasksMax=infinity",
            "Delegate=yes",
            "KillMode=process",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )
