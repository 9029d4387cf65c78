"""Topic filters and templates: matching, extraction, hostile topics."""

from __future__ import annotations

import pytest

from linewatch.ingest.topics import TopicTemplate, bad_name_field, filter_matches, strip_share


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("plant/+/+/+", "plant/s1/press-1/temp", True),
        ("plant/+/+/+", "plant/s1/press-1", False),
        ("plant/+/+/+", "plant/s1/press-1/temp/x", False),
        ("plant/#", "plant/s1/press-1/temp", True),
        ("plant/#", "plant", True),
        ("plant/#", "other/s1", False),
        ("#", "$SYS/broker/load", False),  # $-topics never match a leading wildcard
        ("$share/grp/plant/+/+/+", "plant/s1/a/b", True),
        ("plant/+/+/+", "", False),
        ("plant/+/+/+", "plant/\x00/a/b", True),  # matching is textual; names are checked later
    ],
)
def test_filter_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


def test_strip_share() -> None:
    assert strip_share("$share/g/plant/#") == "plant/#"
    assert strip_share("$share/g") == ""
    assert strip_share("plant/#") == "plant/#"


def test_template_whole_levels() -> None:
    t = TopicTemplate("plant/{site}/{asset}/{sensor}")
    assert t.fields == ("site", "asset", "sensor")
    assert t.match("plant/s1/press-1/temp") == {"site": "s1", "asset": "press-1", "sensor": "temp"}
    assert t.match("plant/s1/press-1") is None
    assert t.match("plant/s1/press-1/temp/extra") is None
    assert t.match("other/s1/press-1/temp") is None
    assert t.match("plant/s1//temp") == {"site": "s1", "asset": "", "sensor": "temp"}


def test_template_with_field_inside_a_level() -> None:
    t = TopicTemplate("lines/line-{asset}/{sensor}.v")
    assert t.match("lines/line-7/temp.v") == {"asset": "7", "sensor": "temp"}
    assert t.match("lines/line-7/temp") is None
    assert t.match("lines/xline-7/temp.v") is None
    assert t.match("lines/line-a/b/temp.v") is None  # a field never spans levels


def test_template_share_prefix_is_dropped() -> None:
    assert TopicTemplate("$share/g/plant/{asset}").match("plant/a1") == {"asset": "a1"}


@pytest.mark.parametrize("bad", ["..", ".", "", "a/b", "a\x00b", "x" * 65, "-lead", "a b", "é"])
def test_bad_name_field(bad: str) -> None:
    assert bad_name_field({"site": "any thing", "asset": bad, "sensor": "ok"}) == "asset"
    assert bad_name_field({"asset": "ok", "sensor": bad}) == "sensor"


def test_good_names_and_ignored_fields() -> None:
    assert bad_name_field({"site": "../../", "asset": "press-1", "sensor": "temp.C"}) is None
    assert bad_name_field({"asset": "A" * 64}) is None
