"""The Train page shows quality measures and diagnoses in words, with the fix to try (AppTest).

The run directory is written by hand (real files, the format the engine writes) so the history is exactly
one that shows mode collapse and vanishing generator gradients, without training for minutes.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ganlab.config import get_preset
from ganlab.registry import get_registry
from ganlab.store import RunStore

REPO = Path(__file__).resolve().parent.parent


def _collapsed_saturating_run(runs: Path) -> str:
    cfg = get_preset("ring8-saturating").config()
    store = RunStore.create(runs, "collapsed", cfg)
    rows = []
    for i in range(1, 301):   # 3,000 steps: D wins early, D(G(z)) -> 0, G's gradient dies
        step = i * 10
        late = step > 500
        rows.append({"step": step, "epoch": step // 78, "time": 1.0 * i, "loss_d": 0.05 if late else 1.2,
                     "loss_g": -0.001 if late else -0.6, "d_real": 0.99 if late else 0.6,
                     "d_fake": 0.01 if late else 0.4, "grad_g": 1e-4 if late else 1.0,
                     "grad_d": 0.1, "wdist": math.nan, "images_per_s": 9000.0, "lr_g": 1e-3, "lr_d": 1e-3})
    store.append_rows("history", rows)
    store.append_rows("quality", [{"step": s, "modes_covered": 8 if s < 1000 else 1, "n_modes": 8,
                                   "high_quality_frac": 0.9 if s < 1000 else 0.2, "reverse_kl": 2.0,
                                   "diversity": 0.9 if s < 1000 else 0.02} for s in range(250, 3001, 250)])
    store.update_status(state="finished", message="finished 3000 steps", step=3000, epoch=38)
    return store.run_id


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_cache: None) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(path))
    yield path
    get_registry(path).shutdown(timeout=5)


def test_train_page_names_the_failures_and_the_fix(runs: Path) -> None:
    run_id = _collapsed_saturating_run(runs)
    at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(e.value for e in list(at.error) + list(at.warning))
    assert "collapse" in said.lower(), said
    assert "gradient" in said.lower(), said
    assert "Try:" in said
    values = [v for t in at.table for v in t.value["value"]]
    assert "1 / 8" in values, values


def test_healthy_run_shows_measures_without_alarms(runs: Path) -> None:
    cfg = get_preset("ring8").config()
    store = RunStore.create(runs, "healthy", cfg)
    store.append_rows("history", [{"step": i * 10, "epoch": 0, "time": float(i), "loss_d": 1.3, "loss_g": 0.8,
                                   "d_real": 0.55, "d_fake": 0.45, "grad_g": 1.0, "grad_d": 1.0, "wdist": math.nan,
                                   "images_per_s": 1.0, "lr_g": 1e-3, "lr_d": 1e-3} for i in range(1, 101)])
    store.append_rows("quality", [{"step": 1000, "modes_covered": 8, "n_modes": 8, "high_quality_frac": 0.85,
                                   "reverse_kl": 0.01, "diversity": 1.0}])
    store.update_status(state="finished", step=1000)
    at = AppTest.from_file(str(REPO / "pages/1_Train.py"), default_timeout=60)
    at.query_params["run"] = store.run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error], [e.value for e in at.error]
    assert "8 / 8" in [v for t in at.table for v in t.value["value"]]
