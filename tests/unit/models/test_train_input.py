"""What training reads and refuses, without a store: sensor choice, the span's warnings and the window layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest

from linewatch.core.config import AssetGroupConfig, DetectorConfig
from linewatch.models.model import Model
from linewatch.models.train_input import (
    ADVISED_TRAINING_S,
    SLOW_INPUTS_MIN_SPAN_S,
    TrainingError,
    choose_sensors,
    group_spec,
    select_assets,
    warn_span,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
EXCLUDED = {"speed": "flat-lined 100% of the time (> 95%)"}


def _group(**kwargs: Any) -> AssetGroupConfig:
    return AssetGroupConfig(name="pumps", assets=["pump-*"], detector=DetectorConfig(name="pca_t2q"), **kwargs)


def _source(sensors: tuple[str, ...]) -> Model:
    return cast(Model, SimpleNamespace(sensors=sensors, group="pumps", version="v1"))


def _readings(span_s: float) -> pl.DataFrame:
    return pl.DataFrame({"ts": [START, START + timedelta(seconds=span_s)], "value": [1.0, 2.0]})


def test_every_usable_sensor_in_name_order_when_none_is_configured() -> None:
    assert choose_sensors(_group(), ["pressure", "flow"], EXCLUDED, None) == ["flow", "pressure"]


def test_configured_sensors_keep_their_order_and_an_unusable_one_is_refused_with_its_reason() -> None:
    assert choose_sensors(_group(sensors=["pressure", "flow"]), ["flow", "pressure"], {}, None) == ["pressure", "flow"]
    with pytest.raises(TrainingError, match=r"unusable or absent: speed .*flat-lined"):
        choose_sensors(_group(sensors=["flow", "speed"]), ["flow"], EXCLUDED, None)


def test_adapting_needs_every_sensor_of_the_source_and_says_why_one_is_missing() -> None:
    source = _source(("flow", "speed", "bearing_temp"))
    with pytest.raises(TrainingError, match=r"cannot adapt pumps/v1: .*speed: flat-lined.*bearing_temp: no readings"):
        choose_sensors(_group(), ["flow"], EXCLUDED, source)
    # The source's sensors, in the source's order, even where the group configures others.
    assert choose_sensors(_group(sensors=["flow"]), ["speed", "flow"], {}, _source(("speed", "flow"))) == [
        "speed",
        "flow",
    ]


def test_no_usable_sensor_is_refused() -> None:
    with pytest.raises(TrainingError, match="no usable sensors"):
        choose_sensors(_group(), [], EXCLUDED, None)


def test_short_history_is_warned_of_and_the_advised_span_is_not() -> None:
    said: list[str] = []
    assert warn_span(_group(), _readings(6 * 3600), None, said.append) == 6 * 3600
    assert len(said) == 1 and "spans 6.0 h, less than the advised 3 days" in said[0]
    said.clear()
    warn_span(_group(), _readings(ADVISED_TRAINING_S), None, said.append)
    assert said == []


def test_slow_inputs_wait_for_two_days_of_history_and_say_so() -> None:
    said: list[str] = []
    short = group_spec(_group(), SLOW_INPUTS_MIN_SPAN_S - 1, None, said.append)
    assert short.lag_s == 0.0 and not short.daily
    assert said and "no lag or time-of-day inputs" in said[0]
    said.clear()
    long = group_spec(_group(), SLOW_INPUTS_MIN_SPAN_S, None, said.append)
    assert long.lag_s == _group().window.lag_s > 0 and said == []


def test_assets_are_matched_by_shell_pattern() -> None:
    assert select_assets(["press-1", "pump-02", "pump-01"], ["pump-*"]) == ["pump-01", "pump-02"]
