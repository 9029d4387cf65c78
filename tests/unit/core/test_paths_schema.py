from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linewatch.core.paths import UnsafePathError, default_home, safe_child
from linewatch.core.schema import READING_COLUMNS, READING_SCHEMA, is_valid_name


@pytest.mark.parametrize("name", ["pump-1", "P1", "asset_07", "a.b", "x" * 64, "0"])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "-x", ".hidden", "x" * 65, "a..b", "é"])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


@pytest.mark.parametrize("part", ["..", ".", "", "a/../../x", "/etc", "a\0", "x" * 256])
def test_safe_child_refuses(tmp_path: Path, part: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_child(tmp_path, "raw", part)


@given(st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=3))
def test_safe_child_never_escapes(parts: list[str]) -> None:
    root = Path("/tmp/linewatch-hypothesis-root")
    try:
        path = safe_child(root, *parts)
    except UnsafePathError:
        return
    assert path == root.resolve() or root.resolve() in path.parents


def test_default_home() -> None:
    assert default_home({}) == Path("var")
    assert default_home({"LINEWATCH_HOME": "/srv/lw"}) == Path("/srv/lw")


def test_reading_schema_columns() -> None:
    assert tuple(READING_SCHEMA.names) == READING_COLUMNS
    assert str(READING_SCHEMA.field("ts").type) == "timestamp[us, tz=UTC]"
