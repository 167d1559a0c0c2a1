"""A workspace's devcontainer.json, interpreted (SPEC section 18). Pure: no I/O.

``adapters/devcontainer_file.py`` finds, reads and parses the file (JSON with
comments, through ``json5``); ``interpret`` turns the parsed object into a
``Devcontainer``: the base image or build (paths resolved against the file's folder
and kept inside the workspace), ``containerEnv``, ``remoteEnv``, the lifecycle
commands as argv lists, the forwarded ports, and one warning line per thing that is
not applied. ``applicable`` is the trust split of section 14: everything but the
image/build applies on its own; the image/build only once ``cai trust`` recorded
the file's digest. Bad input is a ``ConfigError`` naming the file and the fix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from containai.domain.devcontainer_keys import not_applied, reserved_env, reserved_warning
from containai.domain.devcontainer_vars import Substitution, container_substitute
from containai.domain.errors import ConfigError, summarize
from containai.lazy import sha256_hex

SHELL = "/bin/sh"  # a string command runs as [SHELL, "-c", command], as the reference says
OFF = "or turn devcontainer.json support off with `cai config set devcontainer false`"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}")
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PORT_HOST = re.compile(r"([a-z0-9.-]+):(\d{1,5})")  # the schema's "host:port" (and 127.0.0.1)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:/@-]{1,60}")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})


class Build(NamedTuple):
    """``build.dockerfile``/``context``/``args``/``target`` (or the old top-level
    ``dockerFile``/``context``): absolute paths, both inside the workspace."""

    dockerfile: str
    context: str
    args: dict[str, str]
    target: str | None


class Devcontainer(NamedTuple):
    source: str  # the file's absolute path
    image: str | None  # the template base: ``image``, unless ``build`` is set
    build: Build | None
    container_env: dict[str, str]  # at create (docker create --env)
    remote_env: dict[str, str | None]  # per session and lifecycle command; None: unset
    post_create: list[list[str]]  # argv lists, run in parallel, once per container
    post_start: list[list[str]]  # argv lists, run in parallel, at every start
    forward_ports: list[int]  # container ports for `cai forward`
    warnings: list[str]  # one line each, for `cai: warning:`


class Loaded(NamedTuple):
    """One devcontainer.json as read: what ``cai trust`` records and checks."""

    path: str  # absolute; the key of its ``[trusted]`` entry
    digest: str  # ``trust_digest`` of the bytes that were parsed (and the Dockerfile's)
    spec: Devcontainer
    dockerfile: bytes | None  # build.dockerfile's bytes as read: build from these


def _error(source: str, where: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {where} {problem}; fix the file {OFF}")


def _shown(value: Any) -> str:
    return summarize(repr(value), 60)


def _key(name: str) -> str:
    """A key of the file as a message shows it: as is when plain, else quoted."""
    return name if _PLAIN_KEY.fullmatch(name) else _shown(name)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object"})
    return names.get(type(value), type(value).__name__)


def _not_string(name: str, value: Any) -> str:
    problem = f"must be a string, not {_kind(value)} ({_shown(value)})"
    if isinstance(value, bool):
        return f'{problem}; quote it: "{name}": "{str(value).lower()}"'
    if isinstance(value, (int, float)):
        return f'{problem}; quote it: "{name}": "{value}"'
    return problem


def _text(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise _error(source, where, f"must be a string, not {_kind(value)} ({_shown(value)})")
    if "\0" in value:
        raise _error(source, where, "contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800": no program could be given it
            raise _error(source, where, "contains a lone surrogate (\\ud800-\\udfff)") from None
    return value


def inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both absolute and normalised)."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


# ---------------------------------------------------------------- lifecycle commands
def normalize_command(value: Any, *, source: str, where: str) -> list[list[str]]:
    """A lifecycle command in any of its three forms -> argv lists to run in parallel:
    a string runs in ``/bin/sh -c``, an array is the argv itself (no shell), an object
    names several of those (the reference runs them in parallel; the stage fails if
    one fails). Empty strings, arrays and objects run nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        return [[SHELL, "-c", _text(value, source, where)]] if value.strip() else []
    if isinstance(value, list):
        argv = [_text(item, source, f"{where}[{i}]") for i, item in enumerate(value)]
        if argv and not argv[0]:
            raise _error(source, where, "starts with an empty program name")
        return [argv] if argv else []
    if isinstance(value, Mapping):
        out: list[list[str]] = []
        for name, item in value.items():
            if not isinstance(item, (str, list)):
                raise _error(
                    source,
                    f"{where}.{_key(name)}",
                    f"must be a string or an array of strings, not {_kind(item)}",
                )
            out += normalize_command(item, source=source, where=f"{where}.{_key(name)}")
        return out
    raise _error(
        source, where, f"must be a string, an array or an object of commands, not {_kind(value)}"
    )


