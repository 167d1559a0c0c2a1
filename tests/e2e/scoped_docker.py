"""A `docker` for tests that run `cai gc` on the shared engine: `docker ps` and `docker
image ls` see only one test's objects, and `docker rm` refuses (removing nothing) unless
every container named carries the test's label (or always, without one)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SCRIPT = """#!{python}
import os
import subprocess
import sys

real, ps_filter, image_filter = {real!r}, {ps_filter!r}, {image_filter!r}
label, scope = {label!r}, {scope!r}
argv = sys.argv[1:]
i = 0
while i < len(argv) and argv[i] in ("--context", "-c", "--host", "-H", "--config"):
    i += 2
extra = []
if argv[i : i + 1] == ["ps"]:
    i, extra = i + 1, ["--filter", ps_filter]
elif argv[i : i + 2] == ["image", "ls"]:
    i, extra = i + 2, ["--filter", image_filter]
elif argv[i : i + 1] == ["rm"]:
    targets = [a for a in argv[i + 1 :] if not a.startswith("-")]
    out = []
    if label:
        fmt = "{{{{index .Config.Labels " + repr(label).replace("'", '"') + "}}}}"
        out = subprocess.run(
            [real, *argv[:i], "container", "inspect", "--format", fmt, *targets],
            capture_output=True, text=True,
        ).stdout.splitlines()
    if not label or not targets or out != [scope] * len(targets):
        sys.exit("scoped docker: refusing to remove a container of another test")
os.execv(real, [real, *argv[:i], *extra, *argv[i:]])
"""


def scoped_env(
    root: Path,
    path: str,
    *,
    ps_filter: str,
    image_filter: str,
    label: str | None = None,
    scope: str | None = None,
) -> dict[str, str]:
    """PATH (prefixing ``path``) with such a `docker` in ``root``/scoped-bin."""
    bindir = root / "scoped-bin"
    bindir.mkdir(exist_ok=True)
    real = shutil.which("docker")
    assert real is not None
    script = bindir / "docker"
    script.write_text(
        SCRIPT.format(
            python=sys.executable,
            real=real,
            ps_filter=ps_filter,
            image_filter=image_filter,
            label=label,
            scope=scope,
        )
    )
    script.chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}{path}"}
