"""``linewatch demo`` (what ``make run`` runs): the pipeline end to end on one machine, with nothing to set up.

It starts a private Mosquitto with the shipped production settings when the binary is installed (so the demo
never depends on, or disturbs, a broker someone else configured), runs the ingest daemon in-process, publishes
a simulated plant with injected faults, waits until every reading is durable, and shows what was stored.
Stages that later issues add (train, serve) extend this module.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from linewatch.core.config import LinewatchConfig, MetricsEndpoint, ModelsConfig, Subscription
from linewatch.core.lifecycle import StopEvent
from linewatch.ingest.labels import FaultLabel
from linewatch.ingest.simulate import Plant, PlantConfig
from linewatch.models.model import Model
from linewatch.serving.cli_common import make_console

console = make_console(stderr=True)

#: Broker settings for the private demo broker: the shipped production limits without persistence paths.
_SHIPPED_CONF = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "linewatch.conf"


@dataclass(frozen=True)
class DemoPlan:
    plant_seconds: float = 6 * 3600.0
    fault_free_s: float = 3 * 3600.0
    fault_rate_per_asset_per_hour: float = 1.0
    seed: int = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def private_broker(workdir: Path) -> Iterator[tuple[str, int]]:
    """A Mosquitto on a free loopback port with the shipped limits; stopped on exit."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if _SHIPPED_CONF.exists():
        keep = ("max_queued", "max_inflight", "max_packet_size")
        lines += [ln for ln in _SHIPPED_CONF.read_text().splitlines() if ln.startswith(keep)]
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    with (workdir / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private mosquitto did not start: {(workdir / 'mosquitto.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(10)


def demo_config(cfg: LinewatchConfig, host: str, port: int, root: Path) -> LinewatchConfig:
    """The user's config, pointed at the demo broker and data directory, with both JSON topic shapes."""
    subs = [
        Subscription(topic="plant/+/+/+", template="plant/{site}/{asset}/{sensor}", decoder="json_single"),
        Subscription(topic="plant/+/+", template="plant/{site}/{asset}", decoder="json_record"),
    ]
    ingest = cfg.ingest.model_copy(update={"subscriptions": subs, "metrics": MetricsEndpoint(host="127.0.0.1", port=0)})
    mqtt = cfg.mqtt.model_copy(update={"host": host, "port": port, "client_id": "linewatch-demo-ingest"})
    storage = cfg.storage.model_copy(update={"root": root})
    base = cfg.models.asset_groups[0]
    groups = [
        base.model_copy(update={"name": name, "assets": [pattern]})
        for name, pattern in (("pumps", "pump-*"), ("compressors", "compressor-*"), ("presses", "press-*"))
    ]
    models = ModelsConfig(asset_groups=groups, keep_versions=cfg.models.keep_versions)
    return cfg.model_copy(update={"mqtt": mqtt, "ingest": ingest, "storage": storage, "models": models})


def run_demo(cfg: LinewatchConfig, plan: DemoPlan | None = None, use_private_broker: bool | None = None) -> int:
    """Run the demo; returns a process exit code."""
    from linewatch.ingest.daemon import IngestDaemon
    from linewatch.ingest.labels import write_labels
    from linewatch.serving.cli_data import backfill_start, print_store_summary, publish_with_progress
    from linewatch.serving.cli_report import write_store_reports

    plan = plan or DemoPlan()
    root = Path(cfg.home) / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if use_private_broker is None:
        use_private_broker = shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()

    with contextlib.ExitStack() as stack:
        if use_private_broker:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="linewatch-demo-")))
            host, port = stack.enter_context(private_broker(workdir))
            console.print(f"[bold]1. broker[/bold]: private Mosquitto on {host}:{port} with deploy/mosquitto limits")
        else:
            host, port = cfg.mqtt.host, cfg.mqtt.port
            if not _port_open(host, port):
                console.print(f"[red]no MQTT broker at {host}:{port} and no mosquitto binary to start one[/red]")
                return 1
            console.print(f"[bold]1. broker[/bold]: configured broker {host}:{port}")

        dcfg = demo_config(cfg, host, port, root)
        stop = StopEvent()
        daemon = IngestDaemon(dcfg, stop=stop)
        thread = threading.Thread(target=daemon.run, name="demo-ingest", daemon=True)
        thread.start()
        if not daemon.source.wait_connected(15):
            console.print("[red]ingest could not connect to the broker[/red]")
            stop.set("demo failed")
            thread.join(10)
            return 1
        assert daemon.http is not None
        console.print(
            f"[bold]2. ingest[/bold]: running; metrics at http://127.0.0.1:{daemon.http.port}/metrics, data in {root}"
        )

        plant_cfg = PlantConfig(
            seed=plan.seed,
            fault_free_s=plan.fault_free_s,
            fault_rate_per_asset_per_hour=plan.fault_rate_per_asset_per_hour,
        )
        plant = Plant(plant_cfg)
        start = backfill_start(datetime.now(UTC).replace(microsecond=0), plan.plant_seconds, 0)
        console.print(
            f"[bold]3. simulate[/bold]: {len(plant_cfg.assets)} assets x 6 sensors, "
            f"{plan.plant_seconds / 3600:g} h of plant time at 1 s cadence, ending now, with injected faults"
        )
        steps = int(plan.plant_seconds / plant_cfg.cadence_s) * len(plant_cfg.assets)
        # The run continues until it has caught up with the wall clock (publishing takes a while), so the
        # data ends "now" and the serving step below sees a live plant.
        published = publish_with_progress(
            dcfg,
            _until_now(plant.iter_steps(start, plan.plant_seconds + 600)),
            total_steps=steps,
            speed=0,
            fmt="record",
            topic_prefix="plant/demo",
            what="publish",
            client_id="linewatch-demo-simulate",
        )
        end = published.last_ts or start + timedelta(seconds=plan.plant_seconds)
        labels = plant.schedule(start, (end - start).total_seconds())
        write_labels(root / "labels.csv", labels)
        deadline = time.monotonic() + 60
        while daemon.processed_messages < published.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set("demo finished")
        thread.join(30)
        console.print("[bold]4. stored[/bold]: every acknowledged reading is on disk; what the store holds:")
        print_store_summary(root)
        console.print(f"injected faults (ground truth) in {root / 'labels.csv'}:")
        for label in labels:
            console.print(
                f"  {label.asset:<14} {label.kind:<13} {label.fault:<13} {label.start:%H:%M:%S}-{label.end:%H:%M:%S}"
                f"  sensors: {', '.join(label.sensors)}"
            )
        models = _train(dcfg, root, labels)
        console.print(
            "[bold]5b. data report[/bold]: every sensor's readings and distribution against the range its model was "
            "trained on (`linewatch store report`)"
        )
        span_h = (end - start).total_seconds() / 3600 + 1 / 60  # the run, to its last second
        write_store_reports(dcfg, list(dcfg.models.asset_groups), span_h, root / "reports")
        _score(models, root, labels)
        _serve(dcfg, lambda: _live_steps(plant, start, end))
        console.print(
            "the same parts run as daemons: `linewatch ingest`, `linewatch simulate`, `linewatch train`, "
            "`linewatch serve` (see README)."
        )
    return 0


