"""The alert policy, driven with literal 1 Hz sequences: timing, hysteresis, cooldown, severities, sensors."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from linewatch.serving.alerts import AlertPolicy, AlertPolicyConfig, Transition

T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z
CFG = AlertPolicyConfig()  # raise 10 s, clear 30 s below 0.8, cooldown 60 s


def feed(
    policy: AlertPolicy,
    scores: Sequence[float],
    *,
    start: int = 0,
    risk: float = 0.5,
    unhealthy: Mapping[str, str] | None = None,
    valid: bool = True,
) -> list[tuple[int, Transition]]:
    """One window per second from ``start``; returns (second, transition) pairs."""
    out: list[tuple[int, Transition]] = []
    for i, score in enumerate(scores):
        t = start + i
        for tr in policy.update(T0 + t, score, risk, unhealthy or {}, "temp", valid):
            out.append((t, tr))
    return out


def events(pairs: list[tuple[int, Transition]]) -> list[tuple[int, str, str]]:
    return [(t, tr.kind, tr.event) for t, tr in pairs]


def test_raises_exactly_after_raise_after_s() -> None:
    policy = AlertPolicy("pump-01")
    assert feed(policy, [1.5] * 10) == []  # t = 0..9: only 9 s above
    assert not policy.state().active
    got = feed(policy, [1.5], start=10)
    assert events(got) == [(10, "machine", "raised")]
    assert policy.active and policy.since == T0 + 10 and policy.severity == "warning"
    assert feed(policy, [1.5] * 100, start=11) == []  # one raise per episode


def test_score_exactly_at_threshold_counts_and_a_dip_restarts_the_timer() -> None:
    policy = AlertPolicy("pump-01")
    assert feed(policy, [1.0] * 9 + [0.99] + [1.0] * 10) == []  # dip at t=9, run restarts at t=10
    assert events(feed(policy, [1.0], start=20)) == [(20, "machine", "raised")]


def test_oscillating_score_never_raises_twice() -> None:
    policy = AlertPolicy("pump-01")
    # Hovering from the start: never *stays* above 1, so never raises.
    assert feed(policy, [0.9, 1.1] * 100) == []
    # A real episode, then hovering around 1: still one raise, and no clear (0.9 is above clear_below).
    policy = AlertPolicy("pump-01")
    got = feed(policy, [1.2] * 11 + [0.9, 1.1] * 300)
    assert events(got) == [(10, "machine", "raised")]
    assert policy.active


def test_clears_after_clear_after_s_below_clear_below() -> None:
    policy = AlertPolicy("pump-01")
    feed(policy, [1.5] * 11)  # raised at t=10
    # 0.85 is below 1 but above clear_below: no clear however long it lasts.
    assert feed(policy, [0.85] * 100, start=11) == []
    # Below 0.8 from t=111, but a blip to 0.81 at t=131 restarts the clear timer: cleared at 132 + 30.
    assert feed(policy, [0.5] * 20 + [0.81] + [0.5] * 30, start=111) == []
    got = feed(policy, [0.5], start=162)
    assert events(got) == [(162, "machine", "cleared")]
    assert got[0][1].severity == "warning"
    assert not policy.active and policy.severity is None and policy.since is None


def test_cooldown_prevents_re_raise() -> None:
    policy = AlertPolicy("pump-01")
    feed(policy, [1.5] * 11)  # raised at t=10
    got = feed(policy, [0.1] * 31, start=11)
    assert events(got) == [(41, "machine", "cleared")]  # t = 11..41: 30 s below
    # Back above 1 at once: the cooldown (until t=101) holds, and the raise timer starts only after it.
    got = feed(policy, [1.5] * 200, start=42)
    assert events(got) == [(111, "machine", "raised")]  # 101 + 10


def test_severity_escalates_and_never_de_escalates() -> None:
    policy = AlertPolicy("pump-01")
    got = feed(policy, [1.5] * 11, risk=0.5)
    assert [(tr.event, tr.severity) for _, tr in got] == [("raised", "warning")]
    got = feed(policy, [1.5] * 3, start=11, risk=0.995)
    assert [(t, tr.event, tr.severity) for t, tr in got] == [(11, "escalated", "major")]
    got = feed(policy, [1.5], start=14, risk=0.9995)
    assert [(tr.event, tr.severity) for _, tr in got] == [("escalated", "critical")]
    assert feed(policy, [1.5] * 5, start=15, risk=0.2) == []  # risk drops: stays critical
    assert policy.severity == "critical"
    got = feed(policy, [0.1] * 31, start=20, risk=0.1)
    assert [(tr.event, tr.severity) for _, tr in got] == [("cleared", "critical")]


def test_raise_severity_follows_the_risk_at_raise() -> None:
    policy = AlertPolicy("pump-01")
    got = feed(policy, [2.0] * 11, risk=0.9999)
    assert [(tr.event, tr.severity) for _, tr in got] == [("raised", "critical")]


def test_sensor_fault_raises_a_sensor_alert_not_a_machine_alert() -> None:
    policy = AlertPolicy("pump-01")
    stuck = {"temp": "stuck"}
    got = feed(policy, [5.0] * 60, risk=0.9999, unhealthy=stuck)
    assert events(got) == [(10, "sensor", "raised")]
    tr = got[0][1]
    assert tr.severity == "warning" and dict(tr.sensors) == stuck
    assert policy.sensor_active and not policy.active
    # A second sensor joining the episode is recorded in the state, without a new raise.
    assert feed(policy, [5.0] * 5, start=60, unhealthy={"vib": "dropout"}) == []
    assert dict(policy.state().sensors) == {"temp": "stuck", "vib": "dropout"}
    # Healthy again: cleared after sensor_clear_after_s (t = 65..95).
    got = feed(policy, [0.2] * 40, start=65)
    assert events(got) == [(95, "sensor", "cleared")]
    assert dict(got[0][1].sensors) == {"temp": "stuck", "vib": "dropout"}
    assert not policy.state().sensor_active and dict(policy.sensors) == {}


def test_sensor_fault_windows_pause_the_machine_timers() -> None:
    policy = AlertPolicy("pump-01")
    feed(policy, [1.5] * 5)  # t=0..4: 4 s above
    feed(policy, [1.5] * 3, start=5, unhealthy={"temp": "range"})  # not counted
    assert events(feed(policy, [1.5] * 6, start=8)) == []  # t=8..13: 4 + 5 = 9 s
    assert events(feed(policy, [1.5], start=14)) == [(14, "machine", "raised")]
    # While active, a failing sensor does not clear the machine alert either.
    got = feed(policy, [0.1] * 100, start=15, unhealthy={"temp": "range"})
    assert events(got) == [(25, "sensor", "raised")]
    assert policy.active


def test_invalid_windows_hold_state() -> None:
    policy = AlertPolicy("pump-01")
    feed(policy, [1.5] * 5)  # t=0..4: 4 s accumulated
    assert feed(policy, [1.5] * 100, start=5, valid=False) == []
    assert not policy.active
    # The gap is not counted: t=105 restarts the count, 105..110 adds 5 s -> 9 s.
    assert feed(policy, [1.5] * 6, start=105) == []
    assert events(feed(policy, [1.5], start=111)) == [(111, "machine", "raised")]


def test_invalid_and_nan_windows_neither_raise_nor_clear() -> None:
    policy = AlertPolicy("pump-01")
    feed(policy, [1.5] * 11)
    assert policy.active
    assert feed(policy, [0.0] * 100, start=11, valid=False) == []
    assert feed(policy, [math.nan] * 100, start=111) == []
    assert feed(policy, [0.0] * 100, start=211, risk=math.nan) == []
    assert policy.active
    quiet = AlertPolicy("pump-02")
    assert feed(quiet, [math.nan] * 100) == []
    assert not quiet.active


def test_transition_and_state_are_json_able() -> None:
    policy = AlertPolicy("pump-01")
    got = feed(policy, [1.5] * 11, risk=0.995)
    tr = got[0][1]
    assert policy.last_transition == tr
    assert tr.to_dict() == {
        "asset": "pump-01",
        "kind": "machine",
        "event": "raised",
        "severity": "major",
        "ts": "2024-05-01T00:00:10.000Z",
        "anomaly_score": 1.5,
        "failure_risk": 0.995,
        "top_sensor": "temp",
        "sensors": {},
    }
    assert tr.state is not None
    state = tr.state.to_dict()
    assert state["machine"] == {
        "active": True,
        "severity": "major",
        "since": "2024-05-01T00:00:10.000Z",
        "top_sensor": "temp",
        "anomaly_score": 1.5,
        "failure_risk": 0.995,
    }
    assert state["sensor"] == {"active": False, "since": None, "sensors": {}}
    json.dumps(state, allow_nan=False)
    json.dumps(tr.to_dict(), allow_nan=False)
    idle = AlertPolicy("x").state().to_dict()
    assert idle["machine"]["active"] is False and idle["updated"] is None
    json.dumps(idle, allow_nan=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raise_after_s": -1.0},
        {"cooldown_s": math.inf},
        {"clear_below": 1.2},
        {"severities": ()},
        {"severities": (("a", 0.0), ("a", 0.5))},
        {"severities": (("a", 0.5), ("b", 0.5))},
        {"severities": (("a", 0.0), ("b", math.nan))},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AlertPolicyConfig(**kwargs)  # type: ignore[arg-type]


def test_severity_ladder() -> None:
    assert CFG.severity_for(0.0) == "warning"
    assert CFG.severity_for(0.99) == "major"
    assert CFG.severity_for(0.9991) == "critical"
    shifted = AlertPolicyConfig(severities=(("minor", 0.5), ("major", 0.9)))
    assert shifted.severity_for(0.1) == "minor"  # below every level: the lowest severity


def test_fractional_ticks_reach_round_durations() -> None:
    policy = AlertPolicy("pump-01")
    raised = [i for i in range(200) if policy.update(T0 + i * 0.1, 1.5, 0.5, {}, None, True)]
    assert raised == [100]  # 0.1 s ticks: 10 s after the first window despite float rounding


# Stretches of identical windows, so the sequences contain sustained episodes, not only noise.
stretch = st.tuples(
    st.sampled_from([0.0, 0.5, 0.79, 0.8, 0.9, 0.99, 1.0, 1.1, 3.0, math.nan]),
    st.booleans() | st.just(True),  # valid (mostly)
    st.booleans() | st.just(False),  # sensor unhealthy (seldom)
    st.integers(min_value=1, max_value=80),  # windows in the stretch
    st.sampled_from([1, 1, 1, 2, 7]),  # seconds between windows
)


@settings(max_examples=400, deadline=None)
@example([(3.0, True, False, 11, 1), (0.0, True, False, 6, 1), (3.0, True, False, 80, 1)], 10.0, 30.0)
@given(st.lists(stretch, max_size=60), st.sampled_from([0.0, 5.0, 10.0]), st.sampled_from([0.0, 30.0, 60.0]))
def test_raises_are_bounded_by_clears_and_spaced(
    stretches: list[tuple[float, bool, bool, int, int]], raise_after: float, cooldown: float
) -> None:
    cfg = AlertPolicyConfig(raise_after_s=raise_after, cooldown_s=cooldown, clear_after_s=5.0)
    policy = AlertPolicy("a", cfg)
    ts = T0
    raises: list[float] = []
    clears = 0
    for score, valid, bad, count, step in stretches:
        for _ in range(count):
            ts += step
            for tr in policy.update(ts, score, 0.5, {"s": "stuck"} if bad else {}, None, valid):
                if tr.kind == "machine" and tr.event == "raised":
                    raises.append(tr.ts)
                elif tr.kind == "machine" and tr.event == "cleared":
                    clears += 1
    assert len(raises) <= clears + 1
    for a, b in pairwise(raises):
        assert b - a >= cooldown + raise_after


def test_only_ambiguous_statuses_let_the_machine_alert_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule shared with simeval: by default any unhealthy sensor holds the machine alert."""
    from linewatch.serving import alerts

    policy = AlertPolicy("pump-01")
    got = feed(policy, [5.0] * 15, risk=0.9999, unhealthy={"vib": "drifting"})
    assert events(got) == [(10, "sensor", "raised")]
    monkeypatch.setattr(alerts, "AMBIGUOUS_STATUS_NAMES", frozenset({"drifting"}))
    lenient = AlertPolicy("pump-02")
    got = feed(lenient, [5.0] * 15, risk=0.9999, unhealthy={"vib": "drifting"})
    assert events(got) == [(10, "machine", "raised"), (10, "sensor", "raised")]
    held = AlertPolicy("pump-03")
    got = feed(held, [5.0] * 15, risk=0.9999, unhealthy={"vib": "drifting", "temp": "stuck"})
    assert events(got) == [(10, "sensor", "raised")]
