"""A `docker` for tests that run `cai gc` on the shared engine: `docker ps` and `docker
image ls` see only one test's objects, and `docker rm` refuses (removing nothing) unless
every container named carries the test's label (or always, without one).

With several ``ps_filter``s, `docker ps` lists what any of them matches (one call each,
merged): a workspace container and its gateway carry different labels. With ``allowed``
(label, value) pairs, a container may be removed when it carries any of them."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

SCRIPT = """#!{python}
import os
import subprocess
import sys

real, ps_filters, image_filter = {real!r}, {ps_filters!r}, {image_filter!r}
allowed = {allowed!r}
argv = sys.argv[1:]
i = 0
while i < len(argv) and argv[i] in ("--context", "-c", "--host", "-H", "--config"):
    i += 2
extra = []
if argv[i : i + 1] == ["ps"] and len(ps_filters) > 1:
    seen = []
    for ps_filter in ps_filters:
        proc = subprocess.run(
            [real, *argv[: i + 1], "--filter", ps_filter, *argv[i + 1 :]],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            sys.exit(proc.returncode)
        seen += [line for line in proc.stdout.splitlines() if line not in seen]
    sys.stdout.write("".join(line + "\\n" for line in seen))
    sys.exit(0)
if argv[i : i + 1] == ["ps"]:
    i, extra = i + 1, ["--filter", ps_filters[0]]
elif argv[i : i + 2] == ["image", "ls"]:
    i, extra = i + 2, ["--filter", image_filter]
elif argv[i : i + 1] == ["rm"]:
    targets = [a for a in argv[i + 1 :] if not a.startswith("-")]
    out = []
    if allowed:
        fmt = "\\t".join(
            "{{{{index .Config.Labels " + repr(label).replace("'", '"') + "}}}}"
            for label, _value in allowed
        )
        out = subprocess.run(
            [real, *argv[:i], "container", "inspect", "--format", fmt, *targets],
            capture_output=True, text=True,
        ).stdout.splitlines()
    ours = [
        any(got == value for got, (_label, value) in zip(line.split("\\t"), allowed))
        for line in out
    ]
    if not allowed or not targets or len(ours) != len(targets) or not all(ours):
        sys.exit("scoped docker: refusing to remove a container of another test")
os.execv(real, [real, *argv[:i], *extra, *argv[i:]])
"""


def scoped_env(
    root: Path,
    path: str,
    *,
    ps_filter: str | Sequence[str],
    image_filter: str,
    label: str | None = None,
    scope: str | None = None,
    allowed: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """PATH (prefixing ``path``) with such a `docker` in ``root``/scoped-bin: `docker rm`
    only of containers with ``label`` = ``scope``, or with any of the ``allowed`` pairs."""
    pairs = [*([(label, scope)] if label and scope else []), *allowed]
    bindir = root / "scoped-bin"
    bindir.mkdir(exist_ok=True)
    real = shutil.which("docker")
    assert real is not None
    script = bindir / "docker"
    script.write_text(
        SCRIPT.format(
            python=sys.executable,
            real=real,
            ps_filters=[ps_filter] if isinstance(ps_filter, str) else list(ps_filter),
            image_filter=image_filter,
            allowed=[list(p) for p in pairs],
        )
    )
    script.chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}{path}"}
