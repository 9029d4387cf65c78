"""Ingest's MQTT options against real brokers: MQTT 3.1.1 with a password, last will, refused logins,
and several ingest processes sharing one subscription."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import polars as pl
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.integration.conftest import BrokerFactory, MosquittoBroker, free_port
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, metric_value, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSWORD = "s3cret-Pa55"


def _auth_broker(tmp: Path, factory: BrokerFactory) -> MosquittoBroker:
    passwd = tmp / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "lw", PASSWORD], check=True, capture_output=True)
    passwd.chmod(0o644)
    return factory(config_extra=[*SHIPPED_LIMITS, "allow_anonymous false", f"password_file {passwd}"])


def _client(broker: MosquittoBroker, **kw: object) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set("lw", PASSWORD)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _config(tmp: Path, broker: MosquittoBroker, **mqtt_keys: object) -> Path:
    path = write_config(tmp, broker)
    doc = yaml.safe_load(path.read_text())
    doc["mqtt"].update(mqtt_keys)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_mqtt311_password_file_last_will_and_no_secret_in_logs(
    tmp_path: Path, mosquitto_factory: BrokerFactory
) -> None:
    broker = _auth_broker(tmp_path, mosquitto_factory)
    secret = tmp_path / "mqtt_password"
    secret.write_text(PASSWORD + "\n")
    config = _config(tmp_path, broker, protocol="3.1.1", username="lw", password_file=str(secret), keepalive_s=5)
    status: list[str] = []
    watcher = _client(broker)
    watcher.on_message = lambda _c, _u, m: status.append(m.payload.decode())
    watcher.subscribe("linewatch/ingest/lw-test-ingest/status", qos=1)

    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    try:
        pub = _client(broker)
        now = datetime.now(UTC).isoformat()
        for i in range(50):
            pub.publish(f"plant/s/pump-01/t{i % 5}", json.dumps({"ts": now, "value": i}), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 20
        while metric_value(ingest.http("/metrics")[1], "linewatch_ingest_readings_total") < 50:
            assert time.monotonic() < deadline, ingest.log()[-2000:]
            time.sleep(0.2)
        assert "online" in status
        ingest.kill()  # no clean disconnect: the broker must publish the last will
        deadline = time.monotonic() + 20
        while status[-1:] != ["offline"]:
            assert time.monotonic() < deadline, f"no last will, saw {status}"
            time.sleep(0.2)
        assert PASSWORD not in ingest.log()
    finally:
        ingest.cleanup()
        watcher.loop_stop()


def test_refused_login_is_reported_not_fatal(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = _auth_broker(tmp_path, mosquitto_factory)
    config = _config(tmp_path, broker, username="lw", password="wrong-" + PASSWORD)
    ingest = IngestProcess(config, tmp_path / "ingest.log").start(wait_ready=False)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                page = ingest.http("/metrics")[1]
                refused = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in page.splitlines()
                    if line.startswith("linewatch_ingest_broker_connect_failures_total{")
                )
                if refused >= 1:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, ingest.log()[-2000:]
            time.sleep(0.2)
        code, body = ingest.http("/readyz")
        assert code == 503 and "not connected" in body
        assert metric_value(page, "linewatch_ingest_broker_connected") == 0
        assert ingest.proc is not None and ingest.proc.poll() is None  # still running, retrying with backoff
        assert PASSWORD not in ingest.log() and "refused" in ingest.log()
        code, _ = ingest.terminate()
        assert code == 0
    finally:
        ingest.cleanup()


def test_two_ingest_processes_share_one_subscription(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    procs = []
    for name in ("a", "b"):
        config = write_config(tmp_path / name, broker)
        doc = yaml.safe_load(config.read_text())
        doc["home"] = str(tmp_path / "shared-home")  # one store, written by both
        doc["mqtt"]["client_id"] = f"lw-ingest-{name}"
        doc["ingest"]["shared_group"] = "lw"
        doc["ingest"]["metrics"]["port"] = free_port()
        config.write_text(yaml.safe_dump(doc))
        procs.append(IngestProcess(config, tmp_path / f"{name}.log").start())
    try:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        t0 = datetime.now(UTC).timestamp() - 600
        infos = [
            pub.publish(f"plant/s/pump-{i % 3:02d}/v", json.dumps({"ts": t0 + i * 0.01, "value": i}), qos=1)
            for i in range(3000)
        ]
        for info in infos:
            info.wait_for_publish(10)
        stored = [0.0, 0.0]
        deadline = time.monotonic() + 30
        while sum(stored) < 3000:
            assert time.monotonic() < deadline, f"stored {stored}"
            stored = [metric_value(p.http("/metrics")[1], "linewatch_ingest_readings_total") for p in procs]
            time.sleep(0.2)
        assert sum(stored) == 3000 and min(stored) > 0, f"the stream was not split: {stored}"
        for p in procs:
            assert p.terminate()[0] == 0
        files = list((procs[0].data_root / "raw").rglob("*.parquet"))
        assert {f.name.split("-")[2] for f in files} == {"a", "b"}  # both writers' files, no name clash
        rows = pl.concat([pl.read_parquet(f) for f in files])
        assert rows.height == 3000 and rows.select("asset", "sensor", "ts").unique().height == 3000
    finally:
        for p in procs:
            p.cleanup()


def _certs(tmp: Path) -> dict[str, Path]:
    """A throw-away CA, a broker certificate for 127.0.0.1 and a client certificate (openssl)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=linewatch-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (tmp / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("broker", "127.0.0.1"), ("client", "lw-test-ingest")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        extra = ["-extfile", "san.cnf"] if name == "broker" else []
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *extra,
        )
    for key in tmp.glob("*.key"):
        key.chmod(0o644)
    return {n: tmp / n for n in ("ca.crt", "broker.crt", "broker.key", "client.crt", "client.key")}


def test_mutual_tls(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    certs = _certs(tmp_path)
    broker = mosquitto_factory(
        config_extra=[
            *SHIPPED_LIMITS,
            f"cafile {certs['ca.crt']}",
            f"certfile {certs['broker.crt']}",
            f"keyfile {certs['broker.key']}",
            "require_certificate true",
        ]
    )
    tls = {
        "enabled": True,
        "ca_file": str(certs["ca.crt"]),
        "cert_file": str(certs["client.crt"]),
        "key_file": str(certs["client.key"]),
    }
    ingest = IngestProcess(_config(tmp_path, broker, tls=tls), tmp_path / "ingest.log").start()
    try:
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        pub.tls_set(ca_certs=str(certs["ca.crt"]), certfile=str(certs["client.crt"]), keyfile=str(certs["client.key"]))
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        now = datetime.now(UTC).isoformat()
        pub.publish("plant/s/pump-01/temp", json.dumps({"ts": now, "value": 1.5}), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 20
        while metric_value(ingest.http("/metrics")[1], "linewatch_ingest_readings_total") < 1:
            assert time.monotonic() < deadline, ingest.log()[-2000:]
            time.sleep(0.2)
        pub.loop_stop()
        assert ingest.terminate()[0] == 0
    finally:
        ingest.cleanup()

    # Without a client certificate the broker refuses the TLS handshake; ingest keeps running and says so.
    tls_no_cert = {"enabled": True, "ca_file": str(certs["ca.crt"])}
    lonely = IngestProcess(_config(tmp_path / "nocert", broker, tls=tls_no_cert), tmp_path / "nocert.log")
    lonely.start(wait_ready=False)
    try:
        time.sleep(4)
        assert lonely.http("/readyz")[0] == 503
        assert lonely.proc is not None and lonely.proc.poll() is None
    finally:
        lonely.cleanup()
