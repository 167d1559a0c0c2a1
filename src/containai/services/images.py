"""Images from templates (SPEC section 8, DESIGN decision 6).

``containai:<template>-<hash>`` = the template's Dockerfile built ``FROM`` the base
image, then cai's system layer (agent user, sshd config, entrypoint) on top; the hash
covers every build input (``current_hash``), so workspaces with different agents or
packages each get their own image and never rebuild the one another's container was
made from. ``containai:<template>`` is the alias of the latest build.
The base is ``image.base`` when present or pullable; otherwise (air-gapped)
a Debian root file system bootstrapped from the machine's apt mirror and
imported as ``containai-base:bookworm``. The host CA bundle goes into the
build context as ``ca.crt`` (a CA certificate is public, not a secret).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from containai.domain import image_tags
from containai.domain import labels as L
from containai.domain.engine_objects import ImageInfo
from containai.domain.errors import CaiError, Failed, NotFound
from containai.domain.validation import validate_template_name
from containai.services.image_memo import HashMemo
from containai.services.ports import Engine
from containai.services.run_request import ImageProvider, ImageRef
from containai.services.tree_hash import files_digest, tree_hash, with_extra

IMAGE_REPO = "containai"
TEMPLATE_REPO = "containai-template"
OFFLINE_BASE = "containai-base:bookworm"
DEFAULT_BASE = "debian:bookworm-slim"
SYSTEM_DIR = "system"
GATEWAY_DIR = "gateway"
GATEWAY_REPO = "containai-gateway"
GATEWAY_HASH_LABEL = "containai.gateway-hash"
NOT_TEMPLATES = frozenset({SYSTEM_DIR, GATEWAY_DIR})
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Bumped when how cai builds changes in a way the input files do not show (e.g. labels).
BUILD_RECIPE = "3"

Bootstrap = Callable[[str], None]
"""Make the base image ``tag`` from the apt mirror (debootstrap) on the engine."""

OnLine = Callable[[str, "tuple[int, int] | None"], None]
"""A line of a build's output, with ``(step, of)`` when it starts a Dockerfile step."""
BuildDisplay = Callable[[str], AbstractContextManager[OnLine | None]]
"""``display(title)``: a context for one image build (its progress is shown while it
lasts); yields what takes the build's lines, or ``None``."""


def phase_only(progress: Callable[[str], None]) -> BuildDisplay:
    """A build display that only says which build starts (``progress(title)``)."""

    @contextmanager
    def display(title: str) -> Iterator[OnLine | None]:
        progress(title)
        yield None

    return display


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    builtin: bool


def builtin_templates_root() -> Path:
    return Path(str(resources.files("containai") / "templates"))


