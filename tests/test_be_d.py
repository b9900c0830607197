"""ganlab.be_d on a real tiny image run: a round's real/fake split, D's accuracy from D's own scores (D rebuilt here
from the checkpoint), scoring a student's answers, the loss registry's boundary, and the states with no round."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganlab import be_d
from ganlab.config import get_preset
from ganlab.data import load_dataset
from ganlab.loss_specs import LOSS_SPECS
from ganlab.losses import get_loss
from ganlab.models import build_models
from ganlab.registry import RunRegistry
from ganlab.runs import Run
from ganlab.store import load_checkpoint

TINY_DIGITS = dict(batch_size=16, steps=20, g_layers=(32,), d_layers=(32,))


def finished_digits(reg: RunRegistry) -> Run:
    """A tiny MNIST MLP run, finished at step 20 (checkpoints at 0 and 20)."""
    run = reg.create(get_preset("mnist-mlp").config(**TINY_DIGITS), "digits")
    run.join(120)
    assert run.state == "finished", run.message
    return run


@pytest.fixture
def digits(lab: RunRegistry) -> Run:
    return finished_digits(lab)


def d_of(run: Run) -> torch.nn.Module:
    """D from the run's newest checkpoint, built here independently of be_d."""
    state = load_checkpoint(run.store.checkpoint_path())
    _, d = build_models(run.cfg, (1, 28, 28))
    d.load_state_dict(state["D"])
    return d.eval()


def test_a_round_is_half_real_half_fake_and_d_scores_it(digits: Run) -> None:
    rnd = be_d.draw_round(digits.store, digits.cfg, 8, seed=3)
    assert rnd.images.shape == (8, 1, 28, 28) and rnd.images.dtype == np.float32
    assert rnd.real.sum() == 4 and (~rnd.real).sum() == 4
    assert float(rnd.images.min()) >= -1 and float(rnd.images.max()) <= 1
    assert rnd.g_step == rnd.d_step == 20 and rnd.boundary == 0.5
    assert "above 0.5" in rnd.rule

    # D's scores are D's: the checkpoint's D, rebuilt here, gives the same probabilities on the same pictures
    with torch.no_grad():
        mine = torch.sigmoid(d_of(digits)(torch.as_tensor(rnd.images))).numpy()
    np.testing.assert_allclose(rnd.scores, mine, rtol=1e-4, atol=1e-5)
    result = be_d.check(rnd, ["real"] * 8)
    np.testing.assert_array_equal(result.d_right, (mine > 0.5) == rnd.real)
    assert result.d == pytest.approx(np.mean((mine > 0.5) == rnd.real))

    # the reals are pictures of the data set, the fakes none of them; the order is shuffled by the seed
    data = load_dataset(digits.cfg).x.flatten(1).numpy()
    found = [bool((np.abs(data - img.ravel()).max(axis=1) < 1e-6).any()) for img in rnd.images]
    assert found == rnd.real.tolist()
    assert len({tuple(be_d.draw_round(digits.store, digits.cfg, 8, seed=s).real) for s in range(6)}) > 1
    again = be_d.draw_round(digits.store, digits.cfg, 8, seed=3)
    np.testing.assert_array_equal(again.images, rnd.images)        # a seed re-shows its round
    np.testing.assert_array_equal(again.real, rnd.real)
    other = be_d.draw_round(digits.store, digits.cfg, 8, seed=4)
    assert not np.array_equal(other.images, rnd.images)
    odd = be_d.draw_round(digits.store, digits.cfg, 5, seed=1)
    assert odd.real.sum() == 2 and len(odd.real) == 5


