"""Operator mistakes get one line naming the key, file or option and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from linewatch.serving.cli import app
from linewatch.serving.cli_common import errors_as_messages

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, nested groups included (typer ships its own click, so groups are duck-typed)."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if getattr(command, "commands", None):
            yield from _commands(command, (*prefix, name))


ALL_COMMANDS = sorted(_commands(typer.main.get_group(app)))


def test_the_command_walk_sees_nested_groups() -> None:
    assert {("simulate",), ("replay",), ("store", "summary"), ("models", "list"), ("config", "check")} <= set(
        ALL_COMMANDS
    )


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_help_renders(command: tuple[str, ...]) -> None:
    """Help text is rich markup: a stray ``[/x]`` in one option once crashed ``simulate --help``."""
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _linewatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script: daemons set up logging and signal handlers, so they get their own process."""
    exe = shutil.which("linewatch", path=str(Path(sys.executable).parent))
    assert exe, "the linewatch console script is not installed in this environment"
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
    return subprocess.run([exe, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=120)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out


def _flat(output: str) -> str:
    """Usage errors are drawn in a box that wraps long paths: compare the words only."""
    return " ".join(output.replace("│", " ").split())


# -- config check -------------------------------------------------------------------------------------------------


def test_misspelt_secret_key_never_echoes_its_value(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "mqtt: {username: bob, pasword: hunter2secret}\n")
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "mqtt.pasword:" in result.output and "value hidden" in result.output
    assert "hunter2secret" not in result.output


def test_whole_section_from_environment_is_reported_like_a_scalar(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check"], env={"LINEWATCH_MQTT__TLS": "x"})
    assert result.exit_code == 2
    _no_traceback(result.output)
    assert "mqtt.tls:" in result.output and "[from environment LINEWATCH_MQTT__TLS]" in result.output


def test_check_finds_files_that_do_not_exist(tmp_path: Path) -> None:
    (tmp_path / "rootfile").write_text("")
    cfg = _config(
        tmp_path,
        f"""storage: {{root: {tmp_path / "rootfile"}}}
mqtt:
  username: line
  password_file: {tmp_path / "no-password"}
  tls: {{enabled: true, ca_file: {tmp_path / "no-ca.pem"}}}
models:
  asset_groups:
    - name: pumps
      assets: ["pump-*"]
      training: {{labels_file: {tmp_path / "no-labels.csv"}}}
""",
    )
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    for key in (
        "storage.root:",
        "mqtt.password_file:",
        "mqtt.tls.ca_file:",
        "models.asset_groups.0.training.labels_file:",
    ):
        assert key in result.output


def test_check_notes_settings_nothing_uses_and_passes(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        f"""storage: {{root: {tmp_path / "data"}}}
mqtt:
  password_file: {tmp_path / "no-password"}
  tls: {{enabled: false, ca_file: {tmp_path / "no-ca.pem"}}}
""",
    )
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "note: mqtt.password_file: unused, because mqtt.username is not set" in result.output
    assert "note: mqtt.tls.ca_file: unused, because mqtt.tls.enabled is false" in result.output
    assert "OK:" in result.output


# -- daemons --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("daemon", ["ingest", "serve"])
def test_daemon_storage_root_that_is_a_file(tmp_path: Path, daemon: str) -> None:
    (tmp_path / "rootfile").write_text("")
    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'rootfile'}}}\n")
    out = _linewatch(daemon, "-c", str(cfg))
    assert out.returncode == 2
    _no_traceback(out.stderr)
    assert "storage.root:" in out.stderr


def test_ingest_missing_password_file(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'data'}}}\nmqtt: {{username: u, password_file: /nope}}\n")
    out = _linewatch("ingest", "-c", str(cfg))
    assert out.returncode == 2
    _no_traceback(out.stderr)
    assert "mqtt.password_file: /nope does not exist" in out.stderr


