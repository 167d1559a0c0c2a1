"""``cai setup [--dry-run]`` (SPEC section 9): a dedicated engine for agent work.

Linux, root. Leaves the user's own Docker engine and its configuration alone:
a second ``dockerd`` with its own configuration file, socket, data root, exec
root, pid file, containerd namespace and bridge, whose default runtime is the
strongest that works here (gVisor's ``runsc`` from the distribution), and the
Docker context ``containai-docker`` pointing at it, which engine selection
(SPEC section 5 step 1) then prefers.

Steps, in order, each idempotent (observe, then do only what is missing):

``packages``  apt-get install ``runsc`` (and ``docker.io`` when dockerd is missing)
``bridge``    the bridge ``cai0`` with its own private /24 (the default engine keeps docker0)
``firewall``  NAT and forwarding for that /24 in cai's own iptables chains
``runsc``     which ``runtimeArgs`` this runsc needs (a recorded probe, or a probe now)
``config``    ``/etc/containai/docker/daemon.json``
``unit``      ``containai-docker.service`` (only when systemd runs)
``daemon``    start it (systemd, else a managed background daemon), reload or
              restart it when its configuration changed, and wait until it answers
``context``   ``docker context create containai-docker`` for the invoking user

``apply`` converges: it observes the machine, plans, does the first step that
is not done, and observes again, so an interrupted setup is finished by the
next one and a second run changes nothing. ``plan`` is pure (unit-tested).

The modules, by job:

``facts``     where the engine lives (``Layout``), what was observed (``Facts``)
``network``   the bridge's subnet, the address pool, cai's iptables rules
``runtimes``  which runtimes daemon.json registers; the runsc probe's candidates
``render``    the text of daemon.json, the systemd unit and its network script
``planning``  ``plan(facts)``: which steps change something, one line each
``host``      ``SetupHost``, the Protocol of what setup reads and does on the machine
``apply``     ``Setup``: observe, plan, do one step, again, until nothing is left
"""

from __future__ import annotations

from containai.services.setup.apply import Setup, SetupResult, StepResult
from containai.services.setup.facts import Facts, Layout, RunscRecord, context_target, parse_record
from containai.services.setup.host import SetupHost
from containai.services.setup.network import (
    BRIDGE_CANDIDATES,
    POOL_CANDIDATES,
    Firewall,
    Rule,
    choose_bridge,
    choose_pool,
    firewall_for,
)
from containai.services.setup.planning import (
    RELOADABLE,
    STEPS,
    Desired,
    Plan,
    Step,
    daemon_action,
    effective_matches,
    plan,
)
from containai.services.setup.render import daemon_config, render_config, script_text, unit_text
from containai.services.setup.runtimes import (
    KVM_CANDIDATE,
    PROBE_CANDIDATES,
    PROBE_PREFIX,
    known_record,
    probe_runtimes,
    probe_runtimes_args,
    runtimes_for,
    tier_of,
)

__all__ = [
    "BRIDGE_CANDIDATES",
    "KVM_CANDIDATE",
    "POOL_CANDIDATES",
    "PROBE_CANDIDATES",
    "PROBE_PREFIX",
    "RELOADABLE",
    "STEPS",
    "Desired",
    "Facts",
    "Firewall",
    "Layout",
    "Plan",
    "Rule",
    "RunscRecord",
    "Setup",
    "SetupHost",
    "SetupResult",
    "Step",
    "StepResult",
    "choose_bridge",
    "choose_pool",
    "context_target",
    "daemon_action",
    "daemon_config",
    "effective_matches",
    "firewall_for",
    "known_record",
    "parse_record",
    "plan",
    "probe_runtimes",
    "probe_runtimes_args",
    "render_config",
    "runtimes_for",
    "script_text",
    "tier_of",
    "unit_text",
]
