"""``cai import [--from DIR|ARCHIVE | ARCHIVE] [--container NAME | --data-volume NAME]
[-w PATH] [--dry-run] [--no-secrets] [--force]``.

* ``--from ARCHIVE`` (a file): restore a ``cai export`` archive, replacing the
  volume's content (checked first; asks on a TTY, else needs ``--force``).
  ``cai import ARCHIVE`` is the same when ARCHIVE ends in ``.tgz``/``.tar.gz`` or is
  an existing file.
* no ``--from``, or ``--from DIR``: copy host configuration (from ``$HOME`` or
  DIR) into the volume by the import manifests. Success prints nothing;
  ``--dry-run`` lists each entry and what would happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from containai.cli.app import App
from containai.cli.commands.export import Meter, archives, resolve_target
from containai.cli.options import (
    add_container_option,
    add_data_volume_option,
    add_dry_run_option,
    add_force_option,
    add_workspace_option,
)
from containai.domain.errors import ConfirmationNeeded, Failed, NotFound, UsageError

if TYPE_CHECKING:
    import argparse

    from containai.services.host_import import ManifestEntry, PlannedEntry

NAME = "import"
HELP = "import host configuration or an export into a data volume"
DESCRIPTION = (
    "Import host configuration (default: from $HOME) or a previous export "
    "into the data volume. `cai import ARCHIVE` is `cai import --from ARCHIVE` when "
    "ARCHIVE ends in .tgz or .tar.gz, or is an existing file."
)
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz")


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="source",
        metavar="DIR|ARCHIVE",
        help="directory of host configuration, or a .tgz made by `cai export`",
    )
    p.add_argument(
        "archive",
        nargs="?",
        metavar="ARCHIVE",
        help="same as --from ARCHIVE, for a .tgz made by `cai export`",
    )
    g = p.add_mutually_exclusive_group()
    add_container_option(g, "import into this container's volume")
    add_data_volume_option(g, "import into this volume")
    add_workspace_option(p, "workspace whose volume to use")
    add_dry_run_option(p, "list what would be copied")
    p.add_argument("--no-secrets", action="store_true", help="skip entries marked secret")
    add_force_option(p, "replace the volume's content from an archive without asking")


def source_of(app: App) -> str | None:
    """``--from``, or the ARCHIVE positional when it names an archive (``None``: the
    host configuration in $HOME)."""
    source: str | None = app.arg("source")
    archive: str | None = app.arg("archive")
    if archive is None:
        return source
    if source is not None:
        raise UsageError(f"give the archive once: '{archive}' or --from {source}, not both")
    if archive.endswith(ARCHIVE_SUFFIXES) or _source_path(app, archive).is_file():
        return archive
    raise UsageError(
        f"'{archive}' is not an archive from `cai export` (.tgz, .tar.gz) nor an existing "
        "file; to import host configuration from a directory use --from DIR"
    )


def manifest(app: App) -> list[ManifestEntry]:
    """The common manifest, then every agent's ``[[import]]`` entries."""
    import tomllib
    from importlib import resources

    from containai import agents
    from containai.services.host_import import manifest_entries

    common = resources.files(agents.__name__).joinpath("manifests/common.toml")
    groups: list[tuple[str, Any]] = [
        ("common", tomllib.loads(common.read_text()).get("import", []))
    ]
    for name in agents.names():
        groups.append((name, agents.load(name).imports))
    return manifest_entries(groups)


def _source_path(app: App, source: str) -> Path:
    return app.cwd / Path(source).expanduser()


def _render(plans: list[PlannedEntry]) -> list[str]:
    width = max((len(p.path) for p in plans), default=0)
    return [f"{p.action:<9} {p.path:<{width}}  {p.detail}" for p in plans]


