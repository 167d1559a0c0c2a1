"""``cai doctor [--json]`` (SPEC section 13): check the machine, say how to fix it.

Exit 0 when a workspace can be created (no check ``FAIL``), 1 otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containai.cli.app import App
from containai.cli.options import add_json_option
from containai.domain.errors import CaiError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from containai.services.doctor import DoctorReport

NAME = "doctor"
HELP = "check this machine and say how to fix what is missing"
DESCRIPTION = (
    "Check the machine (engine, context, isolation, base image, OpenSSH, "
    "keys, ports, disk) and say how to fix what is missing."
)


def arguments(p: argparse.ArgumentParser) -> None:
    add_json_option(p)


STATUS_COLUMN_MAX = 88
"""Text lines are padded so the ``[STATUS]`` words line up, up to this column."""


def render_text(report: DoctorReport) -> list[str]:
    """One line per check, ``[OK]``/``[WARN]``/``[FAIL]``/``[SKIP]`` in one column, and
    an indented ``fix:`` line under every check that has one."""
    from containai.services.doctor import OK

    title_width = max((len(c.title) for c in report.checks), default=0)
    texts = [f"{c.title:<{title_width}}  {c.detail}" for c in report.checks]
    column = min(max((len(t) for t in texts), default=0), STATUS_COLUMN_MAX)
    lines: list[str] = []
    for text, check in zip(texts, report.checks, strict=True):
        lines.append(f"{text:<{column}}  [{check.status}]")
        if check.status != OK and check.fix:
            lines.append(f"{'':<{title_width}}  fix: {check.fix}")
    return lines


def _settings(app: App) -> tuple[dict[str, Any], Sequence[Any]]:
    """The settings doctor needs; defaults (and a FAIL line) when config cannot be read."""
    from containai.domain.settings import KEYS
    from containai.services.doctor import FAIL, Check

    keys = (
        "image.base",
        "template",
        "runtime",
        "ssh.port_range_start",
        "ssh.port_range_end",
        "network.policy",
    )
    defaults = {k: KEYS[k].default for k in keys}
    try:
        try:
            workspace: str | None = app.workspace().path
        except CaiError:
            workspace = None
        settings = app.settings(workspace)
        return {k: settings.value(k) for k in keys}, ()
    except CaiError as exc:
        return defaults, (
            Check(
                "config",
                FAIL,
                str(exc),
                f"fix the file named, or reset the key with `cai config unset KEY` "
                f"({app.paths.config_file})",
            ),
        )


def _gateway_image(app: App) -> str | None:
    """The egress gateway image this cai would use (its tag names its inputs' hash)."""
    from containai.services.images import GATEWAY_REPO

    try:
        return f"{GATEWAY_REPO}:{app.images(app.settings(None)).gateway_hash()}"
    except CaiError:
        return None


def run(args: argparse.Namespace) -> int:
    from containai.adapters.engine import DockerEngine, context_exists
    from containai.adapters.machine import MachineProbe
    from containai.services.doctor import DEFAULT_BUDGET, DoctorInputs, diagnose
    from containai.services.engine_select import DEDICATED_CONTEXT

    app = App(args)
    values, extra = _settings(app)
    from containai.adapters.engine import context_host
    from containai.services.remote import doctor_check

    try:  # SPEC section 16: say when the engine is another machine
        remote = doctor_check(app.context_label, context_host(app.selection.context, app.env))
    except CaiError:
        remote = None  # an unknown context: the Context line says so
    if remote is not None:
        extra = (*extra, remote)

    def engine_for(context: str | None) -> DockerEngine:
        return DockerEngine(context, env=app.env, timeout=DEFAULT_BUDGET * 4)

    inputs = DoctorInputs(
        select=lambda: app.selection,
        engine_for=engine_for,
        dedicated_exists=lambda: context_exists(DEDICATED_CONTEXT, app.env),
        host=MachineProbe(app.env),
        user_key=app.paths.user_key,
        ssh_config=app.paths.ssh_config,
        include_is_first=app.ssh.include_is_first,
        include_line=app.ssh.include_line(),
        image_base=str(values["image.base"]),
        template=str(values["template"]),
        runtime=str(values["runtime"]),
        port_range=(int(values["ssh.port_range_start"]), int(values["ssh.port_range_end"])),
        extra=extra,
        network_policy=str(values["network.policy"]),
        gateway_image=_gateway_image(app),
    )
    report = diagnose(inputs)
    if args.json:
        app.out.json(report.to_json())
    else:
        for line in render_text(report):
            app.out.line(line)
    return 0 if report.ok else 1