# ---------------------------------------------------------------- forwarded ports
def normalize_ports(value: Any, *, source: str) -> tuple[list[int], list[str]]:
    """``forwardPorts`` -> (container ports, warnings). Items: a number 1-65535, the
    same as a string, or ``"host:port"``; a host other than localhost names another
    machine (a Docker Compose service), which cai cannot forward: warned, not applied."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise _error(source, "forwardPorts", f"must be an array of ports, not {_kind(value)}")
    ports: list[int] = []
    warnings: list[str] = []
    for i, item in enumerate(value):
        where = f"forwardPorts[{i}]"
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise _error(source, where, f"must be a port number or 'host:port', not {_kind(item)}")
        host: str | None = None
        if isinstance(item, int):
            port = item
        elif item.isascii() and item.isdigit() and len(item) <= 5:
            port = int(item)
        else:
            match = _PORT_HOST.fullmatch(item)
            if match is None:
                raise _error(source, where, f"{_shown(item)} is not a port number or 'host:port'")
            port, host = int(match.group(2)), match.group(1)
        if not 1 <= port <= 65535:
            raise _error(source, where, f"{_shown(item)} is not a port between 1 and 65535")
        if host is not None and host not in _LOCAL_HOSTS:
            warnings.append(
                f"{source}: forwardPorts {_shown(item)} not applied: it names another host; "
                "cai forwards ports of the workspace's own container"
            )
        elif port not in ports:
            ports.append(port)
    return ports, warnings


# ---------------------------------------------------------------- environment
def _env(
    doc: Mapping[str, Any], key: str, sub: Substitution, *, remote: bool
) -> dict[str, str | None]:
    raw = doc.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _error(sub.source, key, f"must be an object of NAME: value, not {_kind(raw)}")
    out: dict[str, str | None] = {}
    for name, value in raw.items():
        where = f"{key}.{_key(name)}"
        if not _ENV_NAME.fullmatch(name):
            raise _error(
                sub.source, where, "is not a variable name (letters, digits, _; no digit first)"
            )
        if value is None and remote:
            out[name] = None  # the reference: null unsets it
            continue
        if not isinstance(value, str):
            raise _error(sub.source, where, _not_string(name, value))
        out[name] = sub(_text(value, sub.source, where), where, container_env=remote)
    return out


# ---------------------------------------------------------------- image and build
def _image(doc: Mapping[str, Any], sub: Substitution) -> str | None:
    if doc.get("image") is None:
        return None
    image = sub(_text(doc["image"], sub.source, "image"), "image")
    if not _IMAGE.fullmatch(image):
        raise _error(
            sub.source,
            "image",
            f"{_shown(image)} is not an image reference (e.g. "
            "mcr.microsoft.com/devcontainers/python:3.12)",
        )
    return image


def _path(value: Any, sub: Substitution, where: str, workspace: str) -> str:
    raw = sub(_text(value, sub.source, where), where)
    if not raw.strip():
        raise _error(sub.source, where, "is empty")
    path = posixpath.normpath(posixpath.join(posixpath.dirname(sub.source), raw))
    if not inside(path, workspace):
        raise ConfigError(
            f"{sub.source}: {where} {_shown(raw)} is outside the workspace ({path}); cai "
            f"builds only from files inside {workspace}; fix the path {OFF}"
        )
    return path


def _build(doc: Mapping[str, Any], sub: Substitution, workspace: str) -> Build | None:
    raw = doc.get("build")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _error(sub.source, "build", f"must be an object, not {_kind(raw)}")
    if raw.get("dockerfile") is not None:
        dockerfile = _path(raw["dockerfile"], sub, "build.dockerfile", workspace)
        ctx_value, ctx_where = raw.get("context"), "build.context"
    elif doc.get("dockerFile") is not None:  # the older top-level spelling
        dockerfile = _path(doc["dockerFile"], sub, "dockerFile", workspace)
        ctx_value, ctx_where = doc.get("context"), "context"
    else:
        return None
    if dockerfile == workspace.rstrip("/"):
        raise _error(sub.source, "build.dockerfile", "names the workspace folder, not a file")
    context = _path("." if ctx_value is None else ctx_value, sub, ctx_where, workspace)
    args_raw = raw.get("args")
    if args_raw is None:
        args_raw = {}
    if not isinstance(args_raw, Mapping):
        raise _error(sub.source, "build.args", f"must be an object, not {_kind(args_raw)}")
    args: dict[str, str] = {}
    for name, value in args_raw.items():
        where = f"build.args.{_key(name)}"
        if not _ARG_NAME.fullmatch(name):
            raise _error(sub.source, where, "is not a build argument name")
        if not isinstance(value, str):
            raise _error(sub.source, where, _not_string(name, value))
        args[name] = sub(_text(value, sub.source, where), where)
    target = raw.get("target")
    if target is not None:
        target = sub(_text(target, sub.source, "build.target"), "build.target")
        if not _TARGET.fullmatch(target):
            raise _error(sub.source, "build.target", f"{_shown(target)} is not a stage name")
    return Build(dockerfile, context, args, target)


# ---------------------------------------------------------------- the whole file
def interpret(doc: Any, *, source: str, workspace: str) -> Devcontainer:
    """The parsed devcontainer.json at ``source`` (absolute) of ``workspace`` (absolute,
    normalised) -> what cai honours, with warnings for what it does not."""
    if not isinstance(doc, Mapping):
        raise ConfigError(
            f"{source}: a devcontainer.json holds one object {{ ... }}, not {_kind(doc)}; "
            f"fix the file {OFF}"
        )
    workspace = posixpath.normpath(workspace)
    sub = Substitution(source=source, workspace=workspace)
    warnings = not_applied(doc, source)
    build = _build(doc, sub, workspace)
    image = _image(doc, sub)
    if build is not None and image is not None:
        warnings.append(f"{source}: image not applied: build.dockerfile is set and wins")
        image = None
    container_env: dict[str, str] = {}
    for name, value in _env(doc, "containerEnv", sub, remote=False).items():
        if reserved_env(name, value):
            warnings.append(reserved_warning(source, name))
        elif value is not None:
            container_env[name] = value
    remote_env = _env(doc, "remoteEnv", sub, remote=True)
    commands = {}
    for key in ("postCreateCommand", "postStartCommand"):
        argvs = normalize_command(doc.get(key), source=source, where=key)
        commands[key] = [[sub(arg, key, container_env=True) for arg in argv] for argv in argvs]
    ports, port_warnings = normalize_ports(doc.get("forwardPorts"), source=source)
    return Devcontainer(
        source=source,
        image=image,
        build=build,
        container_env=container_env,
        remote_env=remote_env,
        post_create=commands["postCreateCommand"],
        post_start=commands["postStartCommand"],
        forward_ports=ports,
        warnings=warnings + port_warnings + sub.warnings,
    )


# ---------------------------------------------------------------- trust (section 14)
def trust_digest(data: bytes, dockerfile: bytes | None = None) -> str:
    """What ``cai trust`` records for a devcontainer.json: the SHA-256 of its bytes
    (``sha256sum devcontainer.json``) or, with a build, the SHA-256 of both files'
    SHA-256s, so an edited Dockerfile un-trusts the file as an edited JSON does."""
    if dockerfile is None:
        return sha256_hex(data)
    both = f"devcontainer.json {sha256_hex(data)}\nDockerfile {sha256_hex(dockerfile)}\n"
    return sha256_hex(both)


def is_trusted(loaded: Loaded, trusted: Mapping[str, str]) -> bool:
    """``trusted`` is the global config's ``[trusted]`` table (path -> digest)."""
    return trusted.get(loaded.path) == loaded.digest


