"""Tests for ganlab.trainer on CPU with tiny networks: every model x loss trains a few finite steps, statistics
and snapshots carry what the pages draw, seeds reproduce, a saved state continues exactly (in memory and through a
checkpoint file), and live edits take effect while architecture edits are refused."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from ganlab.config import LOSSES, TrainConfig
from ganlab.data import load_dataset
from ganlab.store import RunStore, load_checkpoint
from ganlab.trainer import FIELD_RES, HIST_BINS, MANIFOLD_RES, STAT_NAMES, Trainer

torch.set_num_threads(1)

TINY_MLP = dict(g_layers=(16,), d_layers=(16,), noise_dim=4, batch_size=8, stats_every=1, lr_decay="none",
                grid_size=8, steps=100)
TINY_DCGAN = dict(dataset="mnist5k", model="dcgan", channels=8, noise_dim=8, batch_size=8, stats_every=1,
                  lr_decay="none", grid_size=8, steps=100)
ROW_KEYS = set(STAT_NAMES) | {"step", "epoch", "time", "images_per_s", "lr_g", "lr_d"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset(TrainConfig(dataset="digits8x8"))


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(TrainConfig(dataset="mnist5k", model="dcgan"))


@pytest.fixture(scope="module")
def ring():
    return load_dataset(TrainConfig(dataset="ring8"))


def trainer_for(cfg: TrainConfig, digits, mnist, ring) -> Trainer:
    data = {"digits8x8": digits, "mnist5k": mnist, "ring8": ring}[cfg.dataset]
    return Trainer(cfg, data, device="cpu")


def run_steps(tr: Trainer, n: int) -> list[dict[str, float]]:
    rows = []
    for _ in range(n):
        if tr.train_step():
            rows.append(tr.collect())
    return rows


def weights(tr: Trainer) -> list[torch.Tensor]:
    return [t.detach().clone() for t in list(tr.G.state_dict().values()) + list(tr.D.state_dict().values())]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def losses_of(rows: list[dict[str, float]]) -> list[tuple[float, float]]:
    return [(r["loss_d"], r["loss_g"]) for r in rows]


# --- every combination trains -------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", ["mlp", "dense-dropout", "dcgan"])
def test_every_model_and_loss_trains_finite_steps(model, loss, digits, mnist, ring):
    extra = dict(TINY_DCGAN) if model == "dcgan" else dict(TINY_MLP, dataset="digits8x8", model=model)
    cfg = TrainConfig(**{**extra, "loss": loss})
    tr = trainer_for(cfg, digits, mnist, ring)
    before = weights(tr)
    rows = run_steps(tr, 3)
    assert len(rows) == 3 and tr.step == 3 and tr.d_updates == 3
    for row in rows:
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d"):
            assert math.isfinite(row[key]), (model, loss, key, row)
        assert math.isfinite(row["wdist"]) == (loss == "wgan-gp"), "wdist is shown only for the critic loss"
    assert tr.nonfinite == []
    assert not same(before, weights(tr)), "training must change the weights"


def test_collect_keys_and_counters(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "digits8x8", "stats_every": 2})
    tr = trainer_for(cfg, digits, mnist, ring)
    assert tr.train_step() is False, "only every stats_every-th step records"
    assert tr.train_step() is True
    row = tr.collect()
    assert set(row) == ROW_KEYS
    assert row["step"] == 2 and row["epoch"] == 2 * 8 // len(digits)
    assert row["lr_g"] == cfg.g_lr and row["lr_d"] == cfg.d_lr and row["images_per_s"] > 0
    assert 0.0 <= row["d_real"] <= 1.0 and 0.0 <= row["d_fake"] <= 1.0, "BCE scores are probabilities"
    again = tr.collect()                                   # nothing recorded since: NaN, never stale values
    assert all(math.isnan(again[k]) for k in STAT_NAMES)


def test_linear_lr_decay(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "digits8x8", "lr_decay": "linear", "steps": 4})
    tr = trainer_for(cfg, digits, mnist, ring)
    lrs = [r["lr_g"] for r in run_steps(tr, 4)]
    assert lrs == pytest.approx([cfg.g_lr * (1 - s / 4) for s in range(4)])


# --- snapshots --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise_dim, manifold_shape", [(4, (MANIFOLD_RES, MANIFOLD_RES, 2)),
                                                       (1, (1, MANIFOLD_RES, 2))])
def test_snapshot_2d(noise_dim, manifold_shape, digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8", "noise_dim": noise_dim, "grid_size": 4})
    tr = trainer_for(cfg, digits, mnist, ring)
    run_steps(tr, 2)
    snap = tr.snapshot()
    m = 4 * 16
    assert snap.is_2d and snap.step == 2 and snap.fake.shape == (m, 2)
    assert snap.field.shape == (FIELD_RES, FIELD_RES) and snap.field_xs.shape == (FIELD_RES,)
    assert snap.field.min() >= 0.0 and snap.field.max() <= 1.0, "nonsaturating: D's field is a probability"
    assert snap.manifold.shape == manifold_shape
    assert snap.grads.shape == (m, 2) and np.isfinite(snap.grads).all() and np.abs(snap.grads).sum() > 0
    assert snap.real.shape[1] == 2 and len(snap.real) == len(ring.x[tr.fixed_real_idx])
    n = min(len(snap.real), m)
    assert snap.hist_real.sum() == n and snap.hist_fake.sum() == n
    assert len(snap.score_edges) == HIST_BINS + 1 and snap.score_label == "D(x) = P(real)"
    lo, hi = tr._extent
    assert snap.field_xs[0] == pytest.approx(lo) and snap.field_xs[-1] == pytest.approx(hi)
    assert hi > float(ring.x.abs().max()), "the field covers the data"


def test_snapshot_images_and_fixed_noise(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_DCGAN, "loss": "lsgan"})
    tr = trainer_for(cfg, digits, mnist, ring)
    first = tr.snapshot()
    assert not first.is_2d and first.fake.shape == (8, 1, 28, 28) and first.field is None
    assert first.fake.min() >= -1.0 and first.fake.max() <= 1.0
    assert first.hist_real.sum() == 8 and first.hist_fake.sum() == 8
    assert first.score_label == "critic score"
    run_steps(tr, 2)
    second = tr.snapshot()
    assert np.array_equal(first.score_edges, second.score_edges), "raw-score bins stay fixed for the run"
    assert second.hist_real.sum() == 8 and second.hist_fake.sum() == 8, "out-of-range scores are clipped in"
    assert not np.array_equal(first.fake, second.fake)
    again = tr.snapshot()
    assert np.array_equal(second.fake, again.fake), "snapshots use fixed noise and eval mode"


def test_snapshot_does_not_change_training(digits, mnist, ring):
    # Spectral norm's power iteration and dropout run in train mode: a snapshot must not advance them, or
    # a run's trajectory would depend on how often the page asks for pictures.
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8", "spectral_norm": True, "d_dropout": 0.3})
    a, b = trainer_for(cfg, digits, mnist, ring), trainer_for(cfg, digits, mnist, ring)
    rows_a = run_steps(a, 2)
    a.snapshot()
    rows_a += run_steps(a, 2)
    rows_b = run_steps(b, 4)
    assert losses_of(rows_a) == losses_of(rows_b)
    assert same(weights(a), weights(b))


def test_conditional_snapshot_has_labels(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "digits8x8", "conditional": True, "grid_size": 12})
    tr = trainer_for(cfg, digits, mnist, ring)
    run_steps(tr, 2)
    snap = tr.snapshot()
    assert snap.fake.shape == (12, 1, 8, 8)
    assert list(snap.labels) == [i % 10 for i in range(12)]


# --- reproducibility -------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [dict(dataset="ring8"), dict(dataset="digits8x8", model="dense-dropout"),
                                   dict(TINY_DCGAN)])
def test_same_seed_same_losses_other_seed_differs(extra, digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, **extra})
    a, b = trainer_for(cfg, digits, mnist, ring), trainer_for(cfg, digits, mnist, ring)
    rows_a = run_steps(a, 3)   # a trains fully before b: b must not depend on what a did to global state
    rows_b = run_steps(b, 3)
    assert losses_of(rows_a) == losses_of(rows_b)
    assert same(weights(a), weights(b))
    c = trainer_for(cfg.replace(seed=1), digits, mnist, ring)
    assert losses_of(run_steps(c, 3)) != losses_of(rows_a)


def test_interleaved_trainers_do_not_disturb_each_other(digits, mnist, ring):
    # Two runs train side by side in one process (the app): each must follow its own seed exactly.
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "digits8x8", "model": "dense-dropout", "d_dropout": 0.2})
    solo = trainer_for(cfg, digits, mnist, ring)
    rows_solo = run_steps(solo, 4)
    a, b = trainer_for(cfg, digits, mnist, ring), trainer_for(cfg.replace(seed=5), digits, mnist, ring)
    rows_a = []
    for _ in range(4):
        rows_a += run_steps(a, 1)
        run_steps(b, 1)
    assert losses_of(rows_a) == losses_of(rows_solo)


# --- exact continuation ----------------------------------------------------------------------------------
CONTINUE_CASES = [
    dict(dataset="ring8"),
    dict(dataset="ring8", loss="wgan-gp", d_steps=2, instance_noise=0.1, label_smoothing=0.1, lr_decay="linear"),
    dict(dataset="digits8x8", model="dense-dropout", d_dropout=0.2, conditional=True),
    dict(TINY_DCGAN, spectral_norm=True, r1_gamma=1.0),
]


@pytest.mark.parametrize("extra", CONTINUE_CASES)
def test_state_dict_continues_exactly(extra, digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, **extra})
    a = trainer_for(cfg, digits, mnist, ring)
    run_steps(a, 3)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)                          # a copy: state_dict() shares live tensors
    rows_a = run_steps(a, 3)
    b = trainer_for(cfg, digits, mnist, ring)
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert b.step == 3
    rows_b = run_steps(b, 3)
    assert losses_of(rows_a) == losses_of(rows_b)
    assert same(weights(a), weights(b))
    assert a.d_updates == b.d_updates and a.step == b.step == 6
    assert np.array_equal(a.snapshot().fake, b.snapshot().fake)


def test_continues_exactly_through_a_checkpoint_file(tmp_path, digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8", "loss": "hinge"})
    a = trainer_for(cfg, digits, mnist, ring)
    run_steps(a, 4)
    a.snapshot()                                              # raw-score edges are part of the state
    store = RunStore.create(tmp_path, "ckpt", cfg)
    path = store.save_checkpoint(a.state_dict(), a.step)
    rows_a = run_steps(a, 3)
    state = load_checkpoint(path)                             # weights_only=True
    assert state["step"] == 4 and TrainConfig.from_dict(state["config"]) == cfg
    b = trainer_for(TrainConfig.from_dict(state["config"]), digits, mnist, ring)
    b.load_state_dict(state)
    rows_b = run_steps(b, 3)
    assert losses_of(rows_a) == losses_of(rows_b)
    assert same(weights(a), weights(b))
    assert np.array_equal(a.snapshot().score_edges, b.snapshot().score_edges)


def test_weights_only_load_keeps_counters(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8"})
    a = trainer_for(cfg, digits, mnist, ring)
    run_steps(a, 3)
    b = trainer_for(cfg, digits, mnist, ring)
    b.load_state_dict(a.state_dict(), weights_only=True)
    assert b.step == 0 and b.d_updates == 0
    assert torch.equal(next(b.G.parameters()), next(a.G.parameters()))


# --- live edits -------------------------------------------------------------------------------------------
def test_set_config_changes_lr_on_next_step(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8"})
    tr = trainer_for(cfg, digits, mnist, ring)
    run_steps(tr, 1)
    tr.set_config(cfg.replace(g_lr=0.05, d_lr=0.02, d_steps=3))
    row = run_steps(tr, 1)[0]
    assert tr.opt_g.param_groups[0]["lr"] == 0.05 and tr.opt_d.param_groups[0]["lr"] == 0.02
    assert row["lr_g"] == 0.05 and row["lr_d"] == 0.02
    assert tr.d_updates == 1 + 3


def test_set_config_refuses_architecture_changes(digits, mnist, ring):
    cfg = TrainConfig(**{**TINY_MLP, "dataset": "ring8"})
    tr = trainer_for(cfg, digits, mnist, ring)
    for change in (dict(g_layers=(32,)), dict(noise_dim=3), dict(loss="hinge"), dict(batch_size=16)):
        with pytest.raises(ValueError, match=next(iter(change))):
            tr.set_config(cfg.replace(**change))
    assert tr.cfg == cfg
    tr.set_config(cfg.replace(steps=500))                     # the CLI extends a resumed run
    assert tr.cfg.steps == 500


@pytest.mark.parametrize("change", [dict(label_smoothing=0.2), dict(instance_noise=0.5), dict(r1_gamma=2.0),
                                    dict(d_steps=3), dict(gp_lambda=0.0)])
def test_switches_run_and_change_training(change, digits, mnist, ring):
    base = TrainConfig(**{**TINY_MLP, "dataset": "ring8", "loss": "wgan-gp" if "gp_lambda" in change else
                          "nonsaturating"})
    plain, switched = trainer_for(base, digits, mnist, ring), trainer_for(base.replace(**change), digits, mnist,
                                                                           ring)
    rows_plain, rows = run_steps(plain, 3), run_steps(switched, 3)
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in rows)
    assert losses_of(rows) != losses_of(rows_plain), f"{change} had no effect"
    assert switched.d_updates == 3 * switched.cfg.d_steps


def test_r1_can_be_switched_on_live_for_a_batch_norm_dcgan(digits, mnist, ring):
    cfg = TrainConfig(**TINY_DCGAN)
    tr = trainer_for(cfg, digits, mnist, ring)
    run_steps(tr, 1)
    tr.set_config(cfg.replace(r1_gamma=1.0))
    rows = run_steps(tr, 2)
    assert all(math.isfinite(r["loss_d"]) for r in rows)
    fresh = trainer_for(cfg.replace(r1_gamma=1.0), digits, mnist, ring)   # e.g. resume after the edit
    fresh.load_state_dict(tr.state_dict())
    run_steps(fresh, 1)


def test_conditional_needs_labels(ring):
    from ganlab.dataset import Dataset
    unlabeled = Dataset("pts", "2d", ring.x[:100].clone())
    with pytest.raises(ValueError, match="no labels"):
        Trainer(TrainConfig(dataset="moons", conditional=True), unlabeled, device="cpu")