def _until_now(
    steps: Iterator[tuple[datetime, str, dict[str, float]]],
) -> Iterator[tuple[datetime, str, dict[str, float]]]:
    for step in steps:
        if step[0] > datetime.now(UTC):
            return
        yield step


def _train(cfg: LinewatchConfig, root: Path, labels: list[FaultLabel]) -> dict[str, Model]:
    """Step 5: one model per asset group, trained on the stored data with the faults excluded."""
    from linewatch.models.registry import Registry
    from linewatch.models.train import train_group

    registry = Registry(root / "models")
    models: dict[str, Model] = {}
    console.print("[bold]5. train[/bold]: one model per asset group (faults in labels.csv are not trained on)")
    console.print("  (on the hours just simulated; `linewatch train` warns below 3 days, the least a plant should use)")
    for group in cfg.models.asset_groups:
        said: list[str] = []
        report = train_group(root, group, registry, labels=labels, say=said.append)
        m = report.metrics
        console.print(
            f"  {group.name:<12} {report.version}  {int(m['train_windows']):>5} training windows, "
            f"held-out false-alarm rate {m['false_alarm_rate']:.4f}; {report.decision}"
        )
        for line in said:  # a threshold raised by held-out hours unlike the trained ones (linewatch.models.shift)
            if "held-out hours differ" in line:
                console.print(f"    {line}", markup=False, highlight=False)
        model = Model.from_bundle(*registry.load_champion(group.name))
        for asset in report.assets:
            models[asset] = model
    return models


