"""The composition root: concrete adapters wired into services, once per command.

Everything is created lazily, so a command pays only for what it uses.
"""

from __future__ import annotations

import os

from containai.cli.output import Output
from containai.lazy import once
from containai.paths import Paths, resolve_paths

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from containai.adapters.config import ConfigFiles
    from containai.adapters.devcontainer_file import DevcontainerFiles
    from containai.adapters.engine import DockerEngine
    from containai.adapters.host import Host
    from containai.adapters.hotcache import ContainerCache
    from containai.adapters.ssh import SshFiles
    from containai.domain.egress import Policy
    from containai.domain.remote import Endpoint
    from containai.services.devcontainer import Devcontainers
    from containai.services.egress import Egress
    from containai.services.engine_select import Selection
    from containai.services.images import Images
    from containai.services.lifecycle import Lifecycle
    from containai.services.lookup import Lookup
    from containai.services.remote import RemoteImages, RemoteWorkspace
    from containai.services.run_request import ImageProvider
    from containai.services.stopping import Stopping
    from containai.services.workspace import Settings, Workspace


class App:
    def __init__(
        self,
        args: argparse.Namespace,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        *,
        write_caches: bool = False,
    ) -> None:
        """Every command reads the engine-selection cache; only one that asks for it
        (``cai list``, whose budget is a few ms over one engine listing) writes it, so
        commands that must change nothing (doctor, refused input) leave no file behind."""
        self.args = args
        self.write_caches = write_caches
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._cwd = cwd
        verbose = bool(getattr(args, "verbose", False)) or self.env.get(
            "CONTAINAI_VERBOSE", ""
        ) not in ("", "0")
        self.out = Output(quiet=bool(getattr(args, "quiet", False)), verbose=verbose)
        self.paths: Paths = resolve_paths(self.env)
        self._warned: set[str] = set()
        self._devcontainer_files: DevcontainerFiles | None = None

    @property
    def cwd(self) -> Path:
        if self._cwd is None:
            from pathlib import Path

            self._cwd = Path.cwd()
        return self._cwd

    def arg(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    @once
    def config(self) -> ConfigFiles:
        from containai.adapters.config import ConfigFiles

        return ConfigFiles(self.paths)

    def workspace(self, flag: str | None = None) -> Workspace:
        from containai.adapters import git
        from containai.services.workspace import identify

        found = identify(
            self.cwd,
            flag if flag is not None else self.arg("workspace"),
            lambda p: git.resolve_workspace(p, self.env),
            lambda p: git.branch_of(p, self.env),
            homes=self._homes(),
        )
        return found

    def _homes(self) -> tuple[str, ...]:
        """The caller's home directories: ``HOME`` and, under sudo, the invoking user's."""
        homes = [self.env["HOME"]] if self.env.get("HOME") else []
        sudo_uid = self.env.get("SUDO_UID", "")
        if sudo_uid.isdigit():
            import contextlib
            import pwd

            with contextlib.suppress(KeyError):
                homes.append(pwd.getpwuid(int(sudo_uid)).pw_dir)
        return tuple(homes)

    def settings(self, workspace: str | None, cli: Mapping[str, Any] | None = None) -> Settings:
        """The effective settings; each ignored one (a repository's untrusted or forbidden
        key, an unknown key) is warned about once per command."""
        from containai.services.workspace import Settings

        view = Settings(self.config, self.env, workspace, cli)
        for item in view.ignored:
            message = item.message()
            if message not in self._warned:
                self._warned.add(message)
                self.out.warn(message)
        return view

    @once
    def selection(self) -> Selection:
        """The engine to talk to: cached under everything it depends on (``hotcache``),
        else selected afresh from the flag, variables, config and Docker's contexts."""
        from containai.adapters import hotcache
        from containai.services.engine_select import Selection

        key = hotcache.engine_key(self.paths, self.env, self.arg("context"))
        cached = hotcache.read_selection(self.paths, key)
        if cached is not None:
            return Selection(*cached)
        from containai.adapters.engine import context_exists, current_docker_context
        from containai.services.engine_select import select_context

        configured = self.settings(None).value("engine.context")
        selection = select_context(
            self.arg("context"),
            self.env,
            configured,
            lambda name: context_exists(name, self.env),
            lambda: current_docker_context(self.env),
        )
        if self.write_caches:
            hotcache.write_selection(self.paths, key, selection.context, selection.source)
        return selection

    @once
    def engine(self) -> DockerEngine:
        from containai.adapters.engine import DockerEngine

        selection = self.selection
        self.out.info(f"engine: context {selection.context or 'DOCKER_HOST'} ({selection.source})")
        return DockerEngine(selection.context, env=self.env)

    @once
    def endpoint(self) -> Endpoint:
        """Where the selected engine is: this machine, or another over ``ssh://``
        (SPEC section 16), read from Docker's context store (no fork)."""
        from containai.adapters.engine import context_host
        from containai.domain.remote import classify

        return classify(context_host(self.selection.context, self.env))

    @property
    def context_label(self) -> str:
        """The selected context as messages name it."""
        return self.selection.context or "DOCKER_HOST"

    @once
    def local_engine(self) -> DockerEngine:
        """The engine on this machine that builds images for a remote one: the dedicated
        ``containai-docker`` when it exists, else Docker's own local choice."""
        from containai.adapters.engine import DockerEngine, context_exists, context_host
        from containai.domain.remote import classify
        from containai.services.engine_select import DEDICATED_CONTEXT

        if context_exists(DEDICATED_CONTEXT, self.env):
            return DockerEngine(DEDICATED_CONTEXT, env=self.env)
        if self.env.get("DOCKER_HOST") and not classify(self.env["DOCKER_HOST"]).remote:
            return DockerEngine(None, env=self.env)
        current = self.env.get("DOCKER_CONTEXT") or "default"
        if current != "default" and not classify(context_host(current, self.env)).remote:
            return DockerEngine(current, env=self.env)
        return DockerEngine("default", env={**self.env, "DOCKER_HOST": ""})

    def run_images(self, settings: Settings) -> ImageProvider:
        """Images for containers: the engine's own, or on a remote engine built here and
        sent there (``services/remote.py``)."""
        if not self.endpoint.remote:
            return self.images(settings)
        return self.remote_images(settings)

    def remote_images(self, settings: Settings) -> RemoteImages:
        """A remote engine's images: built on ``local_engine``, sent with save|load."""
        from containai.adapters.locks import FileLocks
        from containai.services.remote import RemoteImages

        local = self.images(settings, engine=self.local_engine)
        return RemoteImages(
            local,
            self.engine,
            lambda ref: self.local_engine.send_image(ref, self.engine),
            gateway=local.ensure_gateway,
            progress=self.out.changed,  # a minute of save|load: said even without a TTY
            lock=FileLocks(self.paths.locks_dir, timeout=3600).named,
            context=self.context_label,
        )

    def remote_workspace(self) -> RemoteWorkspace | None:
        """On a remote engine: where containers get their workspace (``None`` here)."""
        endpoint = self.endpoint
        if not endpoint.remote:
            return None
        from containai.adapters.workspace_copy import WorkspaceCopier
        from containai.domain.remote import require_jump
        from containai.services.remote import RemoteWorkspace

        return RemoteWorkspace(
            self.engine,
            WorkspaceCopier(self.env),
            self.context_label,
            require_jump(self.context_label, endpoint),
            self.paths.state_dir / "transfer",
            progress=self.out.changed,
            warn=self.out.warn,
        )

    @once
    def ssh(self) -> SshFiles:
        from containai.adapters.ssh import SshFiles

        return SshFiles(self.paths)

    def images(self, settings: Settings, engine: DockerEngine | None = None) -> Images:
        from containai import agents
        from containai.adapters import rootfs
        from containai.adapters.locks import FileLocks
        from containai.adapters.netconf import npm_registry, pip_index
        from containai.cli.progress import BuildDisplay
        from containai.services.images import Images

        engine = engine or self.engine
        display = BuildDisplay(self.out)  # a bar on a TTY, phase lines otherwise
        return Images(
            engine,
            user_templates=self.paths.user_templates_dir,
            base_image=str(settings.value("image.base")),
            ca_bundle=settings.value("image.ca_bundle"),
            agents=list(settings.value("agents")),
            agent_packages=agents.npm_packages,
            agent_binaries=agents.npm_binaries,
            npm_registry=lambda: npm_registry(self.env),
            pypi_agents=agents.pypi_specs,
            pypi_index=lambda: pip_index(self.env),
            home_links=agents.home_links,
            packages=list(settings.value("image.packages")),
            progress=display.phase,
            build_display=display,
            bootstrap=lambda tag: rootfs.bootstrap_base_image(
                engine.argv(), tag, log=display.phase
            ),
            bootstrap_possible=rootfs.debootstrap_available,
            lock=FileLocks(self.paths.locks_dir, timeout=3600).named,
            ca_dir=self.paths.ca_dir,
            memo_dir=self.paths.state_dir / "images",
        )

    def egress_policy(self, settings: Settings) -> Policy:
        """The workspace's egress policy from its settings and the presets' hosts."""
        from containai import agents
        from containai.domain import egress

        presets = list(settings.value("network.presets"))
        hosts: dict[str, list[str]] = {}
        if "agents" in presets:
            hosts["agents"] = agents.api_hosts(list(settings.value("agents")))
        if "package-registries" in presets:
            from containai.adapters import netconf

            cache = str(self.paths.state_dir / "registries.json")
            hosts["package-registries"] = netconf.cached_package_registry_hosts(self.env, cache)
        if "git-hosts" in presets:
            hosts["git-hosts"] = list(egress.GIT_HOSTS)
        return egress.build_policy(
            mode=str(settings.value("network.policy")),
            presets=presets,
            preset_hosts=hosts,
            allow=[str(v) for v, _src in settings.union("network.allow")],
            deny=[str(v) for v, _src in settings.union("network.deny")],
            allow_cidrs=list(settings.value("network.allow_cidrs")),
        )

    def egress(self, settings: Settings) -> Egress:
        from containai.adapters import netconf
        from containai.services.egress import Egress

        images = self.run_images(settings)
        local = not self.endpoint.remote
        return Egress(
            self.engine,
            image=images.ensure_gateway,  # type: ignore[attr-defined]
            host_addresses=netconf.host_addresses if local else (lambda: ()),
        )

    @once
    def host(self) -> Host:
        from containai.adapters.host import Host

        return Host(self.env)

    @once
    def container_cache(self) -> ContainerCache:
        """Which container served a workspace last, under this engine selection."""
        from containai.adapters.hotcache import ContainerCache

        return ContainerCache(self.paths, self.env, self.arg("context"))

    @once
    def lookup(self) -> Lookup:
        """Finding containers (read-only): what status, stop, export and network need."""
        from containai.services.lookup import Lookup

        return Lookup(self.engine, self.config, elsewhere=self._entry_elsewhere)

    def _entry_elsewhere(self, name: str) -> str | None:
        """A name whose SSH entry is another engine's container is taken (SPEC 16)."""
        from containai.services.lookup import entry_elsewhere

        here = self.context_label if self.endpoint.remote else ""
        return entry_elsewhere(self.ssh, here)(name)

    def stopping(self, settings: Settings) -> Stopping:
        from containai.adapters.locks import FileLocks
        from containai.services.stopping import Stopping

        return Stopping(
            self.lookup,
            self.ssh,
            self.config,
            FileLocks(self.paths.locks_dir),
            egress=self.egress(settings),
            info=self.out.info,
        )

    def lifecycle(self, settings: Settings) -> Lifecycle:
        from containai.adapters.locks import FileLocks
        from containai.services.lifecycle import Lifecycle
        from containai.services.ports import HostProbe

        host: HostProbe = self.host
        remote = self.remote_workspace()
        if remote is not None:
            from containai.adapters.ssh.jump import remote_port_free
            from containai.services.remote import RemoteHost

            jump = remote.jump
            host = RemoteHost(
                host, self.engine, lambda port: remote_port_free(jump, port, self.env)
            )
        return Lifecycle(
            self.engine,
            self.ssh,
            self.config,
            FileLocks(self.paths.locks_dir),
            host,
            self.run_images(settings),
            warn=self.out.warn,
            info=self.out.info,
            git_guard=_guard_with_settings_dir,
            egress=self.egress(settings),
            remote=remote,
            devcontainer=self.devcontainers(settings),
        )

    def devcontainers(self, settings: Settings) -> Devcontainers:
        """The workspace's devcontainer.json, applied by lifecycle (SPEC 18)."""
        from containai.services.devcontainer import Devcontainers

        remote = self.endpoint.remote  # images built here and shipped (SPEC 16)
        builder = self.local_engine if remote else self.engine
        return Devcontainers(
            self.engine,
            self.devcontainer_files(),
            self.config.trusted_digests,
            enabled=bool(settings.value("devcontainer")),
            images=self.images(settings, engine=builder),
            warn=self._warn_once,
            progress=self.out.progress,
            builder=builder,
            ship=self.remote_images(settings).ship if remote else lambda _ref: None,
            scratch=self.paths.state_dir / "tmp",
        )

    def devcontainer_files(self) -> DevcontainerFiles:
        """The command's one reader of devcontainer.json files (each parsed once)."""
        if self._devcontainer_files is None:
            from containai.adapters.devcontainer_file import DevcontainerFiles

            self._devcontainer_files = DevcontainerFiles()
        return self._devcontainer_files

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.out.warn(message)

    def restore_forwards(self, name: str, workspace: str, settings: Settings | None = None) -> None:
        """Recorded background forwards, the ``forward`` setting and devcontainer
        ``forwardPorts``, back once ``cai run`` has the container up (SPEC 17)."""
        from containai.cli.commands.forward import restore_forwards

        restore_forwards(self, name, workspace, settings)

    def confirm_sessions(self, name: str, sessions: Any) -> bool:
        """Ask about active sessions on a TTY; without one, exit 6 naming --force."""
        from containai.services.stopping import confirm_unavailable

        if not self.out.interactive:
            return confirm_unavailable(name, sessions)
        self.out.stderr.write(f"[WARN] Container '{name}' may have active sessions\n")
        return self.out.confirm("Stop anyway?")


def _guard_with_settings_dir(workspace: str) -> Any:
    """The git guard plus the repository's settings directory (``.containai``), read-only
    inside: the agent cannot rewrite the settings the host applies (or is about to
    trust) at the next ``cai run`` (SPEC section 14)."""
    import dataclasses
    from pathlib import Path

    from containai.adapters import git

    guard = git.guard_paths(Path(workspace))
    settings_dir = Path(workspace) / ".containai"
    if settings_dir.is_dir() and not settings_dir.is_symlink():
        guard = dataclasses.replace(guard, readonly=(*guard.readonly, str(settings_dir)))
    return guard
