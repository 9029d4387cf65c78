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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from linewatch.core.config import LinewatchConfig, MetricsEndpoint, Subscription
from linewatch.core.lifecycle import StopEvent
from linewatch.serving.cli_common import make_console

console = make_console(stderr=True)

#: Broker settings for the private demo broker: the shipped production limits without persistence paths.
_SHIPPED_CONF = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "linewatch.conf"


@dataclass(frozen=True)
class DemoPlan:
    plant_seconds: float = 4 * 3600.0
    fault_free_s: float = 2 * 3600.0
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
    return cfg.model_copy(update={"mqtt": mqtt, "ingest": ingest, "storage": storage})


def run_demo(cfg: LinewatchConfig, plan: DemoPlan | None = None, use_private_broker: bool | None = None) -> int:
    """Run the demo; returns a process exit code."""
    from linewatch.ingest.daemon import IngestDaemon
    from linewatch.ingest.labels import write_labels
    from linewatch.ingest.simulate import Plant, PlantConfig
    from linewatch.serving.cli_data import backfill_start, print_store_summary, publish_with_progress

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
        labels = plant.schedule(start, plan.plant_seconds)
        write_labels(root / "labels.csv", labels)
        console.print(
            f"[bold]3. simulate[/bold]: {len(plant_cfg.assets)} assets x 6 sensors, "
            f"{plan.plant_seconds / 3600:g} h of plant time at 1 s cadence, {len(labels)} injected faults"
        )
        steps = int(plan.plant_seconds / plant_cfg.cadence_s) * len(plant_cfg.assets)
        published = publish_with_progress(
            dcfg,
            plant.iter_steps(start, plan.plant_seconds),
            total_steps=steps,
            speed=0,
            fmt="record",
            topic_prefix="plant/demo",
            what="publish",
            client_id="linewatch-demo-simulate",
        )
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
        console.print(
            "next stages (train, serve with Prometheus metrics) are added by their issues; "
            "`linewatch ingest` and `linewatch simulate` run the same parts as daemons."
        )
    return 0