class Images(ImageProvider):
    def __init__(
        self,
        engine: Engine,
        *,
        user_templates: Path,
        base_image: str = DEFAULT_BASE,
        ca_bundle: str | None = None,
        agents: Sequence[str] = ("claude",),
        agent_packages: Callable[[Sequence[str]], list[str]] = lambda names: [],
        agent_binaries: Callable[[Sequence[str]], list[str]] = lambda names: [],
        npm_registry: Callable[[], str | None] = lambda: None,
        pypi_agents: Callable[[Sequence[str]], list[str]] = lambda names: [],
        pypi_index: Callable[[], str | None] = lambda: None,
        home_links: Callable[[], str] | None = None,
        packages: Sequence[str] = (),
        progress: Callable[[str], None] = lambda _m: None,
        build_display: BuildDisplay | None = None,
        bootstrap: Bootstrap | None = None,
        bootstrap_possible: Callable[[], bool] | None = None,
        lock: Callable[[str], AbstractContextManager[object]] | None = None,
        ca_dir: Path | None = None,
        memo_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.memo = HashMemo(memo_dir) if memo_dir is not None else None  # (``ensure``)
        self._parts: dict[str, tuple[hashlib._Hash, list[str]]] = {}  # ``_hash_parts``
        self.user_templates = user_templates
        self.base_image = base_image or DEFAULT_BASE
        self.ca_bundle = ca_bundle
        self.agents = list(agents)
        self._agent_packages = agent_packages
        self._agent_binaries = agent_binaries
        self._npm_registry = npm_registry
        self._pypi_agents = pypi_agents
        self._pypi_index = pypi_index
        self._home_links = home_links or _manifest_home_links
        self.packages = list(packages)
        self.progress = progress
        self._display = build_display or phase_only(progress)
        self._bootstrap = bootstrap
        self._bootstrap_possible = bootstrap_possible
        self._lock = lock or (lambda _name: nullcontext())
        self.ca_dir = ca_dir
        self._ca: tuple[bytes | None] | None = None

    # -------------------------------------------------------------- templates
    def templates(self) -> list[Template]:
        found: dict[str, Template] = {}
        root = builtin_templates_root()
        for path in sorted(root.iterdir()):
            if path.is_dir() and path.name not in NOT_TEMPLATES and (path / "Dockerfile").is_file():
                found[path.name] = Template(path.name, path, True)
        if self.user_templates.is_dir():
            for path in sorted(self.user_templates.iterdir()):
                if (path / "Dockerfile").is_file():
                    try:
                        validate_template_name(path.name)
                    except Exception:
                        continue
                    found[path.name] = Template(path.name, path, False)
        return sorted(found.values(), key=lambda t: t.name)

    def template(self, name: str) -> Template:
        validate_template_name(name)
        for t in self.templates():
            if t.name == name:
                return t
        have = ", ".join(t.name for t in self.templates())
        raise NotFound(
            f"template '{name}' does not exist (have: {have}); create "
            f"{self.user_templates / name}/Dockerfile or see `cai template list`"
        )

    def ca_bundle_path(self) -> Path | None:
        """The CA bundle as builds and containers get it: only the certificates of the
        configured (or system) bundle, written to a file of cai's own (SPEC section 14:
        whatever path a setting names, nothing but certificates leaves the host file)."""
        clean = self.ca_bundle_bytes()
        if clean is None:
            return None
        ca_dir = self.ca_dir or Path(tempfile.gettempdir()) / "containai-ca"
        dest = ca_dir / f"ca-{hashlib.sha256(clean).hexdigest()[:20]}.crt"
        if not dest.is_file() or dest.read_bytes() != clean:
            ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(clean)
            tmp.chmod(0o644)
            os.replace(tmp, dest)
        return dest

    def ca_bundle_bytes(self) -> bytes | None:
        """The certificates of the configured (or system) bundle, checked; nothing written."""
        if self._ca is None:
            self._ca = (self._clean_ca(),)
        return self._ca[0]

    def _clean_ca(self) -> bytes | None:
        from containai.domain.certs import certificates

        if self.ca_bundle:
            source = Path(self.ca_bundle).expanduser()
            if not source.is_file():
                raise NotFound(
                    f"CA bundle {source} (config image.ca_bundle) does not exist or is not a "
                    "file; fix it with `cai config set image.ca_bundle PATH` or unset it"
                )
        elif SYSTEM_CA.is_file():
            source = SYSTEM_CA
        else:
            return None
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise Failed(f"cannot read CA bundle {source}: {exc.strerror}") from None
        return certificates(data, str(source))

    def current_hash(self, template: str, base_id: str | None = None) -> str:
        """The hash of every input of ``template``'s build: its files and the system
        layer's, the base image (name and id: a new base is a new build), the CA bundle,
        the agents, their npm/PyPI specs and npm commands, ``image.packages``, the home
        links.
        ``base_id``: the base the build uses (default: the one present here, no pull)."""
        if base_id is None:
            base_id, _ = self._local_base_id(meanwhile=lambda: self._hash_parts(template))
        files, rest = self._hash_parts(template)
        return with_extra(
            files, [f"recipe={BUILD_RECIPE}", f"base={self.base_image}@{base_id}", *rest]
        )

    def _hash_parts(self, template: str) -> tuple[hashlib._Hash, list[str]]:
        """What ``current_hash`` hashes besides the recipe and the base: the digest of the
        files, then the other inputs in order. Once per template and instance (the
        settings do not change under it); computed while the base images are asked for."""
        if template not in self._parts:
            t = self.template(template)
            ca = self.ca_bundle_bytes()
            ca_digest = hashlib.sha256(ca).hexdigest() if ca else "none"
            self._parts[template] = (
                files_digest([t.path, builtin_templates_root() / SYSTEM_DIR]),
                [
                    f"ca={ca_digest}",
                    f"agents={','.join(self.agents)}",
                    f"npm={' '.join(self._agent_packages(self.agents))}",
                    f"npm-binaries={' '.join(self._agent_binaries(self.agents))}",
                    f"pypi={' '.join(self._pypi_agents(self.agents))}",
                    f"packages={' '.join(self.packages)}",
                    f"home-links={hashlib.sha256(self._home_links().encode()).hexdigest()}",
                ],
            )
        return self._parts[template]

    def _local_base_id(
        self, also: str | None = None, meanwhile: Callable[[], object] | None = None
    ) -> tuple[str, ImageInfo | None]:
        """The id of the base a build would use now without pulling (``image.base``, else
        the offline base, as ``resolve_base`` falls back); ``missing`` when neither is here.
        Both are asked for at once (one round trip on every cold create and restart), and
        the image ``also`` with them (its info, or ``None``); ``meanwhile`` runs here
        while they are."""
        refs = list(dict.fromkeys((self.base_image, OFFLINE_BASE)))
        asked = [*refs, *([also] if also is not None else [])]
        with ThreadPoolExecutor(max_workers=len(asked), thread_name_prefix="cai-base") as pool:
            futures = [pool.submit(self.engine.image, ref) for ref in asked]
            if meanwhile is not None:
                meanwhile()
            found = [future.result() for future in futures]
        extra = found[len(refs)] if also is not None else None
        for info in found[: len(refs)]:
            if info is not None:
                return info.id, extra
        return "missing", extra

    # ------------------------------------------------------------------- base
    def resolve_base(self, *, offline: bool = False, base: str | None = None) -> str:
        """The base image to build on (``base``, default ``image.base``), bootstrapping one
        offline when it must."""
        wanted = base or self.base_image
        if not offline:
            if self.engine.image(wanted) is not None:
                return wanted
            if wanted == DEFAULT_BASE and self.engine.image(OFFLINE_BASE):
                return OFFLINE_BASE
            self.progress(f"pulling base image {wanted}")
            if self.engine.pull(wanted):
                return wanted
        if self.engine.image(OFFLINE_BASE) is not None:
            return OFFLINE_BASE
        if (
            self._bootstrap is None
            or self._bootstrap_possible is None
            or not self._bootstrap_possible()
        ):
            raise Failed(
                f"base image '{self.base_image}' is neither present nor pullable, and the "
                "offline bootstrap needs root and debootstrap (apt-get install debootstrap); "
                "load an image with `docker load` or set `cai config set image.base IMAGE`"
            )
        self.progress(f"bootstrapping {OFFLINE_BASE} from the apt mirror (debootstrap)")
        self._bootstrap(OFFLINE_BASE)
        return OFFLINE_BASE

    # --------------------------------------------------------------- gateway
    def gateway_hash(self) -> str:
        ca = self.ca_bundle_bytes()
        ca_digest = hashlib.sha256(ca).hexdigest() if ca else "none"
        return tree_hash(
            [builtin_templates_root() / GATEWAY_DIR], [f"recipe={BUILD_RECIPE}", f"ca={ca_digest}"]
        )

    def gateway_tag(self) -> str:
        """``containai-gateway:<hash>``: the gateway build of today's inputs."""
        return f"{GATEWAY_REPO}:{self.gateway_hash()}"

    def ensure_gateway(self) -> str:
        """The egress gateway's image ``containai-gateway:<hash>`` (``templates/gateway``:
        Debian's squid and socat), built when missing."""
        tag = self.gateway_tag()
        if self.engine.image(tag) is not None:
            return tag
        with self._lock("image-gateway"):
            if self.engine.image(tag) is not None:
                return tag
            return self.build_gateway()

    def build_gateway(self, *, offline: bool = False) -> str:
        wanted = self.gateway_hash()
        tag = f"{GATEWAY_REPO}:{wanted}"
        # cai's own image, always Debian, whatever base the user's templates use
        base = self.resolve_base(offline=offline, base=DEFAULT_BASE)
        with tempfile.TemporaryDirectory(prefix="cai-build-") as tmp:
            ctx = _context(
                Path(tmp) / "gateway", builtin_templates_root() / GATEWAY_DIR, self.ca_bundle_path()
            )
            with self._display(f"building the egress gateway image {tag} on {base}") as on_line:
                self.engine.build(
                    ctx,
                    tag=tag,
                    build_args={"BASE_IMAGE": base},
                    labels={GATEWAY_HASH_LABEL: wanted},
                    on_line=on_line,
                )
        return tag

    # ------------------------------------------------------------------ build
    def tag(self, template: str) -> str:
        """``containai:<template>``: the alias of the latest build."""
        return image_tags.alias_tag(template)

    def hashed_tag(self, template: str, template_hash: str) -> str:
        """``containai:<template>-<hash>``: the build a container is created from."""
        return image_tags.hashed_tag(template, template_hash)

    def planned_tag(self, template: str) -> str | None:
        """The image a container of ``template`` would be created from now (the plan of
        ``--dry-run``); ``None`` when that cannot be known (no engine, no such template)."""
        try:
            return self.hashed_tag(template, self.current_hash(template))
        except CaiError:
            return None

    def ensure(self, template: str) -> ImageRef:
        """``containai:<template>-<hash>``, built when missing (its inputs changed, or
        never built with these).

        The hash needs the base image's id, and the image of that hash is asked for after
        it: two round trips one after the other. The hash this machine used last time
        (``services/image_memo.py``) is a guess asked for beside the base, one round trip
        when nothing changed; a wrong or missing guess only costs the second trip. The
        engine's answer decides either way."""
        alias = self.tag(template)
        guess = self.memo.recall(alias) if self.memo is not None else None
        base_id, guessed = self._local_base_id(
            self.hashed_tag(template, guess) if guess is not None else None,
            meanwhile=lambda: self._hash_parts(template),
        )
        wanted = self.current_hash(template, base_id)
        if guess == wanted and guessed is not None:
            current = guessed.labels.get(L.TEMPLATE_HASH) == wanted
        else:
            current = self._is_current(template, wanted)
        if not current:
            with self._lock(f"image-{template}"):  # one build at a time; others reuse it
                if not self._is_current(template, wanted):
                    wanted = self.build(template).template_hash
        if self.memo is not None and wanted != guess:
            self.memo.keep(alias, wanted)
        return ImageRef(self.hashed_tag(template, wanted), template, wanted)

    def _is_current(self, template: str, wanted: str) -> bool:
        info = self.engine.image(self.hashed_tag(template, wanted))
        return info is not None and info.labels.get(L.TEMPLATE_HASH) == wanted

    def build(self, template: str, *, offline: bool = False) -> ImageRef:
        """Build ``containai:<template>-<hash>`` (a cache hit when nothing changed) and
        point the alias ``containai:<template>`` at it. Images of other hashes, which
        containers may use, are left as they are."""
        t = self.template(template)
        base = self.resolve_base(offline=offline)
        base_info = self.engine.image(base)
        template_hash = self.current_hash(
            template, base_info.id if base_info is not None else "missing"
        )
        final = self.hashed_tag(template, template_hash)
        # Not containai.managed: containers inherit image labels, and one made from this
        # image by other tools (docker run, devcontainers) is not managed by cai.
        labels = {L.TEMPLATE: template, L.TEMPLATE_HASH: template_hash}
        ca = self.ca_bundle_path()
        with tempfile.TemporaryDirectory(prefix="cai-build-") as tmp:
            ctx = _context(Path(tmp) / "template", t.path, ca)
            intermediate = f"{TEMPLATE_REPO}:{template}-{template_hash}"
            with self._display(f"building template '{template}' on {base}") as on_line:
                self.engine.build(
                    ctx,
                    tag=intermediate,
                    build_args={
                        "BASE_IMAGE": base,
                        "AGENT_PACKAGES": " ".join(self._agent_packages(self.agents)),
                        "AGENT_BINARIES": " ".join(self._agent_binaries(self.agents)),
                        "NPM_REGISTRY": self._npm_registry() or "",
                        "PYPI_AGENTS": " ".join(self._pypi_agents(self.agents)),
                        "PYPI_INDEX": self._pypi_index() or "",
                    },
                    on_line=on_line,
                )
            sysctx = _context(Path(tmp) / "system", builtin_templates_root() / SYSTEM_DIR, ca)
            # made from the agent manifests (their one home), not a file of the layer
            (sysctx / "home-links").write_text(self._home_links())
            with self._display(f"adding cai's system layer -> {final}") as on_line:
                self.engine.build(
                    sysctx,
                    tag=final,
                    build_args={
                        "BASE_IMAGE": intermediate,
                        "EXTRA_PACKAGES": " ".join(self.packages),
                    },
                    labels=labels,
                    on_line=on_line,
                )
        self.engine.tag_image(final, self.tag(template))
        # The intermediate tag goes (its layers stay, as the final image's parents and the
        # build cache): only containai:<template>[-<hash>] names what cai built.
        with suppress(CaiError):
            self.engine.remove_image(intermediate)
        return ImageRef(final, template, template_hash)


def _manifest_home_links() -> str:
    from containai import agents

    return agents.home_links()


def _context(ctx: Path, source: Path, ca: Path | None) -> Path:
    """A build context: a copy of ``source`` plus ``ca.crt`` (empty when there is no CA
    bundle: the Dockerfiles ``COPY`` it unconditionally)."""
    shutil.copytree(source, ctx, symlinks=True)
    (ctx / "ca.crt").write_bytes(ca.read_bytes() if ca else b"")
    return ctx
