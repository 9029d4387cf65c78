"""The distribution installs one namespace package, ``linewatch``, and nothing generic like ``models``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("linewatch-*.whl")
    return built


def test_wheel_holds_only_linewatch(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    assert code, "wheel is empty"
    assert all(n.startswith("linewatch/") for n in code), [n for n in code if not n.startswith("linewatch/")]
    assert "linewatch/__init__.py" not in names  # PEP 420 namespace: no portion owns the root
    for portion in ("core", "ingest", "models", "serving"):
        assert f"linewatch/{portion}/__init__.py" in names


def test_namespace_spans_the_three_source_roots() -> None:
    import linewatch

    roots = {Path(p).parent.name for p in linewatch.__path__}
    assert {"ingest", "models", "serving"} <= roots or all("site-packages" in p for p in linewatch.__path__)


def test_core_and_ingest_do_not_load_the_model_stack() -> None:
    code = (
        "import sys, linewatch.core.config, linewatch.core.logs, linewatch.core.lifecycle, linewatch.ingest;"
        "import linewatch.ingest.daemon, linewatch.serving.cli;"  # what `linewatch ingest` loads
        "heavy = [m for m in ('torch', 'tsfresh', 'pyod', 'sklearn') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
