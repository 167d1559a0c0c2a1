"""A workspace's devcontainer.json applied to its container (SPEC section 18).

``adapters/devcontainer_file.py`` reads and parses the file; ``domain/devcontainer.py``
interprets it and splits it by trust (section 14). This service applies what is left,
at the points of the lifecycle where the reference applies it:

- build (``image``): the trusted file's ``image`` (local, or pulled) or ``build``
  (its Dockerfile's bytes as hashed for trust, its context, args and target) becomes
  the base of the configured template; cai's template and system layers go on top, as
  ``containai:<template>-devcontainer-<hash>``, the hash covering the base image's id;
- create (``container_env``, ``prepare``): ``containerEnv`` into the container's
  environment; ``remoteEnv`` into ``/etc/containai/remote-env``, which the entrypoint
  turns into sshd's ``SetEnv`` (every SSH session gets it);
- start (``started``): ``postCreateCommand`` once per container (a root-owned marker
  in the container's file system), then ``postStartCommand``; both as the agent's uid
  (the engine's exec as that user, never root), output appended to
  ``~/.containai/logs/devcontainer.log`` in the container; a failure is ``Failed``
  (exit 1) with the exit code and the last lines, and the container is kept;
- ``forward_ports``: ``forwardPorts`` for ``cai forward``'s restore.

Nothing of the file runs on the host: commands go into the container as argv, env
values as the container's environment (``ContainerSpec.env``) or lines of a file sshd
reads, checked first.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from containai.domain import devcontainer as D
from containai.domain import devcontainer_run as R
from containai.domain import labels as L
from containai.domain.errors import Failed
from containai.services.container_keys import file_tar
from containai.services.images import IMAGE_REPO, Images
from containai.services.ports import Engine
from containai.services.run_request import ImageRef

BASE_LABEL = L.DEVCONTAINER_BASE
DIGEST_LABEL = L.DEVCONTAINER

Warn = Callable[[str], None]


class DevcontainerSource(Protocol):
    def load(self, workspace: str) -> D.Loaded | None: ...

    def path(self, workspace: str) -> Path | None: ...

    def snapshot_context(self, workspace: str, context: str, dest: Path) -> Path: ...


def forward_ports(source: DevcontainerSource, workspace: str, *, enabled: bool = True) -> list[int]:
    """The container ports of the workspace's devcontainer ``forwardPorts`` (they apply
    without trust, SPEC 14/17), for ``cai forward`` to restore; ``[]`` when it has none
    or ``devcontainer = false``."""
    if not enabled:
        return []
    loaded = source.load(workspace)
    return [] if loaded is None else list(loaded.spec.forward_ports)


class _OnBase(Images):
    """The configured template's build with a devcontainer's image as its base: the
    base fixed (never swapped for another when absent), its id in the hash, and tags of
    its own (``containai:<template>-devcontainer-<hash>``, alias
    ``containai:<template>-devcontainer``) so workspaces without a devcontainer keep
    ``containai:<template>``."""

    def __init__(self, images: Images, base: str, base_id: str) -> None:
        self.__dict__.update(images.__dict__)
        self._devcontainer_base = base
        self._devcontainer_base_id = base_id
        self.base_image = base
        self._hashes: dict[tuple[str, str], str] = {}

    def resolve_base(self, *, offline: bool = False, base: str | None = None) -> str:
        return self._devcontainer_base if base is None else super().resolve_base(base=base)

    def current_hash(self, template: str, base_id: str | None = None) -> str:
        key = (template, base_id or self._devcontainer_base_id)
        if key not in self._hashes:
            self._hashes[key] = super().current_hash(template, key[1])
        return self._hashes[key]

    def tag(self, template: str) -> str:
        return f"{IMAGE_REPO}:{template}-devcontainer"

    def hashed_tag(self, template: str, template_hash: str) -> str:
        return f"{IMAGE_REPO}:{template}-devcontainer-{template_hash}"


class Devcontainers:
    """The hooks ``Lifecycle`` calls; each loads the workspace's file at most once."""

    def __init__(
        self,
        engine: Engine,
        source: DevcontainerSource,
        trusted: Callable[[], Mapping[str, str]],
        *,
        enabled: bool = True,
        images: Images | None = None,
        warn: Warn = lambda _m: None,
        progress: Warn = lambda _m: None,
        builder: Engine | None = None,
        ship: Callable[[ImageRef], None] = lambda _ref: None,
        scratch: Path | None = None,
    ) -> None:
        self.engine = engine
        # Where a build's context snapshot goes: cai's state folder, usually on the
        # workspace's file system, so the snapshot hard-links rather than copies.
        self.scratch = scratch
        # On a remote engine (SPEC 16) images are built on this machine's (``builder``,
        # which ``images`` use too) and shipped there; containers are ``engine``'s.
        self.builder = builder or engine
        self.ship = ship
        self.source = source
        self.trusted = trusted
        self.enabled = enabled
        self.images = images
        self.warn = warn
        self.progress = progress
        self._loaded: dict[str, tuple[D.Loaded | None, D.Devcontainer | None]] = {}

    # ------------------------------------------------------------------ the file
    def _load(self, workspace: str) -> tuple[D.Loaded | None, D.Devcontainer | None]:
        if workspace not in self._loaded:
            loaded = self.source.load(workspace) if self.enabled else None
            spec = None
            if loaded is not None:
                trusted = D.is_trusted(loaded, self.trusted())
                spec = D.applicable(loaded.spec, trusted=trusted)
                _, env_warnings = R.render_remote_env(spec.source, spec.remote_env)
                for message in [*spec.warnings, *env_warnings]:
                    self.warn(message)
            self._loaded[workspace] = (loaded, spec)
        return self._loaded[workspace]

    def spec(self, workspace: str) -> D.Devcontainer | None:
        """What applies of the workspace's devcontainer.json (warnings said once)."""
        return self._load(workspace)[1]

    # ------------------------------------------------------------------- build
    def image(self, workspace: str, template: str, default: Callable[[], ImageRef]) -> ImageRef:
        """The image of a new container: on the devcontainer's image or build when the
        file is trusted and has one, else ``default()`` (the configured template's)."""
        loaded, spec = self._load(workspace)
        if loaded is None or spec is None or self.images is None:
            return default()
        if spec.build is not None:
            base = self._build_base(workspace, loaded, spec.build)
        elif spec.image is not None:
            base = self._local_image(spec.source, spec.image)
        else:
            return default()
        info = self.builder.image(base)
        if info is None:  # pragma: no cover - just built or found
            raise Failed(f"image '{base}' disappeared from the engine; run the command again")
        ref = _OnBase(self.images, base, info.id).ensure(template)
        self.ship(ref)
        return ref

    def _local_image(self, source: str, ref: str) -> str:
        if self.builder.image(ref) is not None:
            return ref
        self.progress(f"pulling {ref} (the image of {source})")
        if self.builder.pull(ref):
            return ref
        raise Failed(
            f"{source}: image '{ref}' is not on the engine and could not be pulled (no "
            f"registry answers); load it first (`docker load`, or `docker pull {ref}` where a "
            f'registry is reachable), or change "image" {D.OFF}'
        )

    def _build_base(self, workspace: str, loaded: D.Loaded, build: D.Build) -> str:
        """The devcontainer's own Dockerfile built (from the bytes hashed for trust),
        tagged per workspace; the engine's layer cache makes an unchanged one cheap."""
        tag = f"{IMAGE_REPO}:devcontainer-{hashlib.sha256(workspace.encode()).hexdigest()[:16]}"
        if self.scratch is not None:
            self.scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="cai-devcontainer-", dir=self.scratch) as tmp:
            dockerfile = Path(tmp) / "Dockerfile"
            dockerfile.write_bytes(loaded.dockerfile or b"")
            # a copy taken without following links: never a path into the workspace
            context = self.source.snapshot_context(workspace, build.context, Path(tmp) / "ctx")
            self.progress(f"building the Dockerfile of {loaded.path} -> {tag}")
            self.builder.build(
                context,
                tag=tag,
                build_args=build.args,
                dockerfile=dockerfile,
                target=build.target,
            )
        return tag

    # ------------------------------------------------------------------ create
    def container_env(self, workspace: str) -> dict[str, str]:
        spec = self.spec(workspace)
        return {} if spec is None else dict(spec.container_env)

    def labels(self, workspace: str, image: ImageRef) -> dict[str, str]:
        loaded, spec = self._load(workspace)
        if loaded is None or spec is None:
            return {}
        labels = {DIGEST_LABEL: loaded.digest}
        if "-devcontainer-" in image.tag:
            labels[BASE_LABEL] = spec.image or "build"
        return labels

    def prepare(self, name: str, workspace: str) -> None:
        """Before the first start: ``remoteEnv`` where the entrypoint reads it."""
        spec = self.spec(workspace)
        if spec is None or not spec.remote_env:
            return
        info = self.engine.find(name)
        env = {} if info is None else dict(info.env)
        remote = D.in_container(spec, env).remote_env
        data, _warnings = R.render_remote_env(spec.source, remote)  # warned at load
        self.engine.copy_in(name, file_tar(R.REMOTE_ENV_PATH, data), "/")

    # ------------------------------------------------------------------- start
    def drift(self, name: str, workspace: str, labels: Mapping[str, str]) -> None:
        """A container made from another devcontainer.json than the current one."""
        recorded = labels.get(DIGEST_LABEL)
        if recorded is None:
            return
        loaded, _spec = self._load(workspace)
        if loaded is not None and loaded.digest != recorded:
            self.warn(
                f"{loaded.path} changed since container '{name}' was created; run "
                "`cai --fresh` to apply it (the data volume is kept)"
            )

    def started(self, name: str, workspace: str) -> None:
        """After a start: postCreateCommand once per container, then postStartCommand.
        ``Failed`` (exit 1) names the failed stage; the container is left running."""
        spec = self.spec(workspace)
        if spec is None:
            return
        info = self.engine.find(name)
        if info is None:
            raise Failed(f"container '{name}' disappeared while running its lifecycle commands")
        self.drift(name, workspace, info.labels)
        if not (spec.post_create or spec.post_start):
            return
        env = dict(info.env)
        uid, gid = env.get("CAI_UID", ""), env.get("CAI_GID", "")
        if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0:
            raise Failed(
                f"container '{name}' has no unprivileged agent uid (CAI_UID={uid!r}); cai "
                "runs devcontainer lifecycle commands only as the agent; recreate it with "
                "`cai --fresh`"
            )
        spec = D.in_container(spec, env)
        remote = R.applied_remote_env(spec.remote_env)
        user = f"{uid}:{gid}"
        if spec.post_create and self._first_start(name):
            self._run(name, user, spec.source, "postCreateCommand", spec.post_create, remote)
        if spec.post_start:
            self._run(name, user, spec.source, "postStartCommand", spec.post_start, remote)

    def _first_start(self, name: str) -> bool:
        """Makes the marker (as root, where the agent cannot remove it); ``True`` when
        this call made it."""
        parent = R.POST_CREATE_MARKER.rsplit("/", 1)[0]
        proc = self.engine.exec(
            name,
            ["sh", "-c", f"mkdir -p {parent} && mkdir {R.POST_CREATE_MARKER} 2>/dev/null"],
            user="0",
            check=False,
            timeout=60,
        )
        return proc.returncode == 0

    def _run(
        self,
        name: str,
        user: str,
        source: str,
        stage: str,
        commands: list[list[str]],
        remote: Mapping[str, str | None],
    ) -> None:
        """The commands of one stage, in parallel (the object form), each as ``user``."""
        from concurrent.futures import ThreadPoolExecutor

        self.progress(f"running {stage} in '{name}' (output: {R.LOG_PATH}, `cai logs`)")
        started = time.monotonic()

        def one(argv: list[str]) -> tuple[list[str], int, str]:
            proc = self.engine.exec(
                name, R.lifecycle_argv(stage, argv, remote), user=user, check=False
            )
            return argv, proc.returncode, (proc.stdout + proc.stderr).rstrip()

        with ThreadPoolExecutor(max_workers=max(1, min(8, len(commands)))) as pool:
            results = list(pool.map(one, commands))
        failed = [(argv, rc, tail) for argv, rc, tail in results if rc != 0]
        if not failed:
            self.progress(f"{stage} done in {time.monotonic() - started:.0f} s")
            return
        argv, rc, tail = failed[0]
        shown = " ".join(argv)[:120]
        raise Failed(
            f"{stage} of {source} failed in container '{name}' (exit {rc}: "
            f"{shown}); the container is kept and running; its output is in {R.LOG_PATH} "
            f"(`cai logs`); last lines:\n{tail}"
        )
