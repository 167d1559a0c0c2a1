"""``cai code``: how an editor opens a workspace over Remote-SSH (SPEC section 17).

VS Code and its forks (Cursor, Windsurf, VSCodium with an SSH extension, code-insiders)
take ``--remote ssh-remote+<host> <path>``; the host is the container's SSH alias, which
``~/.ssh/config`` includes, and the path is the workspace's own absolute path (it is
mounted at that path inside). Pure: no I/O.
"""

from __future__ import annotations

from urllib.parse import quote

from containai.domain.errors import UsageError

DEFAULT = "code"


def check_editor(editor: str) -> str:
    """An editor command: a program name or a path, one word, no option."""
    if (
        not editor
        or editor.startswith("-")
        or any(not ch.isprintable() or ch.isspace() for ch in editor)
    ):
        raise UsageError(
            f"invalid --editor {editor!r}: name the editor's command (code, cursor, ...)"
        )
    return editor


def authority(alias: str) -> str:
    return f"ssh-remote+{alias}"


def argv(editor: str, alias: str, path: str) -> list[str]:
    """The command that opens ``path`` of host ``alias`` in ``editor``."""
    return [editor, "--remote", authority(alias), path]


def folder_uri(alias: str, path: str) -> str:
    """The same as a URI (``code --folder-uri URI``, or a link): ``vscode-remote://...``."""
    return f"vscode-remote://{authority(alias)}{quote(path)}"
