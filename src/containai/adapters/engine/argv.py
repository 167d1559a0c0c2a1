"""cai's ``ContainerSpec`` -> the ``docker create`` (or ``docker run``) command line."""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from containai.domain.engine_objects import ContainerSpec, Mount


def _csv_field(text: str) -> str:
    """One field of ``--mount``'s CSV syntax, quoted when it holds a comma or quote."""
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def mount_arg(mount: Mount) -> str:
    """``--mount``'s value: ``type=..,source=..,target=..[,readonly][,volume-nocopy=true]``."""
    fields = (f"type={mount.kind}", f"source={mount.source}", f"target={mount.target}")
    text = ",".join(_csv_field(f) for f in fields)
    if mount.readonly:
        text += ",readonly"
    if mount.no_copy:
        text += ",volume-nocopy=true"
    return text


def create_args(spec: ContainerSpec) -> list[str]:
    """The arguments of ``docker create``/``docker run`` for ``spec`` (image and command
    last)."""
    args: list[str] = ["--rm"] if spec.auto_remove else []
    if spec.name is not None:
        args += ["--name", spec.name]
    if spec.hostname is not None:
        args += ["--hostname", spec.hostname]
    for key, value in spec.labels.items():
        args += ["--label", f"{key}={value}"]
    if spec.runtime is not None:
        args += ["--runtime", spec.runtime]
    if spec.init:
        args.append("--init")
    if spec.restart is not None:
        args += ["--restart", spec.restart]
    if spec.user is not None:
        args += ["--user", spec.user]
    if spec.entrypoint is not None:
        args += ["--entrypoint", spec.entrypoint]
    for option in spec.security_opts:
        args += ["--security-opt", option]
    for cap in spec.cap_drop:
        args += ["--cap-drop", cap]
    for cap in spec.cap_add:
        args += ["--cap-add", cap]
    for key, value in spec.sysctls.items():
        args += ["--sysctl", f"{key}={value}"]
    for mount in spec.mounts:
        args += ["--mount", mount_arg(mount)]
    if spec.workdir is not None:
        args += ["--workdir", spec.workdir]
    if spec.network is not None:
        args += ["--network", spec.network]
    for server in spec.dns:
        args += ["--dns", server]
    for port in spec.publish:
        args += ["--publish", f"{port.host_ip}:{port.host_port}:{port.container_port}"]
    if spec.memory is not None:
        args += ["--memory", str(spec.memory)]
    if spec.cpus is not None:
        args += ["--cpus", f"{spec.cpus:g}"]
    for key, value in spec.env.items():
        args += ["--env", f"{key}={value}"]
    return [*args, spec.image, *spec.command]
