"""Which workspace, which container name, which settings (SPEC sections 3 and 6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containai.domain.errors import ConfigError

if TYPE_CHECKING:
    from containai.domain import settings
    from containai.services.ports import Config


class Workspace:
    """A workspace: its absolute path (symlinks resolved) and branch (or detached/nogit).

    A plain class, not a dataclass: this is on the hot path (DESIGN decision 2).
    """

    __slots__ = ("branch", "path", "refusal")

    def __init__(self, path: str, branch: str, refusal: str | None = None) -> None:
        self.path = path
        self.branch = branch
        #: why this directory may not be a workspace (``domain/workspace_rules.py``);
        #: commands that name an existing ``--container`` still work from here, nothing
        #: is created or granted for it (``check()``)
        self.refusal = refusal

    def check(self) -> None:
        """Exit 2 when this directory may not be a workspace (before anything is made)."""
        if self.refusal is not None:
            from containai.domain import workspace_rules
            from containai.domain.errors import UsageError

            raise UsageError(workspace_rules.message(self.refusal))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and (self.path, self.branch) == (
            other.path,
            other.branch,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.branch))

    def __repr__(self) -> str:
        return f"Workspace(path={self.path!r}, branch={self.branch!r})"

    @property
    def repo(self) -> str:
        return Path(self.path).name or "/"

    @property
    def base_name(self) -> str:
        """The generated container name before any collision suffix."""
        from containai.domain import naming

        return naming.container_name(self.repo, self.branch)


Resolver = Callable[[Path], tuple[Path, str]]


def identify(
    cwd: Path,
    workspace_flag: str | None,
    resolve_git: Resolver,
    branch_of: Callable[[Path], str],
    homes: tuple[str, ...] = (),
) -> Workspace:
    """``--workspace`` (made absolute, symlinks resolved) else the git top level of ``cwd``;
    a directory that holds more than a project carries its ``refusal``."""
    from containai.domain.errors import NotFound

    if workspace_flag is not None:
        path = (cwd / Path(workspace_flag).expanduser()).resolve()
        if not path.is_dir():
            raise NotFound(f"workspace {path} is not a directory; create it or fix --workspace")
        return Workspace(str(path), branch_of(path), _refusal(path, homes))
    top, branch = resolve_git(cwd.resolve())
    return Workspace(str(top), branch, _refusal(top, homes))


def _refusal(path: Path, homes: tuple[str, ...]) -> str | None:
    import stat

    from containai.domain import workspace_rules

    try:
        sticky = bool(path.stat().st_mode & stat.S_ISVTX)
    except OSError:
        sticky = False
    return workspace_rules.refusal(str(path), homes, sticky=sticky)


ENV_KEYS = {"CONTAINAI_DATA_VOLUME": "data_volume", "CONTAINAI_CONTEXT": "engine.context"}


class Settings:
    """The effective value of every key for one workspace, with where it came from.

    The repository's own settings file goes through ``domain.trust.repo_policy``: what it
    may not set (untrusted, never from a repository, unknown) is left out of the layers
    and listed in ``ignored`` for the caller to warn about.
    """

    def __init__(
        self,
        config: Config,
        env: Mapping[str, str],
        workspace: str | None,
        cli: Mapping[str, Any] | None = None,
    ) -> None:
        from containai.domain import settings, trust

        self.config = config
        self.workspace = workspace
        self.ignored: list[trust.Ignored] = []
        self.repo_trusted: bool | None = None  # None: no repository settings file
        env_values = {k: env[e] for e, k in ENV_KEYS.items() if env.get(e)}
        self._layers: list[tuple[str, Mapping[str, Any]]] = [
            ("cli", {k: v for k, v in (cli or {}).items() if v is not None}),
            ("env", env_values),
        ]
        if workspace is not None:
            state = config.workspace_state(workspace)
            self._layers.append(("workspace", self._checked(state, "workspace state")))
            repo = settings.flatten(config.read_repo(workspace))
            source = str(config.repo_path(workspace))
            if repo:
                digest = config.repo_digest(workspace)
                self.repo_trusted = (
                    digest is not None and config.trusted_digests().get(source) == digest
                )
                repo, ignored = trust.repo_policy(
                    repo, trusted=self.repo_trusted, source=source, known=settings.KEYS
                )
                self.ignored += ignored
            self._layers.append(("repo", self._checked(repo, source)))
        glob = settings.flatten(config.read_global())
        source = str(config.global_path)
        self.ignored += [
            trust.Ignored(k, source, trust.UNKNOWN_REASON, v)
            for k, v in glob.items()
            if k not in settings.KEYS
        ]
        self._layers.append(("global", self._checked(glob, source)))

    def _checked(self, values: Mapping[str, Any], source: str) -> dict[str, Any]:
        from containai.domain import settings

        out: dict[str, Any] = {}
        for k, v in values.items():
            if k in settings.STATE_FIELDS:
                continue
            where = source
            if source == "workspace state":
                where = f'{self.config.global_path} [workspace."{self.workspace}"]'
            out[k] = settings.check_file_value(k, v, where)
        return out

    def union(self, key: str) -> list[tuple[Any, str]]:
        """Each item of list setting ``key`` from every layer that sets it, with that
        layer's name: for settings that add up (``network.allow``, ``network.deny``)."""
        from containai.domain import settings

        out: list[tuple[Any, str]] = []
        seen: list[Any] = []
        for source, values in self._layers:
            for item in values.get(key) or []:
                if item not in seen:
                    seen.append(item)
                    out.append((item, source))
        if not out:
            out = [(item, "default") for item in settings.key(key).default or []]
        return out

    def user(self, key: str) -> Any:
        """The value of ``key`` from the user's own layers only (never the repository's):
        the limit a repository's value is held to."""
        from containai.domain import settings

        layers = [(s, v) for s, v in self._layers if s != "repo"]
        return settings.resolve(key, layers).value

    def get(self, key: str) -> settings.Resolved:
        from containai.domain import settings

        settings.key(key)  # unknown key -> UsageError
        return settings.resolve(key, self._layers)

    def value(self, key: str) -> Any:
        return self.get(key).value

    def all(self) -> list[settings.Resolved]:
        from containai.domain import settings

        return [self.get(k) for k in sorted(settings.KEYS)]

    def port_range(self) -> tuple[int, int]:
        from containai.domain.validation import validate_port_range

        start, end = int(self.value("ssh.port_range_start")), int(self.value("ssh.port_range_end"))
        try:
            validate_port_range(start, end)
        except Exception as exc:
            raise ConfigError(f"{exc}") from None
        return start, end
