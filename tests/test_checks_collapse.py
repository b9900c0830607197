"""The mode-collapse checks of issue 16 part 1: kind `collapse` with hopping (looks during training) and kind
`curve` (a G of 1-d noise strings its fakes between modes). Fast: the training is a stand-in that places fakes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ganlab import checks
from ganlab.checks import CHECKS
from ganlab.config import get_preset
from ganlab.lesson_book import Check, get_lesson

MODES = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
STD = 0.02


def _trainer(step: int, counts: dict[int, int], n: int = 1024) -> SimpleNamespace:
    """A stand-in Trainer whose G puts counts[k] fakes on mode k and the rest far from every mode."""
    pts = [np.repeat(MODES[k][None], c, 0) for k, c in counts.items()]
    pts.append(np.zeros((n - sum(counts.values()), 2)))            # the centre of the ring: no mode near
    fakes = torch.tensor(np.concatenate(pts), dtype=torch.float32)
    return SimpleNamespace(step=step, fixed_z=torch.zeros(n, 8), generate=lambda z: fakes,
                           data=SimpleNamespace(modes=MODES, mode_std=STD))


@pytest.fixture
def scripted():
    """Route checks.train to a script: the trainers seen at the looks, then the final one."""
    def use(looks: list[SimpleNamespace], final: SimpleNamespace) -> list[int]:
        asked = []

        def fake_train(cfg, device, every=0, on_eval=None):
            asked.append(every)
            for t in looks:
                if on_eval is not None:
                    on_eval(t)
            return final, {}
        checks.set_trainer(fake_train)
        return asked
    yield use
    checks.set_trainer(None)


def _collapse(**params) -> Check:
    return Check("collapse", "test", params={"max_modes": 3, **params})


def test_collapse_with_hopping_needs_a_mode_held_and_left(scripted):
    cfg = get_preset("ring8-hop").config()
    check = _collapse(hq_min=0.7, hop_every=200, left_min=1)
    asked = scripted([_trainer(200, {}), _trainer(400, {5: 300}), _trainer(600, {5: 100, 6: 200})],
                     _trainer(800, {6: 900}))
    appeared, value, m = CHECKS["collapse"](check, cfg, None)
    assert asked == [200] and appeared
    assert m["modes_left"] == [5] and m["hops"] == 2 and m["modes_covered"] == 1
    assert m["path"] == [[200, []], [400, [5]], [600, [5, 6]], [800, [6]]]
    assert "held and left 1 modes" in value

    scripted([_trainer(200, {6: 900}), _trainer(400, {6: 900})], _trainer(800, {6: 900}))   # never moved
    appeared, _, m = CHECKS["collapse"](check, cfg, None)
    assert not appeared and m["modes_left"] == [] and m["hops"] == 0

    scripted([_trainer(200, {5: 300})], _trainer(800, {6: 500}))   # moved, but only 49% high quality
    assert not CHECKS["collapse"](check, cfg, None)[0]
    scripted([_trainer(200, {5: 300})], _trainer(800, {0: 200, 1: 200, 2: 200, 3: 200}))   # 4 modes
    assert not CHECKS["collapse"](check, cfg, None)[0]


def test_collapse_without_hop_every_looks_only_at_the_end(scripted):
    asked = scripted([], _trainer(100, {2: 50}))
    appeared, value, m = CHECKS["collapse"](_collapse(), get_preset("ring8-hop").config(), None)
    assert asked == [0] and appeared and "hops" not in m and value == "1/8 modes, 5% HQ"


def test_curve_wants_several_modes_reached_and_most_fakes_between(scripted):
    check = Check("curve", "test", params={"min_modes": 3, "hq_max": 0.6})
    cfg = get_preset("ring8-collapse").config()
    scripted([], _trainer(100, {0: 100, 1: 50, 2: 1}))
    appeared, value, m = CHECKS["curve"](check, cfg, None)
    assert appeared and m["modes_any"] == 3 and m["modes_covered"] == 2
    assert value.startswith("reaches 3/8 modes, 15% HQ")
    scripted([], _trainer(100, {0: 700, 1: 50, 2: 50}))              # mostly on modes: not the curve
    assert not CHECKS["curve"](check, cfg, None)[0]
    scripted([], _trainer(100, {0: 100, 1: 100}))                    # only two modes reached
    assert not CHECKS["curve"](check, cfg, None)[0]


def test_the_two_lessons_use_these_checks():
    hop, curve = get_lesson("mode-collapse"), get_lesson("one-d-noise")
    assert hop.preset == "ring8-hop" and hop.check.kind == "collapse"
    assert hop.check.params == {"max_modes": 3, "hq_min": 0.7, "hop_every": 200, "left_min": 1}
    assert hop.config().noise_dim == 8 and hop.config().d_lr == 4 * hop.config().g_lr and hop.config().r1_gamma == 0
    assert curve.preset == "ring8-collapse" and curve.check.kind == "curve" and curve.config().noise_dim == 1
    assert r"\Phi(z_b) - \Phi(z_a)" in curve.explanation and r"\frac{1/8}{1/8 + 1}" in hop.explanation
