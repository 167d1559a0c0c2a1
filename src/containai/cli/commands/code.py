"""``cai code [--editor code|cursor|...]``: open the workspace in an editor over
Remote-SSH (SPEC section 17)."""

from __future__ import annotations

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain.errors import Failed

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "code"
HELP = "open the workspace in VS Code (or --editor) over Remote-SSH"
DESCRIPTION = (
    "Open the container's workspace in VS Code through Remote-SSH: `code --remote "
    "ssh-remote+cai-<name> <path>` (--editor cursor, code-insiders, windsurf, ... "
    "likewise). Without the editor on PATH, print the command and the "
    "vscode-remote:// URI to use instead (exit 1)."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--editor",
        metavar="COMMAND",
        help="the editor's command: code (default), cursor, code-insiders, windsurf, ...",
    )
    add_container_option(p, "the container to open")
    add_workspace_option(p, "workspace whose container to open")


def run(args: argparse.Namespace) -> int:
    import shlex
    import shutil

    from containai.adapters import programs
    from containai.adapters.ssh import alias
    from containai.domain import editor

    command = editor.check_editor(editor.DEFAULT if args.editor is None else args.editor)
    check_container_or_workspace(args)
    app = App(args)
    target = app.lookup.find_existing(app.workspace(), args.container)
    if target.state != "running":
        raise Failed(
            f"container '{target.name}' is {target.state}, not running; start it with "
            "`cai run --detached`, then `cai code`"
        )
    warning = app.ssh.ensure_include()  # the editor finds cai-<name> through ~/.ssh/config
    if warning:
        app.out.warn(warning)
    host = alias(target.name)
    argv = editor.argv(command, host, target.workspace)
    found = shutil.which(command)
    if found is None:
        app.out.line(shlex.join(argv))
        app.out.line(editor.folder_uri(host, target.workspace))
        raise Failed(
            f"editor '{command}' is not installed (not on PATH); run the command above "
            "where it is, or open the vscode-remote:// URI"
        )
    done = programs.run([found, *argv[1:]], env=app.env, timeout=120)
    if done.returncode != 0:
        raise Failed(f"'{shlex.join(argv)}' failed: {programs.last_error(done)}")
    app.out.changed(f"opened {target.workspace} of {target.name} in {command} ({host})")
    return 0
