from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.errors import UsageError
from containai.domain.validation import (
    format_bytes,
    parse_cpus,
    parse_env_assignment,
    parse_memory,
    validate_container_name,
    validate_port,
    validate_port_range,
    validate_runtime,
    validate_template_name,
    validate_volume_name,
)

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


def _usage_error(excinfo: pytest.ExceptionInfo[UsageError], bad: str) -> str:
    message = str(excinfo.value)
    assert excinfo.value.exit_code == 2
    assert "\n" not in message
    assert bad in message
    return message


@pytest.mark.parametrize("name", ["a", "A", "0", "myapp-main", "My_App.v2", "a" * 63, "a.-_"])
def test_container_name_ok(name: str) -> None:
    assert validate_container_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Foo/bar", "-a", "_a", ".a", "a" * 64, "a b", "café", "a\n", "a:b", "١٢"],
)
def test_container_name_bad(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_container_name(name)
    message = _usage_error(info, repr(name))
    assert "start with a letter or digit" in message
    assert "63" in message


def test_container_name_message_matches_house_style() -> None:
    with pytest.raises(UsageError) as info:
        validate_container_name("Foo/bar")
    assert str(info.value) == (
        "invalid container name 'Foo/bar': use letters, digits, '_', '.', '-' "
        "(start with a letter or digit, at most 63 characters)"
    )


@pytest.mark.parametrize("name", ["containai-data", "a", "A.b_c-d", "x" * 255, "a.b.c"])
def test_volume_name_ok(name: str) -> None:
    assert validate_volume_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a..b", "a/b", "x" * 256, "a\n", "..", "a b"])
def test_volume_name_bad(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_volume_name(name)
    _usage_error(info, repr(name))


@pytest.mark.parametrize(
    "name", ["default", "my-tpl", "tpl_2.1", "0", "a" * 111, "x-0123456789abcde"]
)
def test_template_name_ok(name: str) -> None:
    assert validate_template_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Default",
        "-x",
        "_x",
        "a..b",
        "a/b",
        "a" * 112,
        "x\n",
        "../etc",
        "é",
        "default-0123456789abcdef",  # its alias would be another template's hashed tag
    ],
)
def test_template_name_bad(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_template_name(name)
    _usage_error(info, repr(name))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("KEY=value", ("KEY", "value")),
        ("KEY=", ("KEY", "")),
        ("_k1=a=b=c", ("_k1", "a=b=c")),
        ("k=with space", ("k", "with space")),
        ("K=line1\nline2", ("K", "line1\nline2")),
    ],
)
def test_env_assignment_ok(text: str, expected: tuple[str, str]) -> None:
    assert parse_env_assignment(text) == expected


@pytest.mark.parametrize("text", ["KEY", "", "=v", "1KEY=v", "KE-Y=v", "K Y=v", "K=a\x00b", "É=1"])
def test_env_assignment_bad(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_env_assignment(text)
    _usage_error(info, repr(text))


@pytest.mark.parametrize("runtime", ["auto", "sysbox-runc", "runsc", "runc"])
def test_runtime_ok(runtime: str) -> None:
    assert validate_runtime(runtime) == runtime


@pytest.mark.parametrize("runtime", ["", "AUTO", "kata", "runc ", "gvisor"])
def test_runtime_bad(runtime: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_runtime(runtime)
    message = _usage_error(info, repr(runtime))
    assert "auto, sysbox-runc, runsc, runc" in message


@pytest.mark.parametrize("port", [1024, 2300, 65535])
def test_port_ok(port: int) -> None:
    assert validate_port(port, "ssh.port_range_start") == port


@pytest.mark.parametrize("port", [0, 22, 1023, 65536, -1, True])
def test_port_bad(port: int) -> None:
    with pytest.raises(UsageError) as info:
        validate_port(port, "ssh.port_range_start")
    message = _usage_error(info, "ssh.port_range_start")
    assert "1024" in message and "65535" in message


def test_port_range() -> None:
    assert validate_port_range(2300, 2499) == (2300, 2499)
    assert validate_port_range(2300, 2300) == (2300, 2300)
    with pytest.raises(UsageError) as info:
        validate_port_range(2500, 2300)
    _usage_error(info, "2500..2300")
    with pytest.raises(UsageError):
        validate_port_range(80, 2300)
    with pytest.raises(UsageError):
        validate_port_range(2300, 70000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("512mb", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("4g", 4 * GiB),
        ("2GiB", 2 * GiB),
        ("2 GB", 2 * GiB),
        ("1.5g", GiB + GiB // 2),
        ("0.5t", TiB // 2),
        ("256m", 256 * MiB),
        ("268435456", 256 * MiB),
        ("268435456b", 256 * MiB),
        ("262144k", 256 * MiB),
        (" 4g ", 4 * GiB),
    ],
)
def test_parse_memory_ok(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0g",
        "-1g",
        "5m",
        "6m",  # issue 13 item 3: docker's floor, but gVisor's sshd is OOM-killed below 192m
        "128m",
        "255m",
        "268435455",
        "g",
        "4x",
        "4gg",
        "4 g b",
        "1e9",
        "4ig",
        "nan",
        "inf",
        "1_000m",
        "٤g",
        "99999999999t",
    ],
)
def test_parse_memory_bad(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_memory(text)
    _usage_error(info, repr(text))


@pytest.mark.parametrize(
    ("text", "expected"), [("1", 1.0), ("1.5", 1.5), ("0.01", 0.01), (".5", 0.5), ("1024", 1024.0)]
)
def test_parse_cpus_ok(text: str, expected: float) -> None:
    assert parse_cpus(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0", "0.0", "-1", "0.001", "1025", "nan", "inf", "1e2", "1_0", "two", "1,5"]
)
def test_parse_cpus_bad(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_cpus(text)
    _usage_error(info, repr(text))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0KB"),
        (1536, "1.5KB"),
        (MiB - 1, "1.0MB"),  # rounds up into the next unit, never '1024.0KB'
        (int(1.2 * GiB), "1.2GB"),
        (4 * GiB, "4.0GB"),
        (3 * TiB, "3.0TB"),
        (2048 * TiB, "2048.0TB"),
    ],
)
def test_format_bytes(size: int, expected: str) -> None:
    assert format_bytes(size) == expected


def test_format_bytes_negative() -> None:
    with pytest.raises(ValueError):
        format_bytes(-1)


@given(st.integers(min_value=256 * MiB, max_value=2**50))
def test_memory_roundtrips_plain_bytes(size: int) -> None:
    assert parse_memory(str(size)) == size
    assert parse_memory(f"{size}b") == size


@given(st.integers(min_value=0, max_value=2**60))
def test_format_bytes_shape(size: int) -> None:
    text = format_bytes(size)
    if size < 1024:
        assert text == f"{size}B"
    else:
        number, unit = text[:-2], text[-2:]
        assert unit in ("KB", "MB", "GB", "TB")
        assert 1.0 <= float(number) < 1024 or unit == "TB"
        assert len(number.split(".")[1]) == 1


@given(st.text(max_size=70))
def test_container_name_validator_agrees_with_regex(name: str) -> None:
    ok = re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}", name, flags=re.ASCII) is not None
    if ok:
        assert validate_container_name(name) == name
    else:
        with pytest.raises(UsageError):
            validate_container_name(name)
