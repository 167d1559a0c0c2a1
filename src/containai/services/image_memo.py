"""The image memo: the template hash a cold create found current last time, one file
per image alias under ``$XDG_STATE_HOME/containai/images/`` (``containai_default.hash``;
a devcontainer's builds have their own alias, so their own file). ``Images.ensure``
asks for the image of that hash beside the base images instead of after them. Only a
guess: whatever it says, the engine's label decides (docs/decisions.md)."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from containai.domain import image_tags


class HashMemo:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _file(self, alias: str) -> Path:
        return self.folder / (alias.replace(":", "_") + ".hash")

    def recall(self, alias: str) -> str | None:
        """The hash kept for ``alias``; ``None`` when unknown (never kept, unreadable, or
        not a build hash)."""
        try:
            text = self._file(alias).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if image_tags.is_hash(text) else None

    def keep(self, alias: str, digest: str) -> None:
        """Keep ``digest`` for ``alias``: written whole (a temporary file renamed), and
        best effort (a guess is not worth an error)."""
        with suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            dest = self._file(alias)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_text(digest + "\n", encoding="ascii")
            os.replace(tmp, dest)