def test_ingest_unusable_ca_file_is_named(tmp_path: Path) -> None:
    """ssl says "no certificate found" without the file; the error names key and path."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    cfg = _config(
        tmp_path,
        f"storage: {{root: {tmp_path / 'data'}}}\nmqtt: {{tls: {{enabled: true, ca_file: {ca}}}}}\n"
        "ingest: {metrics: {port: 0}}\n",
    )
    out = _linewatch("ingest", "-c", str(cfg))
    assert out.returncode == 2
    _no_traceback(out.stderr)
    assert f"error: mqtt.tls: cannot load ca_file {ca}" in out.stderr


def _daemon_on_a_taken_port(
    tmp_path: Path, daemon: str, extra: str = ""
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``daemon`` with its metrics port already taken: it ends with an error right after start-up."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = _config(
            tmp_path,
            f"storage: {{root: {tmp_path / 'data'}}}\n"
            f"ingest: {{metrics: {{port: {port}}}}}\nserve: {{metrics: {{port: {port}}}}}\n{extra}",
        )
        return _linewatch(daemon, "-c", str(cfg)), port


@pytest.mark.parametrize("daemon", ["ingest", "serve"])
def test_daemon_metrics_port_in_use(tmp_path: Path, daemon: str) -> None:
    out, port = _daemon_on_a_taken_port(tmp_path, daemon)
    assert out.returncode == 2
    _no_traceback(out.stderr)
    assert f"error: cannot serve /metrics on 127.0.0.1:{port}: Address already in use" in out.stderr


def test_daemon_logs_settings_nothing_uses(tmp_path: Path) -> None:
    """A CA file while TLS is off does not stop the daemon (it never opens it) but is logged: the admin may
    believe the link is encrypted. The port in use ends the daemon right after start-up."""
    out, port = _daemon_on_a_taken_port(
        tmp_path, "serve", f"mqtt: {{tls: {{enabled: false, ca_file: {tmp_path / 'gone.pem'}}}}}\n"
    )
    assert "mqtt.tls.ca_file: unused, because mqtt.tls.enabled is false" in out.stderr
    assert "does not exist" not in out.stderr
    assert f"error: cannot serve /metrics on 127.0.0.1:{port}" in out.stderr


# -- store, train, models ---------------------------------------------------------------------------------------


def test_store_summary_on_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "rootfile").write_text("")
    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'rootfile'}}}\n")
    result = runner.invoke(app, ["store", "summary", "-c", str(cfg)])
    assert result.exit_code == 2
    assert "storage.root:" in result.output and "no readings" not in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read: No such file or directory"), ("a,b\n", ":1: header must be asset,start,end")],
)
def test_train_with_unusable_labels(tmp_path: Path, content: str | None, message: str) -> None:
    labels = tmp_path / "labels.csv"
    if content is not None:
        labels.write_text(content)
    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'data'}}}\n")
    result = runner.invoke(app, ["train", "-c", str(cfg), "--labels", str(labels)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"error: {labels}" in result.output and message in result.output


def test_models_list_empty_and_corrupt_champion(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'data'}}}\n")
    result = runner.invoke(app, ["models", "list", "-c", str(cfg)])
    assert result.exit_code == 0
    assert f"no models yet under {tmp_path / 'data' / 'models'}" in result.output.replace("\n", "")

    group = tmp_path / "data" / "models" / "pumps"
    group.mkdir(parents=True)
    (group / "champion.json").write_text("{bad")
    result = runner.invoke(app, ["models", "list", "-c", str(cfg)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "error: group pumps:" in result.output and "champion.json" in result.output


def test_models_list_shows_each_versions_threshold_against_its_training_line(tmp_path: Path) -> None:
    """A model whose threshold had to rise far above its training windows' line is visible in the listing."""
    import numpy as np

    from linewatch.models.bundle import write_bundle
    from linewatch.models.registry import Registry

    cfg = _config(tmp_path, f"storage: {{root: {tmp_path / 'data'}}}\n")
    registry = Registry(tmp_path / "data" / "models")
    for k, metrics in enumerate([{}, {"false_alarm_rate": 0.0, "threshold_over_training_line": 17.25}]):
        bundle = write_bundle(tmp_path / f"b{k}", {"asset_group": "pumps", "metrics": metrics}, {"w": np.ones(1)})
        registry.add("pumps", bundle)
    result = runner.invoke(app, ["models", "list", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "threshold x" in result.output
    rows = [line for line in result.output.splitlines() if "pumps" in line]
    assert len(rows) == 2 and sum("17.2" in row for row in rows) == 1, result.output  # the older bundle has no figure


# -- evaluate -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("skab: [\n", "line 2, column 1: expected the node content"),
        ("skab: {detector: nosuch}\n", "skab: unknown detector 'nosuch'"),
        ("skab: {detektor: pca_t2q}\n", "skab.detektor: Extra inputs are not permitted"),
    ],
)
def test_evaluate_bad_eval_config_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "eval.yaml"
    bad.write_text(text)
    args = ["evaluate", "skab", "--data", str(tmp_path), "--out", str(tmp_path / "x.json"), "--eval-config", str(bad)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert f"error: evaluation config {bad}: {message}" in result.output


def test_evaluate_report_that_is_a_file_fails_first(tmp_path: Path) -> None:
    (tmp_path / "report").write_text("")
    args = ["evaluate", "skab", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x.json")]
    result = runner.invoke(app, [*args, "--report", str(tmp_path / "report")])
    assert result.exit_code == 2
    assert f"Invalid value for '--report': dir '{tmp_path / 'report'}' is a file" in _flat(result.output)


# -- simulate -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--duration", "-5"], "--duration"),
        (["--duration", "nan"], "--duration"),
        (["--duration", "5", "--fault-rate", "-3"], "--fault-rate"),
        (["--duration", "5", "--fault-free", "-1"], "--fault-free"),
        (["--duration", "5", "--labels", "/nonexistent-dir/l.csv"], "--labels"),
        (["--duration", "5", "--format", "xml"], "--format"),
    ],
)
def test_simulate_rejects_bad_arguments_before_starting(args: list[str], option: str) -> None:
    result = runner.invoke(app, ["simulate", *args])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in _flat(result.output)
    assert "simulating" not in result.output


