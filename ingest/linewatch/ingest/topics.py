"""Topic filters and templates: which subscription a topic belongs to, and what its levels name.

Topics arrive from the network and are hostile: any characters, NUL, ``..``, empty levels, thousands of
levels, very long levels. Nothing here builds a path; the names a template extracts for ``{asset}`` and
``{sensor}`` are checked with :func:`linewatch.core.schema.is_valid_name` before anyone else sees them, so a
topic such as ``plant/s1/../etc/x`` can only ever become a ``bad_name`` reject.

Templates are compiled once per subscription; matching a topic is one ``str.split`` and a few comparisons
(a regular expression only for templates that put a field inside a level, e.g. ``line-{asset}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from paho.mqtt.client import topic_matches_sub

from linewatch.core.schema import is_valid_name

#: Fields whose values become path components and metric labels, and so must be valid names.
NAME_FIELDS: Final[tuple[str, ...]] = ("asset", "sensor")

_FIELD_RE: Final = re.compile(r"\{([^{}]*)\}")
_SHARE_PREFIX: Final = "$share/"


def strip_share(topic_filter: str) -> str:
    """The filter without a ``$share/<group>/`` prefix.

    Shared subscriptions (MQTT 5) are subscribed with the prefix, but the broker delivers messages under the
    plain topic, so matching must use the filter that follows the group name.
    """
    if topic_filter.startswith(_SHARE_PREFIX):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else ""
    return topic_filter


def filter_matches(topic_filter: str, topic: str) -> bool:
    """True when ``topic`` matches the MQTT filter (``+`` one level, trailing ``#`` any remainder).

    Uses paho's own matcher so that edge cases (``$``-topics never match leading wildcards, ``a/#`` matches
    ``a``) agree with the client library. A ``$share/<group>/`` prefix is ignored.
    """
    plain = strip_share(topic_filter)
    if not plain or not topic:
        return False
    try:
        return bool(topic_matches_sub(plain, topic))
    except (ValueError, TypeError):  # paho refuses malformed input; such a topic matches nothing
        return False


class TopicTemplate:
    """A compiled template such as ``plant/{site}/{asset}/{sensor}``.

    ``match(topic)`` returns ``{field: value}`` for a topic with exactly the template's levels, literal levels
    equal, and ``None`` otherwise. Values are raw topic text; use :func:`bad_name_field` to check the
    fields that must be names.
    """

    __slots__ = ("_level_count", "_literals", "_positions", "_regex", "fields", "template")

    def __init__(self, template: str) -> None:
        plain = template
        if plain.startswith(_SHARE_PREFIX):  # templates written against the $share filter: drop the prefix
            plain = strip_share(plain)
        self.template: str = plain
        levels = plain.split("/")
        self.fields: tuple[str, ...] = tuple(_FIELD_RE.findall(plain))
        self._level_count = len(levels)
        self._literals: tuple[tuple[int, str], ...] = ()
        self._positions: tuple[tuple[str, int], ...] = ()
        self._regex: re.Pattern[str] | None = None
        whole_levels = all(
            _FIELD_RE.fullmatch(level) is not None or _FIELD_RE.search(level) is None for level in levels
        )
        if whole_levels:
            positions = []
            literals = []
            for index, level in enumerate(levels):
                field = _FIELD_RE.fullmatch(level)
                if field is not None:
                    positions.append((field.group(1), index))
                else:
                    literals.append((index, level))
            self._positions = tuple(positions)
            self._literals = tuple(literals)
        else:
            pattern = []
            for level in levels:
                pieces = _FIELD_RE.split(level)  # literal, field, literal, field, ..., literal
                pattern.append("".join(re.escape(piece) if i % 2 == 0 else "([^/]*)" for i, piece in enumerate(pieces)))
            self._regex = re.compile("/".join(pattern), re.DOTALL)

    def match(self, topic: str) -> dict[str, str] | None:
        """Field values of ``topic``, or ``None`` if it does not have the template's shape."""
        if self._regex is not None:
            found = self._regex.fullmatch(topic)
            if found is None:
                return None
            return dict(zip(self.fields, found.groups(), strict=True))
        levels = topic.split("/", self._level_count)  # at most one extra piece: enough to see "too many"
        if len(levels) != self._level_count:
            return None
        for index, literal in self._literals:
            if levels[index] != literal:
                return None
        return {name: levels[index] for name, index in self._positions}


def bad_name_field(fields: Mapping[str, str]) -> str | None:
    """The first of ``asset``/``sensor`` present in ``fields`` that is not a valid name, else ``None``."""
    for name in NAME_FIELDS:
        value = fields.get(name)
        if value is not None and not is_valid_name(value):
            return name
    return None
