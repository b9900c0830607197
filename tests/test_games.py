"""The x*y game of the oscillation lesson (ganlab.games): the trajectories follow the update matrices' algebra,
and the figure draws what the check measures."""
from __future__ import annotations

import numpy as np
import pytest

from ganlab.games import FIGURES, MODES, game_chart, radius_ratio, trajectory
from ganlab.lesson_book import LESSONS


@pytest.mark.parametrize("lr", [0.05, 0.1, 0.3])
def test_simultaneous_steps_grow_by_sqrt_1_plus_lr2_each_step(lr):
    path = trajectory("simultaneous", lr, 50, start=(0.3, -0.7))
    np.testing.assert_allclose(radius_ratio(path), (1 + lr ** 2) ** 25, rtol=1e-9)


def test_alternating_steps_keep_the_area_and_stay_bounded():
    path = trajectory("alternating", 0.3, 2000)
    step = np.array([[1 - 0.3 ** 2, -0.3], [0.3, 1.0]])          # (x, y) -> (x', y'): y first, then x
    np.testing.assert_allclose(path[1], step @ path[0])
    assert np.linalg.det(step) == pytest.approx(1.0)
    radii = np.hypot(path[:, 0], path[:, 1]) / np.hypot(*path[0])
    assert 0.7 < radii.min() and radii.max() < 1.5                # circles: neither out nor in


def test_the_penalty_on_d_settles_the_game_and_more_penalty_is_faster_at_first():
    weak, strong = (radius_ratio(trajectory("penalised", 0.1, 100, gamma=g)) for g in (0.2, 1.0))
    assert strong < weak < 1.0
    assert radius_ratio(trajectory("penalised", 0.1, 100, gamma=0.0)) == pytest.approx(
        radius_ratio(trajectory("alternating", 0.1, 100)))


@pytest.mark.parametrize("kwargs", [{"mode": "both"}, {"lr": 0.0}, {"lr": 2.5}, {"steps": 0}, {"gamma": -1.0}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        trajectory(**{"mode": "alternating", **kwargs})


def test_the_figure_draws_each_mode_with_its_measured_ratio():
    option = game_chart(0.1, 200)
    lines = [s for s in option["series"] if s["type"] == "line"]
    assert len(lines) == len(MODES)
    for mode, series in zip(MODES, lines):
        path = trajectory(mode, 0.1, 200)
        assert series["data"][-1] == pytest.approx(path[-1].tolist(), abs=1e-4)
        assert f"(x{radius_ratio(path):.2g})" in series["name"]
    assert option["xAxis"]["max"] >= np.abs(trajectory("simultaneous", 0.1, 200)).max()


def test_every_lesson_figure_exists():
    assert any(lesson.figure for lesson in LESSONS)
    for lesson in LESSONS:
        assert not lesson.figure or lesson.figure in FIGURES, lesson.id
