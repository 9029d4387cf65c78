"""Every metric ``linewatch serve`` exports, on an injected registry (prefix ``linewatch_``, base units).

Label sets are bounded: ``asset`` and ``sensor`` are validated names from the store and the model, ``kind``,
``severity`` and ``status`` come from fixed sets. Per-sensor series exist only for sensors a model uses.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SEVERITIES = ("warning", "major", "critical")


class ServeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.failure_risk = Gauge(
            "linewatch_failure_risk",
            "Calibrated probability that the asset's behaviour is abnormal (0-1).",
            ["asset"],
            registry=registry,
        )
        self.anomaly_score = Gauge(
            "linewatch_anomaly_score",
            "Detector score divided by its threshold; 1 or more is anomalous.",
            ["asset"],
            registry=registry,
        )
        self.alert_active = Gauge(
            "linewatch_alert_active",
            "1 while an alert is active; kind is machine or sensor (sensor health).",
            ["asset", "kind"],
            registry=registry,
        )
        self.alert_severity = Gauge(
            "linewatch_alert_severity",
            "Severity of the active machine alert: 0 none, 1 warning, 2 major, 3 critical.",
            ["asset"],
            registry=registry,
        )
        self.alerts_raised = Counter(
            "linewatch_alerts_raised", "Alerts raised, by kind and severity.", ["kind", "severity"], registry=registry
        )
        self.contribution = Gauge(
            "linewatch_sensor_contribution_ratio",
            "Share of the anomaly the model attributes to the sensor (pca_t2q: its distance from normal; sums to 1).",
            ["asset", "sensor"],
            registry=registry,
        )
        self.expected = Gauge(
            "linewatch_sensor_expected_value",
            "What the model expected the sensor to read (engineering units).",
            ["asset", "sensor"],
            registry=registry,
        )
        self.actual = Gauge(
            "linewatch_sensor_value",
            "The sensor's latest value in the scored window (engineering units).",
            ["asset", "sensor"],
            registry=registry,
        )
        self.sensor_health = Gauge(
            "linewatch_sensor_health_status",
            "Sensor health code: 0 ok, 1 silent, 2 out_of_range, 3 stuck, 4 flatlined, 5 spiking, 6 drifting.",
            ["asset", "sensor"],
            registry=registry,
        )
        self.data_age = Gauge(
            "linewatch_data_age_seconds", "Age of the newest stored reading of the asset.", ["asset"], registry=registry
        )
        self.window_valid = Gauge(
            "linewatch_window_valid",
            "1 when the latest window had enough observed data to be scored.",
            ["asset"],
            registry=registry,
        )
        self.scoring_duration = Histogram(
            "linewatch_scoring_duration_seconds",
            "Time to read new data and score every asset once.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.model_info = Gauge(
            "linewatch_model_info",
            "The model in service per asset group (value 1; details in labels).",
            ["asset_group", "version", "detector", "trained_at"],
            registry=registry,
        )
        self.model_threshold_ratio = Gauge(
            "linewatch_model_threshold_training_ratio",
            "Alarm threshold of the model in service in units of its training windows' 99 % score; far above a "
            "few (over 10) means held-out hours unlike the trained ones raised it and weaker faults will not alarm.",
            ["asset_group"],
            registry=registry,
        )
        self.models_loaded = Gauge(
            "linewatch_models_loaded", "Asset groups with a model in service.", registry=registry
        )
        self.bundles_refused = Counter(
            "linewatch_bundles_refused",
            "Model bundles refused (tampered, incompatible or unreadable).",
            ["asset_group"],
            registry=registry,
        )
        self.model_reloads = Counter(
            "linewatch_model_reloads",
            "Champion models loaded after a promotion or rollback.",
            ["asset_group"],
            registry=registry,
        )
        self.store_files_read = Counter(
            "linewatch_store_files_read", "Raw store files read by the scorer.", registry=registry
        )
        self.store_files_skipped = Counter(
            "linewatch_store_files_skipped", "Unreadable raw store files skipped by the scorer.", registry=registry
        )
        self.assets_scored = Gauge(
            "linewatch_assets_scored", "Assets scored in the last scoring round.", registry=registry
        )
