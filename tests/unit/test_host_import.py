"""Host configuration import planning (services/host_import.py) on a real temp HOME."""

from __future__ import annotations

import os
import stat
import subprocess
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.errors import ConfigError
from containai.services.host_import import (
    ManifestEntry,
    PlannedEntry,
    TarItem,
    filter_gitconfig,
    items_of,
    manifest_entries,
    normalize_entry,
    plan_entry,
    plan_import,
)

GITCONFIG = """\
[user]
\tname = Test User
\temail = t@example.invalid
\tsigningkey = ABCDEF0123456789
[credential]
\thelper = store
[credential "https://github.com"]
\thelper = !gh auth git-credential
[commit]
\tgpgsign = true
\ttemplate = ~/.gitmessage
[tag]
\tgpgSign = true
\tforceSignAnnotated = true
[gpg]
\tformat = ssh
[gpg "ssh"]
\tprogram = /opt/1Password/op-ssh-sign
[include]
\tpath = ~/.gitconfig.local
[includeIf "gitdir:~/work/"]
\tpath = ~/.gitconfig-work
[url "https://x-access-token:ghp_SECRET@github.com/"]
\tinsteadOf = https://github.com/
[url "git@github.com:"]
\tpushInsteadOf = https://github.com/
[http "https://example.com"]
\textraHeader = AUTHORIZATION: basic c2VjcmV0
[core]
\teditor = vim
\tsshCommand = ssh -i ~/.ssh/work_key
[alias]
\tlg = log --graph \\
\t\t--oneline
\tco = checkout
[Credential]
\tHelper = cache
[credential.https://legacy.example]
\thelper = store
"""


