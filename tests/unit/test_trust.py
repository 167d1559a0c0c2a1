"""SPEC section 14: a repository's own settings under a trust rule (direnv's model),
validation from any source (agent names, CA bundles, runtime lowering)."""

from __future__ import annotations

import base64
import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai import agents
from containai.cli import main as cli_main
from containai.domain import settings, trust
from containai.domain.certs import certificates
from containai.domain.errors import NotFound, UsageError
from containai.domain.isolation import choose_runtime, is_weakened
from containai.domain.validation import validate_agent_name

HOSTILE = """\
runtime = "runc"
agents = ["claude"]
data_volume = "someone-elses"
bogus = 1
[ssh]
forward_agent = true
[image]
ca_bundle = "/etc/shadow"
base = "evil:latest"
[git]
config_writable = true
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "CONTAINAI_CONTEXT", "CONTAINAI_DATA_VOLUME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "proj"
    (ws / ".containai").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(ws)], check=True)
    (ws / ".containai" / "config.toml").write_text(HOSTILE)
    monkeypatch.chdir(ws)
    return ws


def cai(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def effective(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], dict[str, str]]:
    code, out, err = cai(capsys, "config", "list", "--json")
    assert code == 0, err
    doc = json.loads(out)
    values = {r["key"]: (r["value"], r["source"]) for r in doc["settings"]}
    ignored = {r["key"]: r["reason"] for r in doc["ignored"]}
    return values, ignored


# ------------------------------------------------------------------ policy
def test_every_known_key_is_classified_on_purpose() -> None:
    """A new key must be placed in SAFE, TRUSTABLE or NEVER deliberately."""
    for key in settings.KEYS:
        placed = (key in trust.SAFE or key in trust.TRUSTABLE or key in trust.NEVER) or any(
            key.startswith(k + ".") for k in trust.SAFE | trust.TRUSTABLE | trust.NEVER
        )
        assert placed, f"{key} is not classified in domain/trust.py"


@given(st.dictionaries(st.sampled_from([*sorted(settings.KEYS), "x.y", "zz"]), st.integers()))
def test_untrusted_applies_only_safe_keys(values: dict[str, int]) -> None:
    applied, ignored = trust.repo_policy(values, trusted=False, source="f", known=settings.KEYS)
    assert all(trust.classify(k) == "safe" for k in applied)
    assert set(applied) | {i.key for i in ignored} == set(values)


@given(st.dictionaries(st.sampled_from(sorted(settings.KEYS)), st.integers()))
def test_trusted_never_applies_never_keys(values: dict[str, int]) -> None:
    applied, _ignored = trust.repo_policy(values, trusted=True, source="f", known=settings.KEYS)
    assert not any(k in trust.NEVER for k in applied)
    for k in ("image.ca_bundle", "ssh.forward_agent", "git.config_writable"):
        assert trust.classify(k) == "never"


def test_untrusted_repository_settings_are_ignored_with_warnings(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values, ignored = effective(capsys)
    assert values["runtime"] == ("auto", "default")
    assert values["ssh.forward_agent"] == (False, "default")
    assert values["image.ca_bundle"] == (None, "default")
    assert values["image.base"][1] == "default"
    assert values["data_volume"] == ("containai-data", "default")
    assert values["git.config_writable"] == (False, "default")
    assert values["agents"] == (["claude"], "repo")  # safe: applies on its own
    assert ignored == {
        "runtime": "untrusted",
        "data_volume": "untrusted",
        "image.base": "untrusted",
        "bogus": "unknown",
        "ssh.forward_agent": "never-from-repository",
        "image.ca_bundle": "never-from-repository",
        "git.config_writable": "never-from-repository",
    }
    code, out, err = cai(capsys, "config", "get", "runtime")
    assert (code, out) == (0, "auto\n")
    # one warning per ignored key, naming it and the fix
    warnings = [line for line in err.splitlines() if line.startswith("cai: warning:")]
    assert len(warnings) == 7
    assert any("'runtime'" in w and "cai trust" in w for w in warnings)
    assert any("'ssh.forward_agent'" in w and "--global" in w for w in warnings)


def test_trust_applies_trustable_keys_never_the_forbidden_ones(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = cai(capsys, "trust")
    assert code == 0 and "trusted" in err
    values, ignored = effective(capsys)
    assert values["runtime"] == ("runc", "repo")
    assert values["image.base"] == ("evil:latest", "repo")
    assert values["ssh.forward_agent"] == (False, "default")
    assert values["image.ca_bundle"] == (None, "default")
    assert values["git.config_writable"] == (False, "default")
    assert set(ignored) == {"bogus", "ssh.forward_agent", "image.ca_bundle", "git.config_writable"}
    # recorded as the SHA-256 of the exact content, in the global config
    doc = tomllib.loads((home / ".config" / "containai" / "config.toml").read_text())
    import hashlib

    file = str(ws / ".containai" / "config.toml")
    assert doc["trusted"][file] == hashlib.sha256(HOSTILE.encode()).hexdigest()


def test_any_change_untrusts(home: Path, ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cai(capsys, "trust")[0] == 0
    (ws / ".containai" / "config.toml").write_text(HOSTILE + "# one more line\n")
    values, ignored = effective(capsys)
    assert values["runtime"] == ("auto", "default") and ignored["runtime"] == "untrusted"
    code, out, _ = cai(capsys, "trust", "--show")
    assert code == 0 and "status: changed since trusted" in out


def test_revoke(home: Path, ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cai(capsys, "trust")[0] == 0
    code, _out, err = cai(capsys, "trust", "--revoke")
    assert code == 0 and "revoked" in err
    values, _ = effective(capsys)
    assert values["runtime"] == ("auto", "default")
    code, out, _ = cai(capsys, "trust", "--show", "--json")
    assert code == 0 and json.loads(out)["trusted"] is False


def test_trust_without_settings_file_is_exit_4(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws / ".containai" / "config.toml").unlink()
    code, _out, err = cai(capsys, "trust")
    assert code == 4 and "nothing to trust" in err
    assert not (home / ".config" / "containai" / "config.toml").exists()


def test_unknown_global_key_warns(home: Path, ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = home / ".config" / "containai" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[ssh]\nport_rang_start = 2400\n")
    code, _out, err = cai(capsys, "config", "get", "gc.age")
    assert code == 0 and "unknown setting 'ssh.port_rang_start'" in err


def test_repo_memory_is_a_safe_key(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws / ".containai" / "config.toml").write_text('[container]\nmemory = "3g"\ncpus = "1"\n')
    values, ignored = effective(capsys)
    assert values["container.memory"] == ("3g", "repo") and not ignored


# ------------------------------------------------------------------ agents
@pytest.mark.parametrize("name", ["../../x/evil", "/tmp/evil", "a/b", "..", "Claude", "", "a b"])
def test_agent_names_are_never_paths(name: str) -> None:
    with pytest.raises(UsageError):
        validate_agent_name(name)
    with pytest.raises(NotFound):
        agents.load(name)


def test_agent_path_in_repo_settings_is_refused(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws / ".containai" / "config.toml").write_text('agents = ["../../x/evil"]\n')
    code, _out, err = cai(capsys, "config", "list")
    assert code == 1 and "never a path" in err and "../../x/evil" in err


# ------------------------------------------------------------------ certs
def _cert(body: bytes = b"\x30\x82\x01\x00" + b"x" * 40) -> bytes:
    b64 = base64.encodebytes(body)
    return b"-----BEGIN CERTIFICATE-----\n" + b64 + b"-----END CERTIFICATE-----\n"


def test_certificates_keeps_only_certificate_blocks() -> None:
    data = b"# Mozilla bundle\nSome Root CA\n============\n" + _cert() + b"\n" + _cert()
    out = certificates(data, "bundle.pem")
    assert out.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert b"Mozilla" not in out and b"Root CA" not in out


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"root:$6$salt$hash:19000:0:99999:7:::\n", "no certificate"),
        (
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
            "private key",
        ),
        (
            _cert()
            + b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "openssh private key",
        ),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not base64"),
        (_cert(b"\x01\x02\x03"), "not DER"),
        (_cert() + b"-----BEGIN CERTIFICATE-----\nAAAA\n", "unterminated"),
        (b"\x00\x01binary", "binary"),
        (b"\xff\xfe", "not text"),
    ],
)
def test_certificates_refuses_anything_else(data: bytes, why: str) -> None:
    with pytest.raises(UsageError) as exc:
        certificates(data, "/etc/x")
    assert exc.value.exit_code == 2 and "/etc/x" in str(exc.value) and why in str(exc.value)


def test_system_bundle_is_accepted() -> None:
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    if not system.is_file():
        pytest.skip("no system CA bundle on this machine")
    out = certificates(system.read_bytes(), str(system))
    assert out.count(b"BEGIN CERTIFICATE") == system.read_bytes().count(b"BEGIN CERTIFICATE")


# ------------------------------------------------------------------ runtime
def test_repository_runtime_never_lowers_isolation() -> None:
    runtime, warning = choose_runtime(
        "runc", {"runc", "runsc"}, may_lower=False, source=".containai/config.toml"
    )
    assert runtime == "runsc" and warning and ".containai/config.toml" in warning
    assert choose_runtime("runc", {"runc", "runsc"}, may_lower=True) == ("runc", None)
    assert choose_runtime("runsc", {"runc", "runsc"}, may_lower=False) == ("runsc", None)
    assert choose_runtime("runc", {"runc"}, may_lower=False) == ("runc", None)
    assert is_weakened("runc", {"runc", "runsc"}) and not is_weakened("runsc", {"runc", "runsc"})
