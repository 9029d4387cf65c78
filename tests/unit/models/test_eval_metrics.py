"""Evaluation metrics on small hand-computed cases, and VUS-PR/AUC-PR against the tsb-ad package."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from linewatch.models.evaluation.config import EvalConfig
from linewatch.models.evaluation.metrics import (
    Confusion,
    attribution_scores,
    confusion,
    event_stats,
    false_alarms_per_day,
    hit_rate,
    hit_rate_random,
    nab_score,
    nab_windows,
    ndcg,
    parse_interpretation,
    ranking,
    scaled_sigmoid,
    segments,
    top_k_accuracy,
    transitions,
)
from linewatch.models.evaluation.rangeauc import auc_pr, vus_pr

REPO = Path(__file__).resolve().parents[3]


def test_skab_f1_far_mar_by_hand() -> None:
    # pred/label: TP at 1, FP at 0 and 4, FN at 2, TN at 3 and 5.
    c = confusion([1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0])
    assert c == Confusion(tp=1, fp=2, fn=1, tn=2)
    assert c.f1 == pytest.approx(1 / (1 + 1.5))
    assert c.far == pytest.approx(50.0)  # 2 FP of 4 normal points
    assert c.mar == pytest.approx(50.0)  # 1 FN of 2 anomalous points
    pooled = c + Confusion(tp=3, fp=0, fn=0, tn=6)
    assert (pooled.f1, pooled.far, pooled.mar) == pytest.approx((4 / 5.5, 20.0, 20.0))
    assert Confusion().f1 == 0.0 and Confusion().far == 0.0


def test_segments_and_events() -> None:
    label = [0, 1, 1, 0, 0, 1, 1, 1, 0, 0]
    pred = [1, 0, 0, 0, 0, 0, 0, 1, 0, 1]
    assert segments(label) == [(1, 3), (5, 8)]
    stats = event_stats(pred, label)
    assert (stats.events, stats.detected, stats.delays, stats.false_events) == (2, 1, (2,), 2)
    assert stats.recall == 0.5 and stats.mean_delay() == 2.0
    # 5 normal points at 60 s = 300 s; 2 false runs -> 2 / (300 / 86400) per day.
    assert false_alarms_per_day(stats, 60.0) == pytest.approx(2 / (300 / 86400))


def test_nab_by_hand() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(3.5) == -1.0
    wins = nab_windows([10, 30], width=4, n=100)
    assert wins == [(10, 14), (30, 34)]
    assert nab_windows([10, 12], width=4, n=15) == [(10, 14)]  # overlapping windows merge, clipped to the series
    det = np.zeros(50, dtype=bool)
    det[[2, 11, 13, 20]] = True
    raw = nab_score(det, wins)
    expected = (
        -0.11  # FP at 2, no window before it
        + scaled_sigmoid(-(14 - 11 + 1) / 5)  # first detection in window 1 (13 ignored)
        + 0.11 * scaled_sigmoid((20 - 14) / 5)  # FP at 20, 6 steps after window 1 ends
        - 1.0  # window 2 missed
    )
    assert raw.score == pytest.approx(expected)
    assert raw.perfect == pytest.approx(2 * scaled_sigmoid(-1.0))
    assert raw.null == -2.0
    assert raw.normalised == pytest.approx(100 * (expected + 2) / (raw.perfect + 2))
    assert nab_score(np.zeros(50, bool), wins).normalised == pytest.approx(0.0)
    perfect = np.zeros(50, dtype=bool)
    perfect[[10, 30]] = True
    assert nab_score(perfect, wins).normalised == pytest.approx(100.0)


def test_transitions() -> None:
    assert transitions([0, 1, 1, 0, 0, 1]).tolist() == [False, True, False, True, False, True]


def test_hit_rate_floor_rule_and_random() -> None:
    contribution = np.array([0.1, 0.5, 0.0, 0.3, 0.1])
    rank = ranking(contribution)
    assert rank.tolist() == [1, 3, 0, 4, 2]  # ties keep index order
    # true dims {1, 2, 4}: top 3 = {1, 3, 0} -> 1/3; @150%: floor(4.5) = 4 -> {1, 3, 0, 4} -> 2/3
    assert hit_rate(rank, [1, 2, 4], 100) == pytest.approx(1 / 3)
    assert hit_rate(rank, [1, 2, 4], 150) == pytest.approx(2 / 3)
    # |true| = 1: floor(1.5) = 1
    assert hit_rate(rank, [3], 150) == 0.0 and hit_rate(rank, [1], 150) == 1.0
    assert hit_rate_random(38, 6, 100) == pytest.approx(6 / 38)
    assert hit_rate_random(38, 6, 150) == pytest.approx(9 / 38)
    rng = np.random.default_rng(0)
    sims = [hit_rate(rng.permutation(38), [0, 1, 2, 3, 4, 5], 150) for _ in range(4000)]
    assert np.mean(sims) == pytest.approx(9 / 38, abs=0.01)


def test_ndcg_and_top_k() -> None:
    rank = np.array([2, 0, 1, 3])
    # true {0, 1}: positions 2 and 3 -> (1/log2 3 + 1/log2 4) / (1 + 1/log2 3)
    assert ndcg(rank, [0, 1]) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg(rank, [2]) == 1.0
    assert top_k_accuracy(rank, [0, 1], 1) == 0.0
    assert top_k_accuracy(rank, [0, 1], 3) == 1.0
    scores = attribution_scores([0.0, 0.2, 0.7, 0.1], [2])
    assert scores["top1"] == 1.0 and scores["top1_random"] == pytest.approx(0.25)


def test_parse_interpretation() -> None:
    assert parse_interpretation("15-20:1,3\n\n30-31:38\n") == [(15, 20, [0, 2]), (30, 31, [37])]


def test_vus_pr_and_auc_pr_match_tsb_ad() -> None:
    basic = pytest.importorskip(
        "TSB_AD.evaluation.basic_metrics", reason="tsb-ad not installed (pip install --no-deps tsb-ad==1.5)"
    )
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    for n, window in [(400, 20), (1500, 100), (250, 7)]:
        label = np.zeros(n, dtype=int)
        label[50:80] = 1
        label[200:204] = 1
        label[n - 9 :] = 1
        score = rng.normal(size=n) + 1.5 * label
        ref = basic.generate_curve(label, score, window)[-1]
        assert vus_pr(label, score, window) == pytest.approx(ref, rel=1e-9)
        assert auc_pr(label, score) == pytest.approx(average_precision_score(label, score))
        assert auc_pr(label, score) == pytest.approx(basic.basic_metricor().metric_PR(label, score))


def test_committed_yaml_equals_defaults() -> None:
    path = REPO / "deploy" / "config" / "evaluate.yaml"
    assert EvalConfig.model_validate(yaml.safe_load(path.read_text())) == EvalConfig()


def test_goal_comparison_respects_each_metric_direction() -> None:
    """F1 must reach its goal from below, false alarms from above; a missing or NaN figure is not judged."""
    from linewatch.models.evaluation.reference import REFERENCES, comparison_rows

    rows = {r[0]: r for r in comparison_rows("skab", {"f1": 0.9, "far": 9.0, "mar": float("nan")})}
    assert rows["f1"][3:] == ("≥ 0.88", "yes")
    assert rows["far"][3:] == ("≤ 8", "no")
    assert rows["mar"][4] == "-" and rows["nab_standard"][4] == "-"
    tep = {r[0]: r[4] for r in comparison_rows("tep", {"mean_detection_rate": 0.9, "false_alarm_rate": 0.01})}
    assert tep == {"mean_detection_rate": "yes", "false_alarm_rate": "yes"}  # the goal itself counts as met
    assert comparison_rows("unknown", {"f1": 1.0}) == []
    # Every referenced metric is one the protocols report.
    assert {r.metric for refs in REFERENCES.values() for r in refs} <= {
        "f1",
        "far",
        "mar",
        "nab_standard",
        "vus_pr",
        "hitrate_100",
        "hitrate_150",
        "mean_detection_rate",
        "false_alarm_rate",
    }


@pytest.mark.parametrize(
    "path", sorted((REPO / "deploy" / "config" / "evaluate-variants").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_evaluation_variant_loads_and_differs_from_the_committed_config(path: Path) -> None:
    """``make evaluate-variants`` must not fail half-way on a typo, and a variant equal to the default is noise."""
    from linewatch.models.evaluation.config import load_eval_config

    assert load_eval_config(path) != EvalConfig()


def test_report_tables_take_every_rows_keys_and_name_top_sensors() -> None:
    """TEP's normal file and its fault files carry different keys: the per-file table shows all of them."""
    from linewatch.models.evaluation.report import _table
    from linewatch.models.evaluation.result import top_sensors

    rows = {"d00_te.dat": {"false_alarm_rate": 0.01}, "d01.dat": {"detection_rate": 0.5, "named": ["a", "b"]}}
    table = _table(rows)
    assert table[0] == "| file | false_alarm_rate | detection_rate | named |"
    assert table[2] == "| d00_te.dat | 0.01 | - | - |" and table[3] == "| d01.dat | - | 0.5 | a, b |"
    assert top_sensors([0.1, 0.0, 0.7, 0.2], ["a", "b", "c", "d"]) == ["c", "d", "a"]
    assert top_sensors([0.0, 0.3], ["a", "b"]) == ["b"]  # a zero contribution names nobody


