"""``cai list [--json]``: every managed container of the selected engine (SPEC section 7)."""

from __future__ import annotations

from containai.cli.app import App
from containai.cli.options import add_json_option

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from containai.services.inventory import Listed

NAME = "list"
HELP = "list every container managed by cai"
DESCRIPTION = (
    "List every managed container: name, status, workspace, SSH alias, volume, "
    "image, isolation, age, keep."
)


def arguments(p: argparse.ArgumentParser) -> None:
    add_json_option(p)
    p.add_argument(
        "--all-contexts",
        action="store_true",
        help="the containers of every Docker context, with a CONTEXT column",
    )


HEADERS = ("NAME", "STATUS", "WORKSPACE", "SSH", "VOLUME", "IMAGE", "ISOLATION", "AGE", "KEEP")


def row_cells(item: Listed) -> tuple[str, ...]:
    from containai.domain.age import format_duration

    return (
        item.name,
        item.status,
        item.workspace or "-",
        item.ssh_alias,
        item.data_volume or "-",
        item.image or "-",
        item.isolation + ("" if item.network in ("allowlist", "none") else ", network open (!)"),
        "-" if item.age_seconds is None else format_duration(item.age_seconds),
        "yes" if item.keep else "no",
    )


def render_table(
    items: Sequence[Listed],
    *,
    tty: bool,
    width: int | None = None,
    contexts: Sequence[str] | None = None,
) -> str:
    """A rich table: columns sized to their content (never cut when not on a TTY),
    trailing blanks trimmed. An empty list renders as nothing (rule of silence)."""
    if not items:
        return ""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if tty else "",
        padding=(0, 2, 0, 0),
    )
    headers = HEADERS if contexts is None else ("CONTEXT", *HEADERS)
    for header in headers:
        table.add_column(header, no_wrap=not tty, overflow="fold")
    for i, item in enumerate(items):
        cells = row_cells(item) if contexts is None else (contexts[i], *row_cells(item))
        table.add_row(*(Text(cell) for cell in cells))
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width if tty and width else 1_000_000,
        force_terminal=tty,
        color_system="auto" if tty else None,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()).rstrip("\n") + "\n"


def _all_contexts(app: App) -> int:
    """``--all-contexts``: every context of Docker's store, asked at once (SPEC 16)."""
    from containai.adapters.engine import DockerEngine, context_names
    from containai.services.contexts import list_all_contexts

    names = context_names(app.env)
    found = list_all_contexts(names, lambda ctx: DockerEngine(ctx, env=app.env, timeout=15.0))
    for ctx, why in found.unreachable:
        app.out.warn(f"context '{ctx}' left out: {why}")
    if names and len(found.unreachable) == len(names):  # not one engine answered: exit 3
        from containai.domain.errors import EngineUnreachable

        raise EngineUnreachable("no Docker context answered; see `cai doctor`")
    if app.args.json:
        app.out.json(
            {
                "containers": [{**item.to_json(), "context": ctx} for ctx, item in found.rows],
                "unreachable": [{"context": ctx, "error": why} for ctx, why in found.unreachable],
            }
        )
        return 0
    if found.rows:
        import shutil

        tty = app.out.stdout.isatty()
        width = shutil.get_terminal_size().columns if tty else None
        items = [item for _ctx, item in found.rows]
        contexts = [ctx for ctx, _item in found.rows]
        app.out.stdout.write(render_table(items, tty=tty, width=width, contexts=contexts))
    return 0


def run(args: argparse.Namespace) -> int:
    from containai.services.inventory import list_managed

    if args.all_contexts:
        return _all_contexts(App(args))
    app = App(args, write_caches=True)  # the next `cai list` skips config parsing
    items = list_managed(app.engine)
    if args.json:
        app.out.json({"containers": [item.to_json() for item in items]})
        return 0
    if items:
        import shutil

        tty = app.out.stdout.isatty()
        width = shutil.get_terminal_size().columns if tty else None
        app.out.stdout.write(render_table(items, tty=tty, width=width))
    return 0
