"""The settings cai knows: their types, defaults, validation, and precedence.

Precedence (SPEC section 6, issue 3): CLI > environment > workspace state >
repo-local ``.containai/config.toml`` > global config > default. Pure: the
layers are handed in as plain mappings already read from their files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from containai.domain.errors import ConfigError, UsageError
from containai.domain.isolation import CHOICES

DEFAULT_DATA_VOLUME = "containai-data"


def _as_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError("use true or false")


def _as_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("use a whole number") from None


def _as_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


class Key(NamedTuple):
    name: str
    kind: type  # str, int, bool or list
    default: Any
    help: str
    check: Callable[[Any], None] | None = None


def _check_port(value: Any) -> None:
    if not 1024 <= int(value) <= 65535:
        raise ValueError("use a port between 1024 and 65535")


def _check_choice(*choices: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError("use one of " + ", ".join(choices))

    return check


def _check_with(fn: Callable[[str], object]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        try:
            fn(str(value))
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return check


def _check_each(fn: Callable[[str], object]) -> Callable[[Any], None]:
    single = _check_with(fn)

    def check(value: Any) -> None:
        for item in value:
            single(item)

    return check


def _lazy_validation(name: str) -> Callable[[str], object]:
    def call(value: str) -> object:
        from containai.domain import validation

        result: object = getattr(validation, name)(value)
        return result

    return call


def _lazy_egress(name: str) -> Callable[[Any], object]:
    def call(value: Any) -> object:
        from containai.domain import egress

        result: object = getattr(egress, name)(value)
        return result

    return call


def _check_with_list(fn: Callable[[Any], object]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        try:
            fn(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return check


def _lazy_forward(value: str) -> object:
    from containai.domain.forwards import parse

    return parse(value)


def _lazy_age(value: str) -> object:
    from containai.domain.age import parse_age

    return parse_age(value)


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key(
            "data_volume",
            str,
            DEFAULT_DATA_VOLUME,
            "data volume for agent state",
            _check_with(_lazy_validation("validate_volume_name")),
        ),
        Key(
            "agent.default",
            str,
            "claude",
            "agent started by `cai run` with no AGENT",
            _check_with(_lazy_validation("validate_agent_name")),
        ),
        Key(
            "agents",
            list,
            ["claude"],
            "agents installed in the default template",
            _check_each(_lazy_validation("validate_agent_name")),
        ),
        Key("engine.context", str, None, "Docker context to use"),
        Key("image.base", str, "debian:bookworm-slim", "base image of the templates"),
        Key(
            "image.packages",
            list,
            [],
            "extra Debian packages in every image (global config)",
            _check_each(_lazy_validation("validate_package_name")),
        ),
        Key(
            "image.ca_bundle",
            str,
            None,
            "CA bundle given to builds and containers (default: the system bundle)",
        ),
        Key(
            "runtime",
            str,
            "auto",
            "OCI runtime: auto, sysbox-runc, runsc or runc",
            _check_choice(*CHOICES),
        ),
        Key(
            "template",
            str,
            "default",
            "image template",
            _check_with(_lazy_validation("validate_template_name")),
        ),
        Key("ssh.port_range_start", int, 2300, "first host port for SSH", _check_port),
        Key("ssh.port_range_end", int, 2499, "last host port for SSH", _check_port),
        Key("ssh.forward_agent", bool, False, "forward the SSH agent into containers"),
        Key(
            "git.config_writable",
            bool,
            False,
            "let agents write the repository's git config (global config only)",
        ),
        Key(
            "network.policy",
            str,
            "allowlist",
            "egress: allowlist (through cai's gateway), open (plain Docker) or none",
            _check_with(_lazy_egress("validate_policy")),
        ),
        Key(
            "network.presets",
            list,
            ["agents", "package-registries", "git-hosts"],
            "allowlist presets: agents, package-registries, git-hosts",
            _check_with_list(_lazy_egress("validate_presets")),
        ),
        Key(
            "network.allow",
            list,
            [],
            "extra allowed hosts: host, *.suffix, optional :port",
            _check_each(_lazy_egress("parse_entry")),
        ),
        Key(
            "network.deny",
            list,
            [],
            "hosts never allowed, whatever a preset says",
            _check_each(_lazy_egress("parse_entry")),
        ),
        Key(
            "network.allow_cidrs",
            list,
            [],
            "private/loopback ranges the gateway may reach anyway (global config only)",
            _check_each(_lazy_egress("parse_cidr")),
        ),
        Key(
            "devcontainer",
            bool,
            True,
            "honour the workspace's devcontainer.json (never from a repository)",
        ),
        Key(
            "forward",
            list,
            [],
            "container ports forwarded to 127.0.0.1 whenever `cai run` finds the container "
            "running: PORT or PORT:HOSTPORT",
            _check_each(_lazy_forward),
        ),
        Key(
            "gc.age",
            str,
            "30d",
            "minimum age of a stopped container for gc",
            _check_with(_lazy_age),
        ),
        Key(
            "container.memory",
            str,
            None,
            "memory limit (default: half the host's, >= 2 GiB)",
            _check_with(_lazy_validation("parse_memory")),
        ),
        Key(
            "container.cpus",
            str,
            None,
            "CPU limit (default: half the host's, >= 1)",
            _check_with(_lazy_validation("parse_cpus")),
        ),
    )
}

# Keys that are per workspace by nature: `config set` without a scope writes workspace state.
WORKSPACE_KEYS = frozenset({"data_volume"})
# Top-level tables of the global config that are not settings: workspace state and
# the trusted repository settings files (`cai trust`).
NOT_SETTINGS = frozenset({"workspace", "trusted"})
# Workspace state fields that are not settings.
STATE_FIELDS = frozenset({"container_name", "created_at", "forwards"})


def key(name: str) -> Key:
    try:
        return KEYS[name]
    except KeyError:
        known = ", ".join(sorted(KEYS))
        raise UsageError(f"unknown config key '{name}': use one of {known}") from None


def parse_value(name: str, raw: str) -> Any:
    """A command-line string -> the typed value for ``name`` (UsageError naming both)."""
    k = key(name)
    try:
        if k.kind is bool:
            value: Any = _as_bool(raw)
        elif k.kind is int:
            value = _as_int(raw)
        elif k.kind is list:
            value = _as_list(raw)
        else:
            value = raw
        if k.check is not None:
            k.check(value)
    except ValueError as exc:
        raise UsageError(f"invalid value '{raw}' for {name}: {exc}") from None
    return value


def check_file_value(name: str, value: Any, source: str) -> Any:
    """A value read from a config file: type-checked, or ConfigError naming the file."""
    k = KEYS.get(name)
    if k is None:
        return value  # unknown keys are kept (and ignored), never an error
    ok = (
        isinstance(value, bool)
        if k.kind is bool
        else isinstance(value, int) and not isinstance(value, bool)
        if k.kind is int
        else isinstance(value, list) and all(isinstance(v, str) for v in value)
        if k.kind is list
        else isinstance(value, str)
    )
    if not ok:
        raise ConfigError(
            f"{source}: {name} must be a {k.kind.__name__}, not {value!r}; "
            f"fix it with `cai config set {name} VALUE`"
        )
    if k.check is not None:
        try:
            k.check(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: invalid {name} {value!r}: {exc}") from None
    return value


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"ssh": {"port_range_start": 1}}`` -> ``{"ssh.port_range_start": 1}``.

    The ``workspace`` (state) and ``trusted`` tables are not settings and are skipped at
    the top level.
    """
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if not prefix and k in NOT_SETTINGS:
            continue
        full = f"{prefix}{k}"
        if isinstance(v, Mapping) and full not in KEYS:
            out.update(flatten(v, full + "."))
        else:
            out[full] = v
    return out


class Resolved(NamedTuple):
    key: str
    value: Any
    source: str  # cli, env, workspace, repo, global, default


def resolve(name: str, layers: Sequence[tuple[str, Mapping[str, Any]]]) -> Resolved:
    """First layer (in order) that has ``name`` wins; else the key's default."""
    for source, values in layers:
        if name in values and values[name] is not None:
            return Resolved(name, values[name], source)
    return Resolved(name, key(name).default, "default")