def test_any_alarm_adds_sensor_statuses_to_the_score_alarm() -> None:
    from linewatch.models.evaluation.pipeline import Scores

    score = np.array([0.5, 1.0, np.nan, 0.2])
    contributions = np.zeros((4, 1))
    with_health = Scores(score, contributions, np.array([False, False, True, True]))
    assert with_health.any_alarm().tolist() == [False, True, True, True]
    assert Scores(score, contributions).any_alarm().tolist() == [False, True, False, False]


def test_segment_contribution_weighs_shares_by_score_and_skips_unscored_rows() -> None:
    from linewatch.models.evaluation.pipeline import Scores

    scores = Scores(
        anomaly_score=np.array([1.0, np.nan, 2.0, 5.0]),
        contributions=np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0], [0.0, 1.0]]),
    )
    np.testing.assert_allclose(scores.segment_contribution(0, 3), [2.5, 0.5])  # row 3 is outside the segment
    np.testing.assert_allclose(scores.segment_contribution(1, 2), [0.0, 0.0])  # only an unscored row


def test_tep_root_cause_hits_and_their_random_expectation_by_hand() -> None:
    """Fault 6 (A feed loss) has two documented variables, XMEAS(1) and XMV(3); fault 2 has none."""
    from linewatch.models.evaluation.tep import random_root_cause_hits, root_cause_hits, sensor_names

    names = sensor_names()
    c = np.zeros(len(names))
    c[names.index("XMEAS(9)")], c[names.index("XMV(3)")], c[names.index("XMEAS(7)")] = 3.0, 2.0, 1.0
    assert root_cause_hits(c, names, 6) == (False, True)  # second of three
    c[names.index("XMV(3)")] = 5.0
    assert root_cause_hits(c, names, 6) == (True, True)
    c[names.index("XMV(3)")] = 0.5
    c[names.index("XMEAS(2)")] = 0.7  # pushes XMV(3) to fourth place: not named
    assert root_cause_hits(c, names, 6) == (False, False)
    assert root_cause_hits(c, names, 2) is None
    assert root_cause_hits(np.zeros(len(names)), names, 6) == (False, False)  # nothing contributes: nobody named
    top1, top3 = random_root_cause_hits(52, 6)
    assert top1 == pytest.approx(2 / 52)
    assert top3 == pytest.approx(1 - (50 * 49 * 48) / (52 * 51 * 50))  # 1 - P(all three miss both)
