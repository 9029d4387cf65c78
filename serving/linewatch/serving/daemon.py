"""``linewatch serve``: score every asset on a fixed interval and export the results to Prometheus.

One stop event; the loop's only sleep is ``stop.wait``. Start-up: metrics server, models, backfill from the
store (scores at once), alert publisher. Shutdown reverses it. Model promotions and rollbacks are picked up by
polling the registry's champion pointer: a new bundle is loaded and validated beside the running one and
swapped in between two ticks, so no scrape ever sees a missing model.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry

from linewatch.core.config import LinewatchConfig
from linewatch.core.http import MetricsServer
from linewatch.core.lifecycle import StopEvent
from linewatch.serving.alert_publish import AlertPublisher
from linewatch.serving.metrics import ServeMetrics
from linewatch.serving.scorer import Scorer

log = logging.getLogger(__name__)


class ServeDaemon:
    def __init__(
        self, cfg: LinewatchConfig, *, stop: StopEvent | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop or StopEvent()
        self.registry = registry or CollectorRegistry()
        self.metrics = ServeMetrics(self.registry)
        self.publisher: AlertPublisher | None = None
        self.scorer = Scorer(cfg, self.metrics)
        self.http: MetricsServer | None = None
        self._alive = False
        self.started = False  # past start-up: the first scoring round is under way

    def healthy(self) -> tuple[bool, str]:
        return (True, "ok") if self._alive else (False, "scoring loop not running")

    def ready(self) -> tuple[bool, str]:
        return self.scorer.ready(self.cfg.serve.stale_after_s)

    def _start_publisher(self) -> None:
        if not self.cfg.serve.publish_alerts:
            return
        mqtt = self.cfg.mqtt
        try:
            self.publisher = AlertPublisher(
                mqtt.host,
                mqtt.port,
                client_id=self.cfg.serve.client_id,
                topic_prefix=self.cfg.serve.alert_topic_prefix,
                availability_topic=f"{self.cfg.serve.alert_topic_prefix}/_status/{self.cfg.serve.client_id}",
                username=mqtt.username,
                password=mqtt.resolved_password() if mqtt.username is not None else None,
                tls=mqtt.tls if mqtt.tls.enabled else None,
            )
        except Exception as exc:  # alerts over MQTT are an extra: metrics keep flowing without them
            log.error("alert publishing disabled: %s", exc)
            self.publisher = None
            return
        self.publisher.start()
        self.scorer.publish = self.publisher.publish
        self.scorer.publish_state = self.publisher.publish_state

    def run(self) -> None:
        serve = self.cfg.serve
        self.http = MetricsServer(
            serve.metrics.host, serve.metrics.port, self.registry, healthy=self.healthy, ready=self.ready
        ).start()
        self._alive = True
        try:
            self.scorer.refresh_models()
            self.scorer.backfill()
            self._start_publisher()
            log.info("serving %d asset groups every %.2f s", len(self.scorer.groups), serve.interval_s)
            self.started = True
            next_reload = time.monotonic() + serve.reload_check_s
            next_tick = time.monotonic()
            while not self.stop_event.is_set():
                try:
                    self.scorer.tick()
                except Exception:  # one bad tick (a file vanished, a model error) must not stop the service
                    log.exception("scoring round failed; continuing")
                now = time.monotonic()
                if now >= next_reload:
                    self.scorer.refresh_models()
                    next_reload = now + serve.reload_check_s
                next_tick += serve.interval_s
                if next_tick < now:  # overloaded: skip missed ticks instead of bursting
                    next_tick = now
                self.stop_event.wait(max(0.0, next_tick - time.monotonic()))
        finally:
            self._alive = False
            if self.publisher is not None:
                self.publisher.close()
            self.http.stop()
            log.info("serve stopped (%s)", self.stop_event.reason)
