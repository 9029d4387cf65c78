from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from linewatch.core.config import (
    DEFAULT_INGEST_METRICS_PORT,
    ConfigError,
    LinewatchConfig,
    config_json_schema,
    load_config,
)


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _problems(tmp_path: Path, data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    return info.value.problems


def test_defaults_work_on_a_single_machine() -> None:
    cfg = load_config(None)
    assert cfg.mqtt.host == "127.0.0.1"
    assert cfg.mqtt.port == 1883
    assert cfg.data_root == Path("var/data")
    assert cfg.ingest.metrics.port == DEFAULT_INGEST_METRICS_PORT
    assert cfg.ingest.metrics.host == "127.0.0.1"
    assert cfg.serve.metrics.port != cfg.ingest.metrics.port


def test_example_file_is_valid_and_equals_the_defaults(repo_root: Path) -> None:
    example = load_config(repo_root / "deploy/config/linewatch.example.yaml")
    assert example == LinewatchConfig()


def test_example_file_mentions_every_key(repo_root: Path) -> None:
    """The example documents every key: each field name of the schema appears in it."""
    text = (repo_root / "deploy/config/linewatch.example.yaml").read_text()
    schema = config_json_schema()

    def names(node: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for key, prop in node.get("properties", {}).items():
            found.add(key)
            ref = prop.get("$ref") or next((a.get("$ref") for a in prop.get("anyOf", []) if "$ref" in a), None)
            items = prop.get("items", {}).get("$ref")
            for target in (ref, items):
                if target:
                    found |= names(schema["$defs"][target.split("/")[-1]])
        return found

    missing = {n for n in names(schema) if f"{n}:" not in text}
    assert not missing, f"example config does not document: {sorted(missing)}"


def test_every_key_is_described() -> None:
    schema = config_json_schema()
    nodes = [schema, *schema["$defs"].values()]
    undocumented = [
        f"{node.get('title')}.{key}"
        for node in nodes
        for key, prop in node.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


def test_unknown_key_names_the_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"mqtt": {"hots": "broker"}})
    assert any(p.startswith("mqtt.hots:") and "Extra inputs" in p for p in problems)


def test_unknown_top_level_section(tmp_path: Path) -> None:
    assert any(p.startswith("mqqt:") for p in _problems(tmp_path, {"mqqt": {}}))


def test_wrong_type_names_the_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"serve": {"interval_s": "often"}})
    assert any(p.startswith("serve.interval_s:") for p in problems)


def test_unknown_time_zone_names_the_group_and_the_likely_zone(tmp_path: Path) -> None:
    groups = [
        {"name": "a", "window": {"timezone": "Europe/Berln"}},
        {"name": "b", "window": {"timezone": "Asia/Tokyo"}},
    ]
    problems = _problems(tmp_path, {"models": {"asset_groups": groups}})
    assert [p for p in problems if "timezone" in p] == [p for p in problems if p.startswith("models.asset_groups.0")]
    assert any("unknown time zone 'Europe/Berln'" in p and "Europe/Berlin" in p for p in problems)


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_bad_broker_port(tmp_path: Path, port: int) -> None:
    problems = _problems(tmp_path, {"mqtt": {"port": port}})
    assert [p for p in problems if p.startswith("mqtt.port:")]


def test_bad_metrics_port_inside_list_and_nested(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        {
            "ingest": {
                "metrics": {"port": 123456},
                "subscriptions": [{"topic": "a/+/+", "template": "a/{asset}/{sensor}", "decoder": "xml"}],
            }
        },
    )
    assert any(p.startswith("ingest.metrics.port:") for p in problems)
    assert any(p.startswith("ingest.subscriptions.0.decoder:") for p in problems)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"mqtt": {"port": "x", "keepalive_s": 1}, "logging": {"level": "LOUD"}})
    assert {p.split(":")[0] for p in problems} == {"mqtt.port", "mqtt.keepalive_s", "logging.level"}


@pytest.mark.parametrize(
    ("sub", "reason"),
    [
        ({"topic": "a/#/b", "template": "a/{asset}/b"}, "'#'"),
        ({"topic": "a/x+/b", "template": "a/{asset}/{sensor}"}, "'+'"),
        ({"topic": "a/+/+", "template": "a/{site}/{sensor}"}, "{asset}"),
        ({"topic": "a/+", "template": "a/{asset}", "decoder": "json_single"}, "{sensor}"),
        ({"topic": "a/+/+", "template": "a/{asset}/{sensor}/x"}, "levels"),
        ({"topic": "a/+/+", "template": "a/{asset}/{asset}"}, "repeats"),
    ],
)
def test_subscription_cross_checks(tmp_path: Path, sub: dict[str, str], reason: str) -> None:
    problems = _problems(tmp_path, {"ingest": {"subscriptions": [sub]}})
    assert any(p.startswith("ingest.subscriptions.0") and reason in p for p in problems), problems


def test_record_decoder_needs_no_sensor_level(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            {"ingest": {"subscriptions": [{"topic": "f/+", "template": "f/{asset}", "decoder": "json_record"}]}},
        )
    )
    assert cfg.ingest.subscriptions[0].decoder == "json_record"


def test_tls_cert_needs_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"mqtt": {"tls": {"enabled": True, "cert_file": "/c.pem"}}})
    assert any(p.startswith("mqtt.tls:") and "key_file" in p for p in problems)