def git_config_list(path: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(path.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(
        ["git", "config", "--file", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return proc.stdout


def test_gitconfig_filter_drops_credentials_and_signing(tmp_path: Path) -> None:
    result = filter_gitconfig(GITCONFIG)
    out = tmp_path / "gitconfig"
    out.write_text(result.text)
    listed = git_config_list(out).lower()  # git itself must still parse it
    for gone in (
        "credential",
        "signingkey",
        "gpgsign",
        "forcesignannotated",
        "gpg.",
        "include",
        "ghp_secret",
        "extraheader",
        "sshcommand",
        "commit.template",
        "op-ssh-sign",
    ):
        assert gone not in listed, gone
    for kept in (
        "user.name=test user",
        "user.email=t@example.invalid",
        "url.git@github.com:.pushinsteadof=https://github.com/",
        "core.editor=vim",
        "alias.co=checkout",
        "alias.lg=log --graph",
        "safe.directory=*",
    ):
        assert kept in listed, kept
    assert "ghp_SECRET" not in " ".join(result.dropped)
    assert "user.signingkey" in result.dropped and "credential" in result.dropped
    assert result.added_safe_directory


def test_gitconfig_filter_keeps_an_existing_safe_directory_and_header_keys() -> None:
    text = "[safe]\n\tdirectory = *\n[user] name = x\n[user] signingkey = k ; comment\n"
    result = filter_gitconfig(text)
    assert not result.added_safe_directory
    assert result.text.count("directory = *") == 1
    assert "name = x" in result.text and "signingkey" not in result.text
    assert result.dropped == ("user.signingkey",)


def test_gitconfig_filter_of_nothing() -> None:
    result = filter_gitconfig("")
    assert result.text.startswith("# added by cai import")
    assert result.dropped == ()


@given(st.text(alphabet='[]"\\ =#;\nabcuserhlpgsignkyd.\t', max_size=200))
def test_gitconfig_filter_never_crashes(text: str) -> None:
    result = filter_gitconfig(text)
    assert result.text.endswith("\n")
    assert "safe" in result.text


def test_manifest_entries_merge_and_validate() -> None:
    entries = manifest_entries(
        [
            ("common", [{"path": ".gitconfig", "filter": "gitconfig"}, {"path": "~/.x/"}]),
            ("a", [{"path": "./.x", "secret": True}, {"path": ".claude", "secret": True}]),
        ]
    )
    assert entries == [
        ManifestEntry(".gitconfig", False, "gitconfig"),
        ManifestEntry(".x", True, None),
        ManifestEntry(".claude", True, None),
    ]
    for bad in ("/etc/passwd", "../x", "", "a/../../b"):
        with pytest.raises(ConfigError, match="agent"):
            manifest_entries([("agent", [{"path": bad}])])
    with pytest.raises(ConfigError, match="unknown filter"):
        manifest_entries([("agent", [{"path": ".x", "filter": "nope"}])])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (".claude/", ".claude"),
        ("~/.codex", ".codex"),
        ("./a//b/", "a/b"),
        ("..", None),
        ("~", None),
    ],
)
def test_normalize_entry(raw: str, expected: str | None) -> None:
    assert normalize_entry(raw) == expected


def test_shipped_manifests_load_and_never_list_ssh() -> None:
    from containai import agents

    common = resources.files("containai.agents").joinpath("manifests/common.toml")
    data = tomllib.loads(common.read_text())
    groups = [("common", data["import"])] + [(n, agents.load(n).imports) for n in agents.names()]
    entries = manifest_entries(groups)
    paths = {e.path for e in entries}
    assert {".gitconfig", ".claude", ".claude.json", ".codex", ".gemini", ".copilot"} <= paths
    assert not any(p == ".ssh" or p.startswith(".ssh/") for p in paths)
    assert {e.path: e.filter for e in entries}[".gitconfig"] == "gitconfig"
    assert all(e.secret for e in entries if e.path in (".claude", ".claude.json", ".config/gh"))
    # that every entry is linked into the home: tests/unit/test_agents.py


# --------------------------------------------------------------------- plan
@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".claude" / "projects" / "p1").mkdir(parents=True)
    (h / ".claude" / "settings.json").write_text("{}")
    (h / ".claude" / "projects" / "p1" / "log.jsonl").write_text("x")
    os.chmod(h / ".claude" / "settings.json", 0o644)
    (h / ".claude" / "rel").symlink_to("settings.json")
    (h / ".claude" / "projects" / "up").symlink_to("../settings.json")
    (h / ".claude" / "abs").symlink_to(h / ".claude" / "settings.json")
    (h / ".claude" / "out").symlink_to("/etc/passwd")
    (h / ".claude" / "escape").symlink_to("../.ssh/id_ed25519")
    (h / ".claude" / "sub-link").symlink_to("projects")
    os.mkfifo(h / ".claude" / "fifo")
    (h / ".claude.json").write_text('{"token": "x"}')
    os.chmod(h / ".claude.json", 0o644)
    (h / ".ssh").mkdir()
    (h / ".ssh" / "id_ed25519").write_text("PRIVATE")
    (h / ".gitconfig").write_text(GITCONFIG)
    (h / ".vimrc").write_text("set nu\n")
    os.chmod(h / ".vimrc", 0o640)
    (h / ".config").mkdir()
    return h


def by_name(plan: PlannedEntry) -> dict[str, TarItem]:
    return {i.name: i for i in plan.items}


def test_secret_directory_lands_0700_and_0600_with_safe_symlinks(home: Path) -> None:
    plan = plan_entry(ManifestEntry(".claude", True), home, no_secrets=False)
    assert plan.action == "copy"
    items = by_name(plan)
    assert items["home"].kind == "dir"
    assert items["home/.claude"].mode == 0o700
    assert items["home/.claude/projects"].mode == 0o700
    assert items["home/.claude/settings.json"].mode == 0o600
    assert items["home/.claude/projects/p1/log.jsonl"].mode == 0o600
    assert items["home/.claude/rel"].linkname == "settings.json"
    assert items["home/.claude/projects/up"].linkname == "../settings.json"
    assert items["home/.claude/abs"].linkname == "settings.json"  # made relative
    assert items["home/.claude/sub-link"].linkname == "projects"
    for gone in ("out", "escape", "fifo"):
        assert f"home/.claude/{gone}" not in items
    assert len(plan.warnings) == 2
    assert any("/etc/passwd" in w for w in plan.warnings)
    assert any("id_ed25519" in w for w in plan.warnings)
    assert "2 files" in plan.detail and "1 socket/FIFO/device skipped" in plan.detail
    # parents come before children
    names = [i.name for i in plan.items]
    assert names.index("home") < names.index("home/.claude") < names.index("home/.claude/projects")


def test_symlink_chains_that_leave_the_entry_are_skipped(home: Path) -> None:
    d = home / ".codex"
    (d / "x").mkdir(parents=True)
    (d / "x" / "l1").symlink_to("..")  # the entry root: fine on its own
    (d / "l2").symlink_to("x/l1/..")  # through l1: the home directory
    plan = plan_entry(ManifestEntry(".codex", True), home, no_secrets=False)
    items = by_name(plan)
    assert "home/.codex/x/l1" in items
    assert "home/.codex/l2" not in items
    assert any("l2" in w for w in plan.warnings)


def test_secret_file_is_0600_and_skipped_with_no_secrets(home: Path) -> None:
    plan = plan_entry(ManifestEntry(".claude.json", True), home, no_secrets=False)
    assert plan.action == "copy"
    item = by_name(plan)["home/.claude.json"]
    assert item.mode == 0o600 and item.source == home / ".claude.json"
    skipped = plan_entry(ManifestEntry(".claude.json", True), home, no_secrets=True)
    assert (skipped.action, skipped.detail, skipped.items) == ("skip", "secret (--no-secrets)", ())


def test_plain_file_keeps_its_mode_and_missing_is_skipped(home: Path) -> None:
    plan = plan_entry(ManifestEntry(".vimrc"), home, no_secrets=True)
    assert by_name(plan)["home/.vimrc"].mode == 0o640
    assert plan_entry(ManifestEntry(".nope"), home, no_secrets=False).detail == "missing"


@pytest.mark.parametrize("entry", [".ssh", ".ssh/id_ed25519", ".ssh/config"])
def test_ssh_is_never_imported_even_if_listed(home: Path, entry: str) -> None:
    plan = plan_entry(ManifestEntry(entry, False), home, no_secrets=False)
    assert plan.action == "skip" and "never imported" in plan.detail and plan.items == ()


def test_an_entry_that_resolves_into_ssh_is_refused(home: Path) -> None:
    (home / ".gemini").symlink_to(home / ".ssh")
    plan = plan_entry(ManifestEntry(".gemini", True), home, no_secrets=False)
    assert plan.action == "skip" and ".ssh" in plan.detail
    (home / ".codex").symlink_to(home)  # the whole home holds ~/.ssh
    plan = plan_entry(ManifestEntry(".codex", True), home, no_secrets=False)
    assert plan.action == "skip" and ".ssh" in plan.detail


def test_a_symlinked_entry_is_followed(home: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    (dotfiles / "gemini").mkdir(parents=True)
    (dotfiles / "gemini" / "settings.json").write_text("{}")
    (dotfiles / "gemini" / "abs").symlink_to(home / ".gemini" / "settings.json")
    (home / ".gemini").symlink_to(dotfiles / "gemini")
    plan = plan_entry(ManifestEntry(".gemini", True), home, no_secrets=False)
    items = by_name(plan)
    assert items["home/.gemini"].kind == "dir"
    assert items["home/.gemini/settings.json"].source == dotfiles / "gemini" / "settings.json"
    assert items["home/.gemini/abs"].linkname == "settings.json"


def test_gitconfig_entry_is_filtered(home: Path) -> None:
    plan = plan_entry(ManifestEntry(".gitconfig", False, "gitconfig"), home, no_secrets=False)
    assert plan.action == "filtered"
    item = by_name(plan)["home/.gitconfig"]
    assert item.data is not None and b"signingkey" not in item.data
    assert b"helper" not in item.data
    assert "user.signingkey" in plan.detail


def test_nested_entry_gets_its_parent_directories(home: Path) -> None:
    (home / ".config" / "gh").mkdir()
    (home / ".config" / "gh" / "hosts.yml").write_text("token: x")
    plan = plan_entry(ManifestEntry(".config/gh", True), home, no_secrets=False)
    items = by_name(plan)
    assert items["home/.config"].kind == "dir" and items["home/.config"].mode & 0o700 == 0o700
    assert items["home/.config/gh"].mode == 0o700
    assert items["home/.config/gh/hosts.yml"].mode == 0o600


def test_plan_changes_nothing_and_items_are_unique(home: Path) -> None:
    before = sorted((str(p), p.lstat().st_mode, p.lstat().st_mtime_ns) for p in home.rglob("*"))
    entries = [
        ManifestEntry(".claude", True),
        ManifestEntry(".claude.json", True),
        ManifestEntry(".vimrc"),
        ManifestEntry(".ssh", True),
    ]
    plans = plan_import(entries, home, no_secrets=False)
    items = items_of(plans)
    names = [i.name for i in items]
    assert len(names) == len(set(names)) and names.count("home") == 1
    assert not any(".ssh" in n for n in names)
    after = sorted((str(p), p.lstat().st_mode, p.lstat().st_mtime_ns) for p in home.rglob("*"))
    assert before == after
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o644  # host untouched
