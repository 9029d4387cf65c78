"""The scoring loop's logic: models per asset group, hot reload, incremental data, one batch per group.

Per tick: new store files -> per-asset ring buffers (model cadence) -> the latest window of every asset of a
group scored in one detector call -> alert policy -> metrics and alert transitions. Pure enough to drive from a
test without sockets: the publisher and the clock are injected.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from linewatch.core.config import AlertConfig, AssetGroupConfig, LinewatchConfig
from linewatch.models import detectors as _detectors  # noqa: F401  (registers every detector)
from linewatch.models.bundle import BundleError
from linewatch.models.health import STATUS_NAMES
from linewatch.models.model import Model, ModelMismatchError
from linewatch.models.registry import Registry, RegistryError
from linewatch.serving.alerts import AlertPolicy, AlertPolicyConfig, AlertState, Transition
from linewatch.serving.buffers import BufferSet, capacity_for
from linewatch.serving.follower import StoreFollower
from linewatch.serving.lookback import Lookback
from linewatch.serving.metrics import SEVERITIES, ServeMetrics

log = logging.getLogger(__name__)

Publish = Callable[[Transition], None]


def policy_config(alerts: AlertConfig) -> AlertPolicyConfig:
    return AlertPolicyConfig(
        raise_after_s=alerts.raise_after_s,
        clear_below=alerts.clear_below,
        clear_after_s=alerts.clear_after_s,
        cooldown_s=alerts.cooldown_s,
        severities=(("warning", 0.0), ("major", alerts.major_risk), ("critical", alerts.critical_risk)),
        sensor_raise_after_s=alerts.sensor_raise_after_s,
        sensor_clear_after_s=alerts.sensor_clear_after_s,
    )


@dataclass
class GroupRuntime:
    """One asset group in service: its model, the bundle digest it came from, buffers and alert state."""

    config: AssetGroupConfig
    model: Model
    digest: str
    buffers: BufferSet
    assets: set[str] = field(default_factory=set)
    policies: dict[str, AlertPolicy] = field(default_factory=dict)
    lookback: Lookback = field(init=False)

    def __post_init__(self) -> None:
        self.lookback = Lookback(self.buffers, self.model.preprocessor)


@dataclass(frozen=True, slots=True)
class _AssetGauges:
    """One asset's gauge children, resolved once: ``labels()`` costs a lock and a dict lookup per call, which at
    1,000 assets x 8 sensors is ~40,000 calls, a tenth of a second, every tick (prometheus-client's advice is to
    keep the child). Never stale: serving does not remove per-asset series."""

    failure_risk: Any
    anomaly_score: Any
    window_valid: Any
    machine_alert: Any
    sensor_alert: Any
    severity: Any


@dataclass(frozen=True, slots=True)
class _SensorGauges:
    contribution: Any
    expected: Any
    actual: Any
    health: Any


class Scorer:
    def __init__(
        self,
        cfg: LinewatchConfig,
        metrics: ServeMetrics,
        *,
        publish: Publish | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.publish = publish
        self.publish_state: Callable[[AlertState], None] | None = None
        self.now = now
        self.root = Path(cfg.data_root)
        self.registry = Registry(self.root / "models")
        self.groups: dict[str, GroupRuntime] = {}
        self.follower = StoreFollower(self.root)
        self._policy = policy_config(cfg.serve.alerts)
        self._refused: dict[str, str] = {}  # group -> digest refused (not retried until it changes)
        self.newest_us: dict[str, int] = {}
        self._asset_gauges: dict[str, _AssetGauges] = {}
        self._sensor_gauges: dict[tuple[str, str], _SensorGauges] = {}

    # -- models ----------------------------------------------------------------------------------------
    def group_of(self, asset: str) -> str | None:
        group = self.cfg.models.group_of(asset)
        return None if group is None else group.name

    def refresh_models(self) -> None:
        """Load each group's champion when it changed; a refused bundle leaves the running model in place."""
        for group in self.cfg.models.asset_groups:
            try:
                found = self.registry.champion_path(group.name)
            except RegistryError as exc:
                log.error("asset group %s: %s", group.name, exc)
                continue
            if found is None:
                continue
            path, digest = found
            current = self.groups.get(group.name)
            if (current is not None and current.digest == digest) or self._refused.get(group.name) == digest:
                continue
            try:
                manifest, tensors, version = self.registry.load_champion(group.name)
                model = Model.from_bundle(manifest, tensors, version)
                # The data must carry every sensor the model needs; with no data yet there is nothing to check.
                members = [a for a in self.follower.assets() if self.group_of(a) == group.name]
                seen = self.follower.sensors(members)
                if seen:
                    model.check_sensors(sorted(seen))
            except (BundleError, RegistryError, ModelMismatchError, OSError, ValueError) as exc:
                self._refused[group.name] = digest
                self.metrics.bundles_refused.labels(asset_group=group.name).inc()
                log.error("asset group %s: refusing model %s: %s", group.name, path.name, exc)
                continue
            self._install(group, model, digest, current)

    def _install(self, group: AssetGroupConfig, model: Model, digest: str, current: GroupRuntime | None) -> None:
        spec = model.preprocessor.spec
        buffers = BufferSet(list(model.sensors), spec.cadence_s, capacity_for(spec))
        runtime = GroupRuntime(group, model, digest, buffers)
        if current is not None:
            runtime.assets = set(current.assets)
            runtime.policies = current.policies
            self.metrics.model_info.remove(*self._info_labels(current))
        self.groups[group.name] = runtime
        self.metrics.model_info.labels(*self._info_labels(runtime)).set(1)
        figures = model.manifest.get("metrics")
        ratio = figures.get("threshold_over_training_line") if isinstance(figures, dict) else None
        if isinstance(ratio, int | float) and not isinstance(ratio, bool) and math.isfinite(ratio):
            self.metrics.model_threshold_ratio.labels(asset_group=group.name).set(float(ratio))
        else:  # a bundle saved before the figure existed: no series rather than a stale one
            self._drop_threshold_ratio(group.name)
        self.metrics.models_loaded.set(len(self.groups))
        self.metrics.model_reloads.labels(asset_group=group.name).inc()
        log.info("asset group %s: serving model %s (%s)", group.name, model.version, model.detector.name)
        if spec.daily and spec.timezone != group.window.timezone:  # the bundle's clock wins: it was trained on it
            log.warning(
                "asset group %s: model %s reads the time of day on %s, the configuration says %s; "
                "retrain the group to change it",
                group.name,
                model.version,
                spec.timezone,
                group.window.timezone,
            )
        if current is not None:
            self._refill(runtime)

    def _drop_threshold_ratio(self, group: str) -> None:
        with contextlib.suppress(KeyError):  # no series for this group
            self.metrics.model_threshold_ratio.remove(group)

    @staticmethod
    def _info_labels(runtime: GroupRuntime) -> tuple[str, str, str, str]:
        m = runtime.model
        return (runtime.config.name, m.version, m.detector.name, str(m.manifest.get("created_at", ""))[:19])

    def _window_seconds(self, runtime: GroupRuntime) -> float:
        spec = runtime.model.preprocessor.spec
        return (spec.length + spec.history_steps + spec.max_gap_steps + 2) * spec.cadence_s

    def _refill(self, runtime: GroupRuntime) -> None:
        """A swapped model gets fresh buffers: fill them from the store so scoring continues at once."""
        frame = self.follower.recent(self._window_seconds(runtime), sorted(runtime.assets))
        if frame.height:
            runtime.buffers.add(frame, now_us=int(self.now() * 1e6))

    # -- data ------------------------------------------------------------------------------------------
    def backfill(self) -> None:
        seconds = max((self._window_seconds(rt) for rt in self.groups.values()), default=0.0)
        if seconds > 0:
            self._route(self.follower.backfill(seconds))
        self._newest_from_store()
        self._check_loaded()

    def _check_loaded(self) -> None:
        """Models loaded before any data was read are checked against it now (sensors the data lacks)."""
        for name, runtime in list(self.groups.items()):
            members = [a for a in self.follower.assets() if self.group_of(a) == name]
            seen = self.follower.sensors(members)
            missing = [s for s in runtime.model.sensors if seen and s not in seen]
            if missing:
                log.error(
                    "asset group %s: refusing model %s: the data has no sensors %s",
                    name,
                    runtime.model.version,
                    ", ".join(missing),
                )
                self.metrics.bundles_refused.labels(asset_group=name).inc()
                self.metrics.model_info.remove(*self._info_labels(runtime))
                self._drop_threshold_ratio(name)
                self._refused[name] = runtime.digest
                del self.groups[name]
        self.metrics.models_loaded.set(len(self.groups))

    def _newest_from_store(self) -> None:
        """Data age at start-up, even for assets whose newest data is older than a window: read the newest
        file of each asset's latest day (one small file per asset)."""
        import polars as pl

        from linewatch.ingest.reader import list_files

        since = datetime.fromtimestamp(self.now(), UTC) - timedelta(days=2)
        for asset in self.follower.assets():
            if asset in self.newest_us:
                continue
            files = list_files(self.root, [asset], since)
            if not files:
                continue
            newest = max(files, key=lambda f: f.stat().st_mtime)
            try:
                ts = pl.read_parquet(newest, columns=["ts"])["ts"].max()
            except Exception as exc:  # a corrupt file is skipped here; the follower reports it
                log.debug("cannot read %s for the data age: %s", newest, exc)
                continue
            if isinstance(ts, datetime):
                self.newest_us[asset] = int(ts.timestamp() * 1e6)

    def _route(self, frame: object) -> None:
        import polars as pl

        assert isinstance(frame, pl.DataFrame)
        if frame.height == 0:
            return
        newest = frame.group_by("asset").agg(pl.col("ts").max().dt.epoch("us"))
        for asset, ts_us in newest.iter_rows():
            self.newest_us[asset] = max(self.newest_us.get(asset, 0), int(ts_us))
        for asset in newest["asset"].to_list():
            group = self.group_of(asset)
            if group is not None and group in self.groups:
                self.groups[group].assets.add(asset)
        for runtime in self.groups.values():
            mine = frame.filter(pl.col("asset").is_in(list(runtime.assets)))
            if mine.height:
                runtime.buffers.add(mine, now_us=int(self.now() * 1e6))

    # -- one tick --------------------------------------------------------------------------------------
    def tick(self) -> int:
        """Read new data, score every asset once, update metrics and alerts; returns assets scored."""
        started = time.perf_counter()
        result = self.follower.poll()
        self.metrics.store_files_read.inc(result.files_read)
        if result.files_skipped:
            self.metrics.store_files_skipped.inc(len(result.files_skipped))
        self._route(result.frame)
        for asset in self.follower.assets():  # silent assets are scored too: their silence is the news
            group = self.group_of(asset)
            if group is not None and group in self.groups:
                self.groups[group].assets.add(asset)
        now = self.now()
        scored = 0
        for runtime in self.groups.values():
            scored += self._score_group(runtime, now)
        for asset, ts_us in self.newest_us.items():
            self.metrics.data_age.labels(asset=asset).set(max(0.0, now - ts_us / 1e6))
        self.metrics.assets_scored.set(scored)
        self.metrics.scoring_duration.observe(time.perf_counter() - started)
        return scored

    def _gauges(self, asset: str) -> _AssetGauges:
        gauges = self._asset_gauges.get(asset)
        if gauges is None:
            m = self.metrics
            gauges = self._asset_gauges[asset] = _AssetGauges(
                m.failure_risk.labels(asset=asset),
                m.anomaly_score.labels(asset=asset),
                m.window_valid.labels(asset=asset),
                m.alert_active.labels(asset=asset, kind="machine"),
                m.alert_active.labels(asset=asset, kind="sensor"),
                m.alert_severity.labels(asset=asset),
            )
        return gauges

    def _sensor_gauge(self, asset: str, sensor: str) -> _SensorGauges:
        gauges = self._sensor_gauges.get((asset, sensor))
        if gauges is None:
            m = self.metrics
            gauges = self._sensor_gauges[(asset, sensor)] = _SensorGauges(
                m.contribution.labels(asset=asset, sensor=sensor),
                m.expected.labels(asset=asset, sensor=sensor),
                m.actual.labels(asset=asset, sensor=sensor),
                m.sensor_health.labels(asset=asset, sensor=sensor),
            )
        return gauges

    def _score_group(self, runtime: GroupRuntime, now: float) -> int:
        assets = sorted(runtime.assets)
        if not assets:
            return 0
        model = runtime.model
        spec = model.preprocessor.spec
        # Readings reach the store up to one ingest flush (plus one of our ticks) after they were taken, so the
        # newest window ends that much before now: otherwise its last bins would always look silent.
        lag_s = self.cfg.ingest.flush_interval_s + self.cfg.serve.interval_s
        windows, (_, observed, end_ts) = runtime.lookback.windows(assets, now_us=int((now - lag_s) * 1e6))
        out = model.score(windows)
        # A window whose newest steps hold no reading at all (beyond the fill bound) says nothing about the
        # machine now: its score would describe filled-in medians. Treat it as invalid; health reports silence.
        recent = observed[-(spec.max_gap_steps + 1) :].any(axis=(0, 2))  # time first
        valid = out.valid & recent
        contributions, expected = out.contributions.tolist(), out.expected.tolist()
        actuals, health = out.actual.tolist(), out.health.tolist()
        for i, asset in enumerate(assets):
            # A window with too little data has no meaningful score: export NaN (a gap on dashboards, false in
            # alert expressions) and let window_valid and the sensor health say why.
            risk = float(out.failure_risk[i]) if valid[i] else float("nan")
            score = float(out.anomaly_score[i]) if valid[i] else float("nan")
            gauges = self._gauges(asset)
            gauges.failure_risk.set(risk)
            gauges.anomaly_score.set(score)
            gauges.window_valid.set(float(valid[i]))
            unhealthy: dict[str, str] = {}
            for j, sensor in enumerate(model.sensors):
                child = self._sensor_gauge(asset, sensor)
                child.contribution.set(contributions[i][j])
                child.expected.set(expected[i][j])
                actual = actuals[i][j]
                if math.isfinite(actual):
                    child.actual.set(actual)
                code = int(health[i][j])
                child.health.set(code)
                if code:
                    unhealthy[sensor] = STATUS_NAMES[code]
            top = model.sensors[int(np.argmax(out.contributions[i]))]
            policy = runtime.policies.get(asset)
            if policy is None:
                policy = runtime.policies[asset] = AlertPolicy(asset, self._policy)
                if self.publish_state is not None:  # replace whatever state an earlier run left retained
                    self.publish_state(policy.state())
            ts = float(end_ts[i]) / 1e6
            for transition in policy.update(ts, score, risk, unhealthy, top, bool(valid[i])):
                self._on_transition(transition)
            gauges.machine_alert.set(float(policy.active))
            gauges.sensor_alert.set(float(policy.sensor_active))
            level = SEVERITIES.index(policy.severity) + 1 if policy.active and policy.severity in SEVERITIES else 0
            gauges.severity.set(level)
        return len(assets)

    def _on_transition(self, transition: Transition) -> None:
        doc = transition.to_dict()
        log.warning("alert %s", doc)
        if doc.get("event") == "raised":
            self.metrics.alerts_raised.labels(kind=str(doc["kind"]), severity=str(doc.get("severity") or "none")).inc()
        if self.publish is not None:
            try:
                self.publish(transition)
            except Exception:  # publishing must never stop scoring
                log.exception("could not publish alert transition")

    def ready(self, max_age_s: float) -> tuple[bool, str]:
        if not self.groups:
            return False, "no model loaded (train one: linewatch train)"
        if not (self.root / "raw").is_dir():
            return False, f"store not readable at {self.root / 'raw'}"
        if not self.newest_us:
            return False, "no data yet"
        age = datetime.now(UTC).timestamp() - max(self.newest_us.values()) / 1e6
        if age > max_age_s:
            return False, f"data not fresh: newest reading {age:.0f} s old"
        return True, "ok"
