"""The demo's live step reads its own metrics page: which assets are over the threshold without an alert yet."""

from __future__ import annotations

from linewatch.serving.demo import pending_alerts

PAGE = """\
# HELP linewatch_anomaly_score Calibrated anomaly score (1 = threshold).
# TYPE linewatch_anomaly_score gauge
linewatch_anomaly_score{asset="pump-01"} 0.08
linewatch_anomaly_score{asset="pump-02"} 11.86
linewatch_anomaly_score{asset="press-01"} 1.0
linewatch_anomaly_score{asset="compressor-01"} 2.5
# HELP linewatch_alert_active Whether an alert is active.
# TYPE linewatch_alert_active gauge
linewatch_alert_active{asset="pump-01",kind="machine"} 0.0
linewatch_alert_active{asset="pump-02",kind="machine"} 0.0
linewatch_alert_active{asset="pump-02",kind="sensor"} 1.0
linewatch_alert_active{asset="press-01",kind="machine"} 0.0
linewatch_alert_active{asset="compressor-01",kind="machine"} 1.0
"""


def test_an_asset_over_the_threshold_without_its_machine_alert_is_pending() -> None:
    # pump-02's sensor alert does not stand for the machine alert; compressor-01's machine alert is up; exactly 1
    # counts as over the threshold.
    assert pending_alerts(PAGE) == ["press-01", "pump-02"]


def test_nothing_is_pending_once_the_alerts_are_raised() -> None:
    raised = PAGE.replace(
        'linewatch_alert_active{asset="pump-02",kind="machine"} 0.0',
        'linewatch_alert_active{asset="pump-02",kind="machine"} 1.0',
    )
    raised = raised.replace(
        'linewatch_alert_active{asset="press-01",kind="machine"} 0.0',
        'linewatch_alert_active{asset="press-01",kind="machine"} 1.0',
    )
    assert pending_alerts(raised) == []
    assert pending_alerts("") == []