def test_reconnect_bounds_ordered(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"mqtt": {"reconnect": {"min_delay_s": 10, "max_delay_s": 2}}})
    assert any(p.startswith("mqtt.reconnect:") for p in problems)


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "mqtt:\n  port: [1\n")
    assert problems and "line" in problems[0]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in _problems(tmp_path, "- a\n- b\n")[0]


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == LinewatchConfig()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"mqtt": {"host": "file-host", "port": 1884}})
    monkeypatch.setenv("LINEWATCH_MQTT__HOST", "env-host")
    monkeypatch.setenv("LINEWATCH_INGEST__METRICS__PORT", "20000")
    cfg = load_config(path)
    assert cfg.mqtt.host == "env-host"
    assert cfg.mqtt.port == 1884  # untouched keys keep the file's value
    assert cfg.ingest.metrics.port == 20000


def test_empty_username_means_no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A blank override in a systemd EnvironmentFile must not send an empty login (serve and ingest once disagreed).
    monkeypatch.setenv("LINEWATCH_MQTT__USERNAME", "")
    cfg = load_config(_write(tmp_path, {"mqtt": {"username": "line", "password": "pw"}}))
    assert cfg.mqtt.username is None
    monkeypatch.delenv("LINEWATCH_MQTT__USERNAME")
    assert load_config(_write(tmp_path, {"mqtt": {"username": "line"}})).mqtt.username == "line"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_CONFIG", str(_write(tmp_path, {"serve": {"interval_s": 5}})))
    assert load_config(None).serve.interval_s == 5


def test_home_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINEWATCH_HOME", str(tmp_path))
    assert load_config(None).data_root == tmp_path / "data"


def test_bad_environment_value_is_attributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_MQTT__PORT", "99999")
    with pytest.raises(ConfigError) as info:
        load_config(None)
    assert any(p.startswith("mqtt.port:") and "LINEWATCH_MQTT__PORT" in p for p in info.value.problems)


def test_password_sources_and_masking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_MQTT__PASSWORD", "s3cret-env")
    cfg = load_config(None)
    assert cfg.mqtt.resolved_password() == "s3cret-env"
    assert "s3cret-env" not in repr(cfg) and "s3cret-env" not in cfg.model_dump_json()
    monkeypatch.delenv("LINEWATCH_MQTT__PASSWORD")

    pw_file = tmp_path / "pw"
    pw_file.write_text("from-file\n")
    cfg = load_config(_write(tmp_path, {"mqtt": {"password_file": str(pw_file)}}))
    assert cfg.mqtt.resolved_password() == "from-file"

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_config(None).mqtt.resolved_password() == "from-systemd"


def test_password_never_echoed_in_errors(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"mqtt": {"password": ["hunter2"], "port": "x"}})
    assert not any("hunter2" in p for p in problems)


def test_sparkplug_needs_no_template_but_json_does(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, {"ingest": {"subscriptions": [{"topic": "spBv1.0/#", "decoder": "sparkplug_b"}]}})
    )
    assert cfg.ingest.subscriptions[0].template is None
    problems = _problems(tmp_path, {"ingest": {"subscriptions": [{"topic": "a/+", "decoder": "json_record"}]}})
    assert any(p.startswith("ingest.subscriptions.0") and "template" in p for p in problems)


def test_an_asset_belongs_to_the_first_group_that_matches_it() -> None:
    from linewatch.core.config_sections import AssetGroupConfig, ModelsConfig

    models = ModelsConfig(
        asset_groups=[
            AssetGroupConfig(name="big-pumps", assets=["pump-1*"]),
            AssetGroupConfig(name="pumps", assets=["pump-*"]),
            AssetGroupConfig(name="press", assets=["press-01"]),
        ]
    )
    assert models.group_of("pump-12") is models.asset_groups[0]  # both pump groups match: the first wins
    assert models.group_of("pump-02") is models.asset_groups[1]
    assert models.group_of("press-01") is models.asset_groups[2]
    assert models.group_of("press-02") is None and models.group_of("fan-01") is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"mqtt": {"pasword": "hunter2secret"}}, "mqtt.pasword"),  # unknown key: may be a misspelt secret
        ({"mqtt": {"tls": {"key_file": 12345678}}}, "mqtt.tls.key_file"),  # secret-ish name, wrong type
        ({"mqtt": {"password": 12345678}}, "mqtt.password"),
        ({"serve": {"api_token": "hunter2secret"}}, "serve.api_token"),
    ],
)
def test_values_of_unknown_and_secret_keys_are_hidden(tmp_path: Path, data: Any, key: str) -> None:
    problems = _problems(tmp_path, data)
    line = next(p for p in problems if p.startswith(f"{key}:"))
    assert "(value hidden)" in line
    assert "hunter2secret" not in line and "12345678" not in line


def test_values_of_other_keys_are_still_shown(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"serve": {"interval_s": "soon"}})
    assert any(p.startswith("serve.interval_s:") and "(got 'soon')" in p for p in problems)


def test_section_from_environment_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_MQTT__TLS", "hunter2secret")
    monkeypatch.setenv("LINEWATCH_MQTT__PORT", "1884")  # a scalar under the same section is not to blame
    with pytest.raises(ConfigError) as info:
        load_config(None)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.startswith("mqtt.tls:") and problem.endswith("[from environment LINEWATCH_MQTT__TLS]")
    assert "hunter2secret" not in problem


def test_section_from_environment_as_json_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEWATCH_MQTT__TLS", '{"enabled": true}')
    assert load_config(None).mqtt.tls.enabled