def _score(models: dict[str, Model], root: Path, labels: list[FaultLabel]) -> None:
    """Step 6: score the whole run as serving would and say, per injected fault, what an operator saw."""
    from linewatch.ingest.reader import scan_readings
    from linewatch.models.simeval import evaluate

    readings = scan_readings(root).collect()
    result = evaluate(models, readings, labels, stride_steps=10)
    console.print("[bold]6. score[/bold]: every 10 s of the run scored with the bundled preprocessing and model")
    for fault in result.per_fault:
        seen = "machine alert" if fault["machine_alert"] else "sensor alert" if fault["sensor_alert"] else "missed"
        console.print(
            f"  {fault['asset']:<14} {fault['fault']:<13} -> {seen:<13} root cause named: {fault['named_sensor']}"
            f"  (injected: {', '.join(fault['true_sensors'])})"
        )
    summary = result.summary()
    console.print(f"  machine alerts not explained by any injected fault: {int(summary['false_machine_alerts'])}")
    for alert in result.unexplained:
        console.print(
            f"    {alert['asset']:<14} from {alert['start'][11:19]} for {alert['duration_s']:.0f} s, peak score "
            f"{alert['peak_score']:.2f}, named first: {alert['named_sensor']}"
        )


def _live_steps(plant: Plant, start: datetime, end: datetime) -> Iterator[tuple[datetime, str, dict[str, float]]]:
    """The plant after ``end``: caught up to the wall clock at once, then one step per second."""
    for step in plant.iter_steps(start, None):
        if step[0] <= end:
            continue
        delay = (step[0] - datetime.now(UTC)).total_seconds()
        if delay > 0:
            time.sleep(delay)
        yield step


def pending_alerts(page: str) -> list[str]:
    """Assets whose machine score is at or over 1 on a scraped metrics page while their machine alert is not
    (yet) active: the alert policy waits ``raise_after_s`` before it raises."""
    from prometheus_client.parser import text_string_to_metric_families

    score: dict[str, float] = {}
    active: dict[str, float] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            asset = sample.labels.get("asset")
            if asset is None:
                continue
            if sample.name == "linewatch_anomaly_score":
                score[asset] = sample.value
            elif sample.name == "linewatch_alert_active" and sample.labels.get("kind") == "machine":
                active[asset] = sample.value
    return sorted(a for a, s in score.items() if s >= 1.0 and active.get(a, 0.0) < 1.0)


def _serve(cfg: LinewatchConfig, live: Callable[[], Iterator[tuple[datetime, str, dict[str, float]]]]) -> None:
    """Step 7: the scoring daemon for a few seconds on the live plant, and what Prometheus would scrape."""
    import urllib.request

    from linewatch.ingest.daemon import IngestDaemon
    from linewatch.ingest.publish import publish_stream
    from linewatch.serving.daemon import ServeDaemon

    serve_cfg = cfg.model_copy(
        update={"serve": cfg.serve.model_copy(update={"metrics": MetricsEndpoint(host="127.0.0.1", port=0)})}
    )
    stop = StopEvent()
    ingest = IngestDaemon(serve_cfg, stop=stop)
    ingest_thread = threading.Thread(target=ingest.run, name="demo-ingest-live", daemon=True)
    ingest_thread.start()
    mqtt = cfg.mqtt
    publisher = threading.Thread(
        target=publish_stream,
        kwargs={
            "steps": live(),
            "host": mqtt.host,
            "port": mqtt.port,
            "fmt": "record",
            "speed": 0,
            "topic_prefix": "plant/demo",
            "stop": stop,
            "client_id": "linewatch-demo-live",
        },
        daemon=True,
    )
    publisher.start()
    daemon = ServeDaemon(serve_cfg, stop=stop)
    thread = threading.Thread(target=daemon.run, name="demo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while (daemon.http is None or not daemon.scorer.groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(8)
    assert daemon.http is not None
    url = f"http://127.0.0.1:{daemon.http.port}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    # An asset over the threshold raises its alert only after raise_after_s of it: wait that long (once) so
    # the scrape shows the alert the score announces, instead of a score of 10 next to "no alert".
    page = scrape()
    raise_after = cfg.serve.alerts.raise_after_s
    waiting = pending_alerts(page)
    if waiting:
        console.print(
            f"  {', '.join(waiting)} over the threshold: an alert is raised once the score stays at or over 1 for "
            f"{raise_after:g} s (serve.alerts.raise_after_s); waiting for it"
        )
        deadline = time.monotonic() + raise_after + 10
        while pending_alerts(page) and time.monotonic() < deadline:
            time.sleep(1)
            page = scrape()
    stop.set("demo finished")
    # Every client leaves before the private broker stops, so the live publisher does not log a broker
    # disconnect (with "messages will be resent") as the demo's last line.
    for worker in (thread, publisher, ingest_thread):
        worker.join(15)
    wanted = ("linewatch_failure_risk{", "linewatch_anomaly_score{", "linewatch_alert_active{", "linewatch_model_info{")
    console.print(
        f"[bold]7. serve[/bold]: the plant keeps running live; serve scores every asset each second. "
        f"A few lines of {url}:"
    )
    for line in page.splitlines():
        if line.startswith(wanted):
            console.print(f"  {line}")
