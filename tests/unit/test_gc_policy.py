from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.gc_policy import GcDecision, GcView, decide, select

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
THIRTY_DAYS = timedelta(days=30)
MANAGED: Mapping[str, str] = {"containai.managed": "true", "containai.workspace": "/src/app"}


def view(
    state: str = "exited",
    *,
    labels: Mapping[str, str] = MANAGED,
    created: datetime | None = None,
    finished_at: datetime | None = None,
    name: str = "app-main",
) -> GcView:
    return GcView(name=name, state=state, labels=labels, created=created, finished_at=finished_at)


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


def test_old_exited_is_eligible() -> None:
    decision = decide(view(finished_at=ago(days=31), created=ago(days=400)), NOW, THIRTY_DAYS)
    assert decision == GcDecision("app-main", True, "exited 31d ago", 31 * 86400.0)


def test_exited_age_comes_from_finished_at_not_created() -> None:
    decision = decide(view(finished_at=ago(hours=2), created=ago(days=400)), NOW, THIRTY_DAYS)
    assert not decision.eligible
    assert decision.reason == "too young (2h <= 30d)"
    assert decision.age_seconds == 7200


def test_created_never_started_uses_created() -> None:
    decision = decide(view("created", created=ago(days=40)), NOW, THIRTY_DAYS)
    assert decision.eligible
    assert decision.reason == "created 40d ago, never started"
    assert decision.age_seconds == 40 * 86400


def test_created_ignores_finished_at() -> None:
    young = view("created", created=ago(days=1), finished_at=ago(days=100))
    assert not decide(young, NOW, THIRTY_DAYS).eligible


def test_exactly_min_age_is_not_older_than() -> None:
    assert not decide(view(finished_at=ago(days=30)), NOW, THIRTY_DAYS).eligible
    assert decide(view(finished_at=ago(days=30, seconds=1)), NOW, THIRTY_DAYS).eligible


def test_zero_age_takes_every_stopped_container() -> None:
    assert decide(view(finished_at=ago(seconds=1)), NOW, timedelta(0)).eligible
    assert not decide(view(finished_at=NOW), NOW, timedelta(0)).eligible


def test_future_timestamp_is_too_young() -> None:
    decision = decide(view(finished_at=NOW + timedelta(hours=1)), NOW, THIRTY_DAYS)
    assert not decision.eligible
    assert decision.reason.startswith("too young")


@pytest.mark.parametrize("state", ["running", "paused", "restarting", "removing", "dead"])
def test_only_exited_and_created_are_pruned(state: str) -> None:
    decision = decide(
        view(state, created=ago(days=999), finished_at=ago(days=999)), NOW, THIRTY_DAYS
    )
    assert not decision.eligible
    assert decision.reason == state
    assert decision.age_seconds is None


def test_empty_state() -> None:
    decision = decide(view("", finished_at=ago(days=99)), NOW, THIRTY_DAYS)
    assert (decision.eligible, decision.reason) == (False, "state unknown")


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"containai.workspace": "/src/app"},
        {"containai.managed": "false"},
        {"containai.managed": "True"},
        {"containai.managed": "1"},
        {"containai.managed": " true"},
    ],
)
def test_unmanaged_is_never_pruned(labels: Mapping[str, str]) -> None:
    decision = decide(view(labels=labels, finished_at=ago(days=999)), NOW, THIRTY_DAYS)
    assert (decision.eligible, decision.reason) == (False, "not managed")


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", "on"])
def test_kept_is_never_pruned(value: str) -> None:
    labels = {**MANAGED, "containai.keep": value}
    decision = decide(view(labels=labels, finished_at=ago(days=999)), NOW, THIRTY_DAYS)
    assert not decision.eligible
    assert decision.reason == f"kept (containai.keep={value})"


@pytest.mark.parametrize("value", ["false", "", "no"])
def test_keep_false_does_not_protect(value: str) -> None:
    labels = {**MANAGED, "containai.keep": value}
    assert decide(view(labels=labels, finished_at=ago(days=999)), NOW, THIRTY_DAYS).eligible


@pytest.mark.parametrize("state", ["exited", "created"])
def test_unknown_age_is_not_pruned(state: str) -> None:
    decision = decide(view(state), NOW, THIRTY_DAYS)
    assert (decision.eligible, decision.reason, decision.age_seconds) == (
        False,
        "age unknown",
        None,
    )


def test_select_keeps_order_and_covers_all() -> None:
    views = [
        view(name="a", finished_at=ago(days=60)),
        view("running", name="b", created=ago(days=60)),
        view(name="c", finished_at=ago(days=1)),
        view("created", name="d", created=ago(days=90)),
    ]
    decisions = select(views, NOW, THIRTY_DAYS)
    assert [d.name for d in decisions] == ["a", "b", "c", "d"]
    assert [d.eligible for d in decisions] == [True, False, False, True]
    assert select([], NOW, THIRTY_DAYS) == []


states = st.sampled_from(
    ["running", "paused", "restarting", "removing", "dead", "exited", "created", "", "weird"]
)
label_values = st.sampled_from(["true", "false", "True", "", "1", "yes", "x"])
labels_strategy = st.dictionaries(
    st.sampled_from(["containai.managed", "containai.keep", "containai.workspace", "other"]),
    label_values,
)
times = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    state=states,
    labels=labels_strategy,
    created=times,
    finished_at=times,
    min_age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)),
)
def test_gc_never_selects_what_it_must_not(
    state: str,
    labels: dict[str, str],
    created: datetime | None,
    finished_at: datetime | None,
    min_age: timedelta,
) -> None:
    v = view(state, labels=labels, created=created, finished_at=finished_at)
    decision = decide(v, NOW, min_age)
    assert decision.name == v.name
    assert decision.reason
    if decision.eligible:
        assert labels.get("containai.managed") == "true"
        assert labels.get("containai.keep", "").lower() not in ("true", "1", "yes", "on")
        assert state in ("exited", "created")
        since = finished_at if state == "exited" else created
        assert since is not None
        assert decision.age_seconds == (NOW - since).total_seconds()
        assert NOW - since > min_age
    if state not in ("exited", "created"):
        assert not decision.eligible