def _agent_state(app: App, target: Any, workspace_flag: str | None) -> tuple[int, int, str]:
    """The uid/gid of the agent that will read the import (the container's own, else
    the one cai would create: never root) and its state directory on the volume."""
    from containai.adapters.host import Host
    from containai.services.host_import import agent_ids_of, state_dir_in

    info = app.engine.find(target.container) if target.container else None
    ids = agent_ids_of(info)
    if ids is None:
        ids = Host(app.env).agent_ids(app.workspace(workspace_flag).path)
    running = target.container if info is not None and info.running else None
    image = archives(app).helper_image(target.image) if running is None else ""
    return (*ids, state_dir_in(app.engine, target.volume, ids[0], image, running))


def _import_host(app: App, args: argparse.Namespace, source: Path) -> int:
    from containai.services.host_import import items_of, plan_import, rebase

    plans = plan_import(manifest(app), source, no_secrets=args.no_secrets)
    warnings = [w for p in plans for w in p.warnings]
    if args.dry_run:
        for line in _render(plans):
            app.out.line(line)
        for warning in warnings:
            app.out.warn(warning)
        return 0
    items = items_of(plans)
    for warning in warnings:
        app.out.warn(warning)
    if not any(p.action != "skip" for p in plans):
        app.out.warn(f"nothing to import from {source} (see `cai import --dry-run`)")
        return 0
    target = resolve_target(app, args.container, args.data_volume, args.workspace)
    uid, gid, home = _agent_state(app, target, args.workspace)
    items = rebase(items, home)
    for warning in archives(app).copy_items(target, items, uid=uid, gid=gid):
        app.out.warn(warning)
    copied = sum(1 for p in plans if p.action != "skip")
    app.out.changed(f"imported {copied} entries from {source} into {_volume(app, target.volume)}")
    return 0


def _volume(app: App, volume: str) -> str:
    """The volume as the state-change line names it; on a remote engine with its
    context, so the line says which machine the files went to (SPEC section 16)."""
    if app.endpoint.remote:
        return f"volume {volume} of context '{app.context_label}'"
    return f"volume {volume}"


def _root_owner() -> tuple[int, int]:
    """Who owns the volume root after an archive import, whatever the archive says: cai
    (root, 0755), as on a volume cai creates; the entrypoint gives each agent its own
    directory inside (SPEC section 14: a container never chowns the shared root)."""
    return (0, 0)


def _import_archive(app: App, args: argparse.Namespace, archive: Path) -> int:
    if args.no_secrets:
        raise UsageError("--no-secrets is for host configuration; an archive is restored as it is")
    target = resolve_target(app, args.container, args.data_volume, args.workspace)
    service = archives(app)
    exists = service.volume_exists(target.volume)
    ask = exists and not args.force and not args.dry_run
    if ask and not app.out.interactive:
        raise ConfirmationNeeded(
            f"importing {archive} replaces the content of volume '{target.volume}' and there "
            "is no TTY to ask; add --force"
        )
    meter = Meter(app, f"checking {archive.name}")
    try:
        members = service.check(archive, progress=meter)
    finally:
        meter.close()
    if args.dry_run:
        verb = "replace the content of" if exists else "create"
        app.out.line(
            f"would {verb} volume '{target.volume}' with {len(members)} entries from {archive}"
        )
        return 0
    if ask and not app.out.confirm(f"Replace the content of volume '{target.volume}'?"):
        raise Failed(f"left volume '{target.volume}' as it was (not confirmed)")
    meter = Meter(app, f"importing {archive.name}")
    try:
        service.restore(target, archive, members, progress=meter, owner=_root_owner())
    finally:
        meter.close()
    where = _volume(app, target.volume)
    app.out.changed(f"restored {where} from {archive} ({len(members)} entries)")
    return 0


def run(args: argparse.Namespace) -> int:
    app = App(args)
    given = source_of(app)
    if given is None:
        return _import_host(app, args, app.paths.home)
    source = _source_path(app, given)
    if not source.exists():
        raise NotFound(f"{source} does not exist: give a directory or an archive from `cai export`")
    if source.is_dir():
        return _import_host(app, args, source)
    return _import_archive(app, args, source)