def applicable(spec: Devcontainer, *, trusted: bool) -> Devcontainer:
    """What applies: env, lifecycle commands and ports always (they act inside the
    sandbox); the image/build only when trusted, since an engine builds under its
    default runtime. Untrusted, they are dropped with one warning saying why."""
    if trusted or (spec.image is None and spec.build is None):
        return spec
    what, runs = ("build", "build steps") if spec.build else ("image", "image")
    review = "the file and its Dockerfile" if spec.build else "the file"
    warning = (
        f"{spec.source}: {what} not applied: this devcontainer.json is not trusted and its "
        f"{runs} would run under the engine's default runtime; the configured template is "
        f"used. Review {review}, then run `cai trust`"
    )
    return spec._replace(image=None, build=None, warnings=[*spec.warnings, warning])


def in_container(spec: Devcontainer, container_env: Mapping[str, str]) -> Devcontainer:
    """Phase two of the variables: ``${containerEnv:NAME}`` in ``remoteEnv`` and the
    lifecycle commands, from the running container's environment (``Config.Env``;
    ``devcontainer_vars.env_from_list`` turns the engine's list into a mapping)."""

    def argvs(commands: list[list[str]]) -> list[list[str]]:
        return [[container_substitute(a, container_env) for a in argv] for argv in commands]

    remote = {
        k: None if v is None else container_substitute(v, container_env)
        for k, v in spec.remote_env.items()
    }
    return spec._replace(
        remote_env=remote, post_create=argvs(spec.post_create), post_start=argvs(spec.post_start)
    )
