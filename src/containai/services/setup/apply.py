"""The use case: ``Setup.run`` observes the machine, plans, does the first step that
is not done, and observes again, until nothing is left (or a step does not take)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from containai.domain.errors import Failed
from containai.domain.isolation import PLAIN
from containai.services.setup.facts import (
    DEFAULT_LAYOUT,
    Facts,
    Layout,
    RunscRecord,
    context_target,
    parse_record,
)
from containai.services.setup.host import SetupHost
from containai.services.setup.network import choose_bridge, firewall_for
from containai.services.setup.planning import (
    STEPS,
    Desired,
    Plan,
    Step,
    daemon_action,
    effective_matches,
    plan,
)
from containai.services.setup.render import daemon_config, render_config
from containai.services.setup.runtimes import probe_runtimes, tier_of


@dataclass(frozen=True)
class StepResult:
    key: str
    summary: str
    changed: bool


@dataclass(frozen=True)
class SetupResult:
    dry_run: bool
    steps: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


class Setup:
    def __init__(
        self,
        host: SetupHost,
        env: Mapping[str, str],
        *,
        layout: Layout = DEFAULT_LAYOUT,
        template: str = "default",
        progress: Callable[[str], None] = lambda _m: None,
        wait_seconds: float = 90.0,
    ) -> None:
        self.host = host
        self.env = env
        self.layout = layout
        self.template = template
        self.progress = progress
        self.wait_seconds = wait_seconds

    # ------------------------------------------------------------------ observe
    def observe(self) -> Facts:
        h, lay = self.host, self.layout
        which = h.which
        runsc = which("runsc")
        records: list[RunscRecord] = []
        for path in (lay.runsc_record, lay.legacy_runsc_record):
            rec = parse_record(h.read_json(path), path)
            if rec is not None:
                records.append(rec)
        link = h.link_addrs(lay.bridge)
        routes = h.routes(lay.bridge)
        config = h.read_json(lay.config_file)
        applied = h.read_json(lay.applied)
        systemd = h.systemd_running()
        answers = h.answers(lay.host)
        pid = h.daemon_pid(lay.pidfile)
        docker_config, owner = context_target(self.env, h.root_home(), h.home_of)
        facts = Facts(
            linux=h.platform_linux(),
            root=h.is_root(),
            systemd=systemd,
            apt_get=which("apt-get") is not None,
            dockerd=which("dockerd"),
            docker_cli=which("docker"),
            runsc=runsc,
            runsc_version=h.runsc_version(runsc) if runsc else None,
            sysbox=which("sysbox-runc"),
            kvm=h.kvm_usable(),
            records=tuple(records),
            bridge_addrs=link[0] if link is not None else None,
            bridge_up=link[1] if link is not None else False,
            routes=routes,
            config=config if isinstance(config, dict) else None,
            applied=applied if isinstance(applied, dict) else None,
            unit_text=h.read_text(lay.unit) if systemd else None,
            script_text=h.read_text(lay.network_script) if systemd else None,
            unit_enabled=h.unit_enabled(lay.unit_name) if systemd else False,
            daemon_pid=pid,
            daemon_cmdline=h.cmdline(pid) if pid is not None else None,
            answers=answers,
            effective=h.engine_info(lay.host) if answers else None,
            context_host=h.context_host(docker_config, lay.context),
            docker_config=docker_config,
            context_owner=owner,
        )
        # The firewall rules depend on the subnet, which depends on what was found.
        cidr = choose_bridge(facts.bridge_addrs, facts.routes)
        subnet = str(ipaddress.ip_interface(cidr).network)
        present = [h.rule_present(r) for r in firewall_for(lay, subnet).rules]
        firewall_ok = None if any(p is None for p in present) else all(present)
        return replace(facts, firewall_ok=firewall_ok)

    def plan(self) -> Plan:
        facts = self.observe()
        if not facts.linux:
            raise Failed("cai setup prepares a Linux engine; on this system use Docker's own setup")
        return plan(facts, self.layout)

    # -------------------------------------------------------------------- apply
    def run(self, *, dry_run: bool = False) -> SetupResult:
        if dry_run:
            p = self.plan()
            return SetupResult(True, tuple(StepResult(s.key, s.summary, s.change) for s in p.steps))
        facts = self.observe()
        if not facts.linux:
            raise Failed("cai setup prepares a Linux engine; on this system use Docker's own setup")
        if not facts.root:
            raise Failed(
                "cai setup installs packages and starts an engine, which needs root: run "
                "`sudo cai setup` (see what it would do with `cai setup --dry-run`)"
            )
        with self.host.lock(self.layout.lock):
            return self._converge()

    def _converge(self) -> SetupResult:
        done: dict[str, StepResult] = {}
        runs: dict[str, int] = {}
        last: Plan | None = None
        facts: Facts | None = None
        for _ in range(len(STEPS) * 2 + 2):
            facts = self.observe()
            last = plan(facts, self.layout)
            pending = last.changes
            if not pending:
                break
            step = pending[0]
            allowed = 2 if step.key == "daemon" and "runsc" in done else 1
            if runs.get(step.key, 0) >= allowed:
                raise Failed(
                    f"cai setup: step '{step.key}' did not take effect ({step.summary}); "
                    f"see {self.layout.log}"
                )
            runs[step.key] = runs.get(step.key, 0) + 1
            self.progress(step.summary)
            self._execute(step, facts, last.desired)
            done[step.key] = StepResult(step.key, step.summary, True)
        else:  # pragma: no cover - each step runs at most twice
            raise Failed("cai setup did not converge; run it again with --verbose")
        assert last is not None and facts is not None
        results = [done.get(s.key, StepResult(s.key, s.summary, False)) for s in last.steps]
        notes: list[str] = []
        if done:
            d = last.desired
            agents = tier_of(d.runtimes)
            builds = "" if d.default_runtime == agents else f", image builds {d.default_runtime}"
            notes.append(
                f"the dedicated engine answers at {self.layout.host} (agent containers run "
                f"under {agents}{builds}); cai now uses its Docker context "
                f"'{self.layout.context}' (in {facts.docker_config})"
            )
            image = f"containai:{self.template}"
            if not self.host.has_image(self.layout.host, image):
                notes.append(
                    "its image store is separate from your default engine's: the first "
                    f"`cai run` builds {image} there (a few minutes; offline if it must), "
                    "or build it now with `cai image build`"
                )
        return SetupResult(False, tuple(results), tuple(notes))

    def _execute(self, step: Step, facts: Facts, desired: Desired) -> None:
        h, lay = self.host, self.layout
        if step.key == "packages":
            h.apt_install(tuple(step.data.get("packages", ())))
        elif step.key == "bridge":
            h.ensure_bridge(lay.bridge, desired.bridge_cidr)
        elif step.key == "firewall":
            h.ensure_firewall(desired.firewall)
        elif step.key == "runsc":
            self._probe(facts, desired)
        elif step.key == "config":
            self._keep_applied(facts)
            h.write_file(lay.config_file, render_config(desired.config))
        elif step.key == "unit":
            h.write_file(lay.network_script, desired.script_text, mode=0o755)
            h.write_file(lay.unit, desired.unit_text)
            h.systemctl("daemon-reload")
            h.systemctl("enable", lay.unit_name)
        elif step.key == "daemon":
            self._daemon(step.action, facts, desired.config)
        elif step.key == "context":
            h.create_context(
                facts.docker_config,
                lay.context,
                lay.host,
                update=step.action == "update",
                owner=facts.context_owner,
            )
        else:  # pragma: no cover - STEPS is closed
            raise Failed(f"unknown setup step {step.key}")

    def _keep_applied(self, facts: Facts) -> None:
        """Before the configuration file changes under a running daemon that has no record
        of what it was started with: record the file it was started from."""
        if (
            facts.answers
            and facts.applied is None
            and facts.config is not None
            and str(self.layout.config_file) in (facts.daemon_cmdline or ())
        ):
            self.host.write_file(self.layout.applied, render_config(facts.config))

    def _after_write(self, facts: Facts, config: Mapping[str, Any]) -> Facts:
        applied = self.host.read_json(self.layout.applied)
        return replace(facts, config=config, applied=applied if isinstance(applied, dict) else None)

    def _daemon(self, action: str, facts: Facts, config: Mapping[str, Any]) -> None:
        h, lay = self.host, self.layout
        if facts.systemd:
            h.systemctl(action if action != "ok" else "start", lay.unit_name)
            h.wait_answers(lay.host, self.wait_seconds, None, lay.log)
        else:
            pid = facts.daemon_pid
            if action == "reload" and pid is not None:
                h.reload_daemon(pid)
            else:
                if pid is not None:
                    h.stop_daemon(pid)
                dockerd = facts.dockerd or "dockerd"
                pid = h.start_daemon(dockerd, lay.config_file, lay.log)
            h.wait_answers(lay.host, self.wait_seconds, pid, lay.log)
        h.write_file(lay.applied, render_config(config))
        if action == "reload":
            # SIGHUP is asynchronous: give the engine a moment to take the new runtimes.
            for _ in range(50):
                if effective_matches(h.engine_info(lay.host), config):
                    break
                _sleep(0.1)

    def _probe(self, facts: Facts, desired: Desired) -> None:
        """Start the engine with every candidate registration of runsc, and see which runs."""
        h, lay = self.host, self.layout
        assert facts.runsc is not None
        candidates = probe_runtimes(facts)
        config = daemon_config(lay, pool=desired.pool, runtimes=candidates, default_runtime=PLAIN)
        h.write_file(lay.config_file, render_config(config))
        self._keep_applied(facts)
        action = daemon_action(self._after_write(facts, config), config, lay)
        if action != "ok":
            self._daemon(action, facts, config)
        works = h.probe(lay.host, list(candidates), lay)
        found: tuple[str, ...] | None = None
        winner = None
        for name, entry in candidates.items():
            if works.get(name):
                found = tuple(entry.get("runtimeArgs") or ())
                winner = name
                break
        statx = None
        if winner is not None:
            statx = "ok" if h.probe_statx(lay.host, winner, lay) else "broken"
        record = RunscRecord(
            version=facts.runsc_version or "unknown",
            works=found is not None,
            args=found,
            statx=statx,
            source=lay.runsc_record,
        )
        h.write_file(lay.runsc_record, json.dumps(record.to_json(), indent=2) + "\n")


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
