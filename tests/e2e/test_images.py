"""Images (SPEC section 8): templates listed, a rebuild with nothing changed is a cache hit
(the same image), bad template names refused; the default image with Claude Code keeps
no node, no GCC lto-dump and no cache of its build (issue 19)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def image_id(ref: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def test_rebuild_with_nothing_changed_is_a_cache_hit(sandbox: Sandbox) -> None:
    first = sandbox.cai("image", "build")
    assert first.returncode == 0, first.stderr
    before = image_id("containai:default")
    second = sandbox.cai("image", "build")
    assert second.returncode == 0, second.stderr
    assert image_id("containai:default") == before
    labels = json.loads(
        docker("image", "inspect", "-f", "{{json .Config.Labels}}", "containai:default").stdout
    )
    assert labels["ai.containai.template"] == "default"
    assert len(labels["ai.containai.template-hash"]) == 16
    assert first.stdout == second.stdout == ""  # rule of silence
    # the build is tagged by its hash; containai:default is the alias of that build
    assert image_id(f"containai:default-{labels['ai.containai.template-hash']}") == before
    # piped: one line per phase and per Dockerfile step, never a silent minute
    assert "cai: building template 'default' on " in second.stderr
    assert "cai:   step 1/" in second.stderr and "cai:   done (" in second.stderr
    assert "cai: adding cai's system layer -> containai:default-" in second.stderr


def test_template_list(sandbox: Sandbox) -> None:
    user = sandbox.home / ".config" / "containai" / "templates" / "mine"
    user.mkdir(parents=True)
    (user / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    res = sandbox.cai("template", "list", "--json")
    assert res.returncode == 0, res.stderr
    names = {t["name"]: t for t in res.json["templates"]}
    assert names["default"]["builtin"] is True
    assert names["mine"]["builtin"] is False and names["mine"]["image"] == "containai:mine"
    text = sandbox.cai("template", "list").stdout
    assert "default" in text and "mine" in text


def test_bad_and_missing_templates(sandbox: Sandbox) -> None:
    res = sandbox.cai("image", "build", "--template", "Bad/Name")
    assert res.returncode == 2 and "template" in res.stderr
    res = sandbox.cai("image", "build", "--template", "nosuch")
    assert res.returncode == 4 and "nosuch" in res.stderr


# What the default image must (not) have, one "HAS ..." line per thing it should not.
LEAN_CHECK = r"""
claude --version
for c in node npm npx; do command -v "$c" >/dev/null && echo "HAS command $c"; done
for f in /root/.npm /root/.cache /usr/bin/lto-dump /usr/bin/x86_64-linux-gnu-lto-dump-12; do
    [ -e "$f" ] || [ -L "$f" ] && echo "HAS $f"
done
find /tmp /var/lib/apt/lists /var/cache/apt /root -mindepth 1 -type f \
    ! -name lock ! -name .bashrc ! -name .profile -printf 'HAS %p\n'
cd /tmp && printf 'int main(void) { return 0; }\n' > t.c && gcc -flto -O2 t.c -o t && ./t \
    && echo LTO-OK
gcc -fsanitize=address t.c -o asan && ./asan && echo ASAN-OK
"""


def test_default_image_runs_claude_without_node_lto_dump_or_caches(sandbox: Sandbox) -> None:
    """Claude Code's command is a native executable, so the default image (agents =
    claude) keeps no node/npm (templates/default: removed in the layer that installed
    them), no GCC lto-dump (dpkg path-exclude) and nothing of its build's downloads;
    `claude --version` still answers and `gcc -flto` still links (lto1 stays)."""
    built = sandbox.cai("image", "build", "--verbose")
    assert built.returncode == 0, built.stderr[-3000:]
    found = re.search(r"built (containai:default-[0-9a-f]{16}) ", built.stderr)
    assert found, built.stderr[-3000:]
    out = docker("run", "--rm", "--entrypoint", "/bin/sh", found.group(1), "-c", LEAN_CHECK)
    assert out.returncode == 0, out.stderr
    assert "Claude Code" in out.stdout, out.stdout + out.stderr
    assert [ln for ln in out.stdout.splitlines() if ln.startswith("HAS ")] == []
    assert "LTO-OK" in out.stdout, out.stdout + out.stderr
    # ASan's runtime behind cai's preloaded statx shim: ASAN_OPTIONS in the system layer
    assert "ASAN-OK" in out.stdout, out.stdout + out.stderr
