from __future__ import annotations

import numpy as np

from linewatch.models.events import Episode, episodes, overlaps, ranked_sensors


def test_episodes_min_run_and_merge() -> None:
    assert episodes([0, 1, 1, 0, 1, 1, 1], min_run=2) == [Episode(1, 3), Episode(4, 7)]
    assert episodes([1, 0, 1, 1], min_run=2) == [Episode(2, 4)]
    assert episodes([1, 1, 0, 1, 1], min_run=2, merge_gap=1) == [Episode(0, 5)]
    assert episodes([], min_run=1) == []
    assert episodes([0, 0]) == []


def test_overlaps() -> None:
    assert overlaps(10, 20, [(0, 5), (15, 30)]) == 1
    assert overlaps(10, 20, [(20, 30)]) is None


def test_ranked_sensors_health_first() -> None:
    contrib = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    assert ranked_sensors(contrib).tolist() == [0, 1, 2]
    assert ranked_sensors(contrib, np.array([False, False, True])).tolist()[0] == 2
    # Flagged through most of a fault outranks a blip of two windows, whatever the shares say.
    assert ranked_sensors(contrib, np.array([0, 2, 85])).tolist() == [2, 1, 0]
    assert ranked_sensors(contrib, np.array([3, 0, 3])).tolist() == [0, 2, 1]  # equal flags: the shares decide