def test_scoring_a_students_answers(digits: Run) -> None:
    rnd = be_d.draw_round(digits.store, digits.cfg, 8, seed=11)
    truth = ["real" if r else "fake" for r in rnd.real]
    assert be_d.check(rnd, ["real"] * 8).you == 0.5            # all "real" on a half/half round: exactly 50%
    assert be_d.check(rnd, ["fake"] * 8).you == 0.5
    assert be_d.check(rnd, truth).you == 1.0
    flipped = be_d.check(rnd, ["fake" if t == "real" else "real" for t in truth])
    assert flipped.you == 0.0 and not flipped.you_right.any()
    one_blank = be_d.check(rnd, [None] + truth[1:])
    assert one_blank.you == 7 / 8 and not one_blank.you_right[0]   # unlabelled counts as wrong
    with pytest.raises(ValueError, match="7 answers"):
        be_d.check(rnd, truth[:7])
    with pytest.raises(ValueError, match="'maybe'"):
        be_d.check(rnd, ["maybe"] + truth[1:])
    row = be_d.tally_row(1, rnd, be_d.check(rnd, truth))
    assert row == {"round": 1, "G step": 20, "you %": 100, "D %": round(100 * be_d.check(rnd, truth).d)}
    option = be_d.tally_chart([row, {**row, "round": 2, "you %": 50}])
    assert [s["name"] for s in option["series"]] == ["you", "D"]
    assert option["series"][0]["data"] == [100, 50] and option["xAxis"]["data"][1] == "2\nstep 20"


def test_a_critic_is_cut_at_the_rounds_median(digits: Run) -> None:
    cfg = digits.cfg.replace(loss="wgan-gp")   # an MLP critic has the same layers: the weights fit
    rnd = be_d.draw_round(digits.store, cfg, 8, seed=5)
    assert rnd.boundary == pytest.approx(float(np.median(rnd.scores)))
    assert rnd.d_says_real.sum() == 4 and "higher-scored half" in rnd.rule
    with torch.no_grad():
        raw = d_of(digits)(torch.as_tensor(rnd.images)).numpy()     # a critic's score is its raw output
    np.testing.assert_allclose(rnd.scores, raw, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss", list(LOSS_SPECS))
def test_the_boundary_is_ds_best_answer_when_it_cannot_tell(loss: str) -> None:
    """LossSpec.boundary: the constant score c minimising D's loss on real = fake = c (the middle of the best
    ones), as a score (sigmoid for the probability losses); None when every constant is as good."""
    fn = get_loss(loss)
    logits = torch.linspace(-4, 4, 8001)
    values = torch.stack([fn.d_loss(c.view(1), c.view(1)) for c in logits])
    best = logits[values <= values.min() + 1e-6]
    spec = LOSS_SPECS[loss]
    if spec.boundary is None:
        assert len(best) == len(logits), "a loss without a boundary is the same for every constant"
    else:
        middle = fn.score((best[0] + best[-1]) / 2).item()
        assert middle == pytest.approx(spec.boundary, abs=2e-3)


def test_no_round_without_a_checkpoint_a_2d_run_or_with_a_damaged_one(lab: RunRegistry, digits: Run) -> None:
    fresh = lab.create(get_preset("mnist-mlp").config(**TINY_DIGITS), "not started", start=False)
    with pytest.raises(be_d.RoundError, match="no checkpoint yet"):
        be_d.draw_round(fresh.store, fresh.cfg, 8, seed=1)
    with pytest.raises(be_d.RoundError, match="image runs"):
        be_d.draw_round(fresh.store, get_preset("ring8").config(), 8, seed=1)
    be_d.draw_round(digits.store, digits.cfg, 8, seed=1)          # cached now
    newest = digits.store.checkpoint_path()
    newest.write_bytes(b"not a checkpoint")
    with pytest.raises(be_d.RoundError, match=f"damaged.*{newest.name}|{newest.name}.*damaged"):
        be_d.draw_round(digits.store, digits.cfg, 8, seed=1)
    wider = digits.cfg.replace(d_layers=(64,))
    newest.unlink()                                                 # the older checkpoint (step 0) is intact
    with pytest.raises(be_d.RoundError, match="do not fit"):
        be_d.draw_round(digits.store, wider, 8, seed=1)
    assert be_d.draw_round(digits.store, digits.cfg, 8, seed=1).d_step == 0