# -- errors once a daemon runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("started", [False, True])
def test_an_error_after_start_up_keeps_its_traceback_in_the_log(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], started: bool
) -> None:
    """Before start-up an expected error is an operator mistake (one line); once a daemon runs, the same error
    is a failure to trace (disk full mid-write), so its traceback is logged as an error before the one line."""
    with (
        caplog.at_level(logging.DEBUG, logger="linewatch.serving.cli_common"),
        pytest.raises(typer.Exit) as exit_,
        errors_as_messages(started=lambda: started),
    ):
        raise OSError(28, "No space left on device", "/data/x.parquet")
    assert exit_.value.exit_code == 2
    assert "error: /data/x.parquet: No space left on device" in capsys.readouterr().err
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if started:
        assert len(errors) == 1 and errors[0].exc_info is not None
        assert "after start-up" in errors[0].getMessage()
    else:
        assert errors == []
        assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)


def test_serve_daemon_counts_as_started_once_it_scores(tmp_path: Path) -> None:
    """The flag that decides whether an error is logged with its traceback: off before run, on in the loop."""
    import threading

    from linewatch.core.config import LinewatchConfig
    from linewatch.core.lifecycle import StopEvent
    from linewatch.serving.daemon import ServeDaemon

    cfg = LinewatchConfig.model_validate(
        {"home": tmp_path, "serve": {"metrics": {"port": 0}, "publish_alerts": False, "interval_s": 0.05}}
    )
    stop = StopEvent()
    daemon = ServeDaemon(cfg, stop=stop)
    before = daemon.started
    assert not before
    runner_thread = threading.Thread(target=daemon.run)
    runner_thread.start()
    try:
        for _ in range(200):
            if daemon.started:
                break
            stop.wait(0.05)
        assert daemon.started
    finally:
        stop.set("test")
        runner_thread.join(timeout=30)
    assert not runner_thread.is_alive()
