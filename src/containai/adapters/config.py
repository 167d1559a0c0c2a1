"""Config files and workspace state (DESIGN decision 4).

Reads use ``tomllib`` (stdlib, fast: the hot path reads state). Writes use
``tomlkit`` so comments and unknown keys survive, under a file lock, written
to a temp file and renamed into place (0600 in a 0700 directory). A file that
does not parse is reported with its path and line, and is never overwritten.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containai.adapters.files import atomic_write
from containai.domain.errors import ConfigError
from containai.lazy import lazy_module, sha256_hex
from containai.paths import Paths

if TYPE_CHECKING:
    import tempfile
else:
    tempfile = lazy_module("tempfile")


REPO_CONFIG = Path(".containai") / "config.toml"
TRUST_TABLE = "trusted"  # global config: [trusted] "<settings file>" = "<sha256>"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse ``path``; ``{}`` when missing; ``ConfigError`` naming the file and line."""
    return parse_toml(path, read_bytes(path))


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes; ``None`` when missing; ``ConfigError`` naming it otherwise."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; move it away") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def parse_toml(path: Path, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc}); fix or move it, cai will not "
            "overwrite it"
        ) from None


class ConfigFiles:
    """The global config (with workspace state) and repo-local configs."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._global: dict[str, Any] | None = None
        self._repo_digests: dict[str, str | None] = {}

    @property
    def global_path(self) -> Path:
        return self.paths.config_file

    def repo_path(self, workspace: str) -> Path:
        return Path(workspace) / REPO_CONFIG

    def read_global(self) -> dict[str, Any]:
        if self._global is None:
            self._global = read_toml(self.global_path)
        return self._global

    def read_repo(self, workspace: str) -> dict[str, Any]:
        """The repository's settings; the digest of these very bytes is kept for
        ``repo_digest`` (the file is writable from inside the container: what is trusted
        must be what was parsed)."""
        path = self.repo_path(workspace)
        data = read_bytes(path)
        self._repo_digests[workspace] = None if data is None else sha256_hex(data)
        return parse_toml(path, data)

    def repo_digest(self, workspace: str) -> str | None:
        """SHA-256 of the repository's settings file as last read (read now if it was not);
        ``None`` when absent."""
        if workspace not in self._repo_digests:
            self.read_repo(workspace)
        return self._repo_digests[workspace]

    def trusted_digests(self) -> dict[str, str]:
        """``[trusted]`` of the global config: settings file path -> SHA-256 (``cai trust``)."""
        table = self.read_global().get(TRUST_TABLE)
        if not isinstance(table, Mapping):
            return {}
        return {str(k): str(v) for k, v in table.items() if isinstance(v, str)}

    def set_trust(self, file: str, digest: str | None) -> bool:
        """Record (or, for ``None``, remove) the trusted digest of ``file``."""
        import tomlkit

        def change(doc: Any) -> bool:
            if TRUST_TABLE not in doc:
                if digest is None:
                    return False
                doc[TRUST_TABLE] = tomlkit.table()
            table = doc[TRUST_TABLE]
            if digest is None:
                if file not in table:
                    return False
                del table[file]
                return True
            if table.get(file) == digest:
                return False
            table[file] = digest
            return True

        return self.update(self.global_path, change)

    def workspace_state(self, workspace: str) -> dict[str, Any]:
        table = self.read_global().get("workspace")
        if not isinstance(table, Mapping):
            return {}
        state = table.get(workspace)
        return dict(state) if isinstance(state, Mapping) else {}

    def all_workspace_states(self) -> dict[str, dict[str, Any]]:
        table = self.read_global().get("workspace")
        if not isinstance(table, Mapping):
            return {}
        return {k: dict(v) for k, v in table.items() if isinstance(v, Mapping)}

    # ------------------------------------------------------------------ writes
    def update(self, path: Path, change: Callable[[Any], bool]) -> bool:
        """Locked read-modify-write of ``path`` with tomlkit; ``change`` returns whether it
        changed anything (nothing is written otherwise)."""
        import tomlkit

        from containai.adapters.locks import FileLock

        self.paths.locks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_name = "config-" + sha256_hex(str(path))[:16] + ".lock"
        if path == self.global_path:
            lock_name = "config.lock"
        with FileLock(str(self.paths.locks_dir / lock_name), timeout=30):
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except OSError as exc:
                raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(
                    f"config file {path} is not UTF-8 text; fix or move it, cai will not "
                    "overwrite it"
                ) from None
            try:
                doc = tomlkit.parse(text)
            except Exception as exc:  # tomlkit raises its own ParseError subclasses
                raise ConfigError(
                    f"config file {path} is not valid TOML ({exc}); fix or move it, cai will "
                    "not overwrite it"
                ) from None
            try:
                changed = change(doc)
            except (TypeError, AttributeError, KeyError, ValueError) as exc:
                # e.g. `ssh = "x"` where a table is needed, or `workspace = 1`
                raise ConfigError(
                    f"config file {path} has a value where a table is needed ({exc}); fix or "
                    "move it, cai will not overwrite it"
                ) from None
            if not changed:
                return False
            try:
                if path == self.global_path:
                    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    os.chmod(path.parent, 0o700)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                atomic_write(path, tomlkit.dumps(doc))
            except OSError as exc:
                raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None
        if path == self.global_path:
            self._global = None
        return True

    def set_value(self, path: Path, dotted: str, value: Any) -> bool:
        import tomlkit

        def change(doc: Any) -> bool:
            table = doc
            *parents, leaf = dotted.split(".")
            for part in parents:
                if part not in table:
                    table[part] = tomlkit.table()
                table = table[part]
            if leaf in table and table[leaf] == value:
                return False
            table[leaf] = value
            return True

        return self.update(path, change)

    def unset_value(self, path: Path, dotted: str) -> bool:
        def change(doc: Any) -> bool:
            table = doc
            *parents, leaf = dotted.split(".")
            for part in parents:
                if part not in table:
                    return False
                table = table[part]
            if leaf not in table:
                return False
            del table[leaf]
            return True

        if not path.exists():
            return False
        return self.update(path, change)

    def set_workspace_state(self, workspace: str, values: Mapping[str, Any | None]) -> bool:
        """Set (or, for ``None``, remove) fields of ``[workspace."<path>"]``."""
        return self.set_workspace_states({workspace: values})

    def set_workspace_states(self, changes: Mapping[str, Mapping[str, Any | None]]) -> bool:
        """``set_workspace_state`` for each workspace of ``changes``, in one locked
        read-modify-write of the file (``cai gc`` of many containers)."""
        import tomlkit

        def change(doc: Any) -> bool:
            changed = False
            for workspace, values in changes.items():
                if "workspace" not in doc:
                    if all(v is None for v in values.values()):
                        continue
                    doc["workspace"] = tomlkit.table(is_super_table=True)
                ws_table = doc["workspace"]
                if workspace not in ws_table:
                    if all(v is None for v in values.values()):
                        continue
                    ws_table[workspace] = tomlkit.table()
                state = ws_table[workspace]
                for k, v in values.items():
                    if v is None:
                        if k in state:
                            del state[k]
                            changed = True
                    elif state.get(k) != v:
                        state[k] = v
                        changed = True
            return changed

        return self.update(self.global_path, change) if changes else False
