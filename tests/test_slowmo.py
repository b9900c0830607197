"""Slow motion (ganlab.slowmo): one D update changes D only, one G update changes G only and moves the fakes along
their arrows, a saved stepper restores exactly, the run directory is never written, the figure has one frame per
moment, and image runs, damaged checkpoints and runs without one each get a clear answer."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_util import tiny

from ganlab import slowmo
from ganlab.config import TrainConfig
from ganlab.store import RunStore
from ganlab.trainer import Trainer

CFG = dict(g_layers=(16, 16), d_layers=(16, 16), noise_dim=2, grid_size=4, batch_size=64, g_lr=2e-3, d_lr=2e-3)


def weights(m: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.state_dict().values()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def trained_run(tmp_path: Path, steps: int = 20, **changes) -> RunStore:
    cfg = tiny(**{**CFG, **changes})
    store = RunStore.create(tmp_path / "runs", "slow", cfg)
    t = Trainer(cfg, device="cpu")
    for _ in range(steps):
        t.train_step()
    store.save_checkpoint(t.state_dict(), t.step)
    return store


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return trained_run(tmp_path)


def files(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")}


def test_one_d_update_changes_d_only(store: RunStore) -> None:
    s = slowmo.Stepper.from_run(store)
    assert s.trainer.step == 20 and "checkpoint at step 20" in s.origin
    g0, d0 = weights(s.trainer.G), weights(s.trainer.D)
    move = s.step_d()
    assert same(weights(s.trainer.G), g0), "a D update leaves G as it was"
    assert not same(weights(s.trainer.D), d0)
    a, b = move.before, move.after
    assert len(move.moments) == 2 and move.kind == "d" and move.number == 1
    assert (b.d_updates, b.step) == (a.d_updates + 1, a.step)
    np.testing.assert_array_equal(a.fake, b.fake)                    # the fakes stay
    assert np.abs(b.field - a.field).max() > 0                       # the heatmap moves
    text = move.describe()
    assert text.startswith("**D update 1**") and "heatmap shifted" in text and "the fakes stay" in text
    assert f"D(x) {a.d_real:.3f} → {b.d_real:.3f}" in text
    assert s.step_d().number == 2 and s.d_done == 2 and s.g_done == 0


def test_one_g_update_changes_g_only_and_moves_the_fakes_along_their_arrows(store: RunStore) -> None:
    s = slowmo.Stepper.from_run(store)
    for _ in range(3):
        g0, d0 = weights(s.trainer.G), weights(s.trainer.D)
        move = s.step_g()
        assert same(weights(s.trainer.D), d0), "a G update leaves D as it was"
        assert not same(weights(s.trainer.G), g0)
        a, b = move.before, move.after
        assert (b.step, b.d_updates) == (a.step + 1, a.d_updates)
        np.testing.assert_array_equal(a.field, b.field)              # D did not change: nor did its heatmap
        moved = b.fake - a.fake
        assert np.abs(moved).max() > 0
        assert float(np.mean(np.sum(moved * a.grads, axis=1))) > 0, "the fakes move the way their arrows point"
        assert float(np.mean(moved, axis=0) @ np.mean(a.grads, axis=0)) > 0
    assert move.number == 3 and "along their arrows" in move.describe()


def test_a_d_and_g_step_passes_three_moments_and_is_the_runs_own_next_update(store: RunStore) -> None:
    s = slowmo.Stepper.from_run(store)
    move = s.step_both()
    assert [m.step for m in move.moments] == [20, 20, 21] and [m.d_updates for m in move.moments] == [20, 21, 21]
    np.testing.assert_array_equal(move.moments[0].fake, move.moments[1].fake)
    assert move.describe().startswith("**D+G step 1**")
    run = Trainer(store.read_config(), device="cpu")                  # what the run's own step button would do
    from ganlab.store import load_checkpoint
    run.load_state_dict(load_checkpoint(store.checkpoint_path()))
    run.single_step("both")
    assert same(weights(run.G), weights(s.trainer.G)) and same(weights(run.D), weights(s.trainer.D))


def test_a_saved_stepper_restores_exactly(store: RunStore) -> None:
    s = slowmo.Stepper.from_run(store)
    s.step_d()
    blob = s.save()
    again = slowmo.Stepper.restore(blob)
    assert (again.d_done, again.g_done, again.origin, again.base_step) == (1, 0, s.origin, 20)
    assert same(weights(again.trainer.G), weights(s.trainer.G))
    for kind in ("g", "both", "d"):
        m1, m2 = s.step(kind), again.step(kind)
        assert m1.number == m2.number
        for a, b in zip(m1.moments, m2.moments):
            np.testing.assert_array_equal(a.fake, b.fake)
            np.testing.assert_array_equal(a.field, b.field)
            assert a.loss_d == b.loss_d and a.loss_g == b.loss_g
    assert same(weights(again.trainer.D), weights(s.trainer.D))
    assert len(blob) < 2_000_000, "a session can keep it"
    with pytest.raises(slowmo.SlowMoError, match="cannot be read"):
        slowmo.Stepper.restore(b"not a stepper")


def test_the_run_directory_is_never_written(store: RunStore) -> None:
    before = files(store.path)
    s = slowmo.Stepper.from_run(store)
    for kind in ("d", "g", "both"):
        s.step(kind)
    s.save()
    assert files(store.path) == before


def test_a_run_without_checkpoint_starts_fresh_at_step_0(tmp_path: Path) -> None:
    cfg = tiny(**CFG)
    store = RunStore.create(tmp_path, "new", cfg)
    s = slowmo.Stepper.from_run(store)
    assert s.trainer.step == 0 and "no checkpoint yet" in s.origin and "step 0" in s.counter()
    assert same(weights(s.trainer.G), weights(Trainer(cfg, device="cpu").G)), "the run's own starting weights"
    assert s.state().fake.shape == (64, 2)


def test_refusals_say_why(tmp_path: Path, store: RunStore) -> None:
    image = RunStore.create(tmp_path, "digits", TrainConfig(dataset="mnist5k", model="mlp"))
    with pytest.raises(slowmo.SlowMoError, match="works on 2D runs"):
        slowmo.Stepper.from_run(image)
    ckpt = store.checkpoint_path()
    ckpt.write_bytes(b"garbage" * 100)
    with pytest.raises(slowmo.SlowMoError, match=rf"newest checkpoint \({ckpt.name}\) is damaged.*not a ganlab"):
        slowmo.Stepper.from_run(store)
    other = trained_run(tmp_path / "other", steps=2, g_layers=(8,))   # G of another shape than the config says
    state = torch.load(other.checkpoint_path(), weights_only=True)
    buf = Path(ckpt)
    torch.save(state, buf)
    with pytest.raises(slowmo.SlowMoError, match="does not fit"):
        slowmo.Stepper.from_run(store)
    gone = RunStore.create(tmp_path, "csv", tiny(**{**CFG, "dataset": "csv", "data_path": str(tmp_path / "no.csv")}))
    with pytest.raises(slowmo.SlowMoError, match="cannot be built here"):
        slowmo.Stepper.from_run(gone)
    assert os.path.exists(ckpt), "a refusal changes nothing on disk"


def test_the_figure_has_one_frame_per_moment(store: RunStore) -> None:
    s = slowmo.Stepper.from_run(store)
    still = slowmo.move_figure(None, s.state())
    assert not still.frames and not still.layout.updatemenus
    for kind, names in slowmo.FRAME_NAMES.items():
        move = s.step(kind)
        fig = slowmo.move_figure(move)
        assert [f.name for f in fig.frames] == list(names)
        assert fig.layout.updatemenus[0].buttons[0].method == "animate"
        assert [st.label for st in fig.layout.sliders[0].steps] == list(names)
        fakes = [next(t for t in f.data if t.name == "fake") for f in fig.frames]
        np.testing.assert_allclose(fakes[0].x, move.before.fake[:, 0], rtol=1e-6)
        np.testing.assert_allclose(fakes[-1].x, move.after.fake[:, 0], rtol=1e-6)
        shown = next(t for t in fig.data if t.name == "fake")
        np.testing.assert_array_equal(shown.x, fakes[-1].x)            # shown at the last moment
        dashed = next(t for t in fig.data if t.name == "boundary before")
        assert dashed.visible == (kind != "g")
        last = [t.type for t in fig.frames[-1].data]            # plotly hides a heatmap while points glide:
        assert ("heatmap" in last) == (kind == "d"), last       # a G frame moves the points only
