"""File checks of `linewatch config check` and daemon start-up, on real files under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from linewatch.core.config import LinewatchConfig
from linewatch.core.preflight import directory_problem, file_problem, path_problems, unused_settings


def test_file_problem(tmp_path: Path) -> None:
    good = tmp_path / "ca.pem"
    good.write_text("x")
    assert file_problem("k", good) is None
    assert file_problem("k", tmp_path / "missing") == f"k: {tmp_path / 'missing'} does not exist"
    assert file_problem("k", tmp_path) == f"k: {tmp_path} is not a regular file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x")
    secret.chmod(0)
    assert file_problem("k", secret) == f"k: {secret} is not readable"


def test_directory_problem(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert directory_problem("k", tmp_path) is None
    assert directory_problem("k", tmp_path / "new" / "deeper") is None  # mkdir -p will create it
    assert directory_problem("k", afile) == f"k: {afile} is not a directory"
    assert (
        directory_problem("k", afile / "data") == f"k: {afile / 'data'} is not a directory ({afile} is a regular file)"
    )


def test_path_problems_names_keys_and_honours_sections(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("")
    cfg = LinewatchConfig.model_validate(
        {
            "home": tmp_path / "home",
            "mqtt": {
                "username": "line",
                "password_file": tmp_path / "pw",
                "tls": {"enabled": True, "cert_file": tmp_path / "c", "key_file": tmp_path / "k"},
            },
            "models": {"asset_groups": [{"name": "g", "assets": ["*"], "training": {"labels_file": tmp_path / "l"}}]},
        }
    )
    keys = [p.split(":")[0] for p in path_problems(cfg)]
    assert keys == [
        "home",
        "mqtt.password_file",
        "mqtt.tls.cert_file",
        "mqtt.tls.key_file",
        "models.asset_groups.0.training.labels_file",
    ]
    assert [p.split(":")[0] for p in path_problems(cfg, mqtt=False, training=False)] == ["home"]
    assert path_problems(cfg, storage=False, mqtt=False, training=False) == []
    assert path_problems(LinewatchConfig(home=tmp_path)) == []


def test_files_nothing_reads_are_notes_not_problems(tmp_path: Path) -> None:
    missing = {"ca_file": tmp_path / "ca", "cert_file": tmp_path / "c", "key_file": tmp_path / "k"}
    tls_off = LinewatchConfig.model_validate(
        {"home": tmp_path, "mqtt": {"password_file": tmp_path / "pw", "tls": {"enabled": False, **missing}}}
    )
    assert path_problems(tls_off) == []  # a daemon must not refuse to start over files it never opens
    assert [n.split(":")[0] for n in unused_settings(tls_off)] == [
        "mqtt.password_file",
        "mqtt.tls.ca_file",
        "mqtt.tls.cert_file",
        "mqtt.tls.key_file",
    ]
    assert "mqtt.username is not set" in unused_settings(tls_off)[0]
    assert "mqtt.tls.enabled is false" in unused_settings(tls_off)[1]
    shadowed = LinewatchConfig.model_validate(
        {"home": tmp_path, "mqtt": {"username": "u", "password": "inline", "password_file": tmp_path / "pw"}}
    )
    assert path_problems(shadowed) == []  # the inline password comes first, so the file is never read
    assert unused_settings(shadowed) == [
        "mqtt.password_file: unused, because mqtt.password (or its environment override) is set"
    ]
    used = LinewatchConfig.model_validate(
        {"home": tmp_path, "mqtt": {"username": "u", "password_file": tmp_path / "pw", "tls": {"enabled": True}}}
    )
    assert unused_settings(used) == []
    assert [p.split(":")[0] for p in path_problems(used)] == ["mqtt.password_file"]
    assert "inline" not in " ".join(unused_settings(shadowed))  # secrets never echoed
