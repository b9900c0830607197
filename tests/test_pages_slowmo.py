"""The Discriminator page's slow motion through AppTest: D step, G step and D+G step each say what they did and
redraw the animated figure, Reset copies the run's checkpoint again, the run directory never changes; a run
without a checkpoint starts at step 0, a damaged checkpoint says so, and image runs have no slow motion."""
from __future__ import annotations

import json
from pathlib import Path

from apptest_util import open_page
from streamlit.testing.v1 import AppTest

from ganlab.config import get_preset
from ganlab.registry import RunRegistry
from ganlab.runs import Run
from ganlab.trainer import Trainer

PAGE = "pages/4_Discriminator.py"
SMALL = dict(g_layers=(16, 16), d_layers=(16, 16), noise_dim=2, grid_size=4, batch_size=64, device="cpu")


def ring(lab: RunRegistry, steps: int | None = 20) -> Run:
    """A 2D run that never trains here; with `steps`, a checkpoint at that step written as its worker would."""
    cfg = get_preset("ring8").config(**SMALL)
    run = lab.create(cfg, "slow", start=False)
    if steps is not None:
        t = Trainer(cfg, device="cpu")
        for _ in range(steps):
            t.train_step()
        run.store.save_checkpoint(t.state_dict(), t.step)
    return run


def show(run_id: str) -> AppTest:
    at = open_page(PAGE, run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def figure(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def turn_on(at):
    at.toggle(key="slowmo-on").set_value(True).run()
    assert not at.exception
    return at


def files(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")}


def test_step_buttons_say_what_happened_and_reset_copies_the_run_again(lab: RunRegistry) -> None:
    run = ring(lab)
    disk = files(run.store.path)
    at = show(run.id)
    assert "Slow motion" in [h.value for h in at.subheader]
    assert not at.get("plotly_chart") and "slowmo" not in at.session_state, "off until turned on: nothing built"
    at = turn_on(at)
    assert "0 D updates and 0 G updates since the run's checkpoint at step 20 (now step 20)" in texts(at)
    assert not figure(at).get("frames"), "a still figure before the first step"
    click(at, "slowmo-d")
    assert "**D update 1**" in texts(at) and "heatmap shifted" in texts(at)
    assert "1 D update and 0 G updates" in texts(at)
    fig = figure(at)
    assert [f["name"] for f in fig["frames"]] == ["before", "after D update"]
    assert fig["layout"]["updatemenus"][0]["buttons"][0]["label"] == "▶ play the update"
    click(at, "slowmo-g")
    assert "**G update 1**" in texts(at) and "along their arrows" in texts(at)
    assert "1 D update and 1 G update since" in texts(at) and "(now step 21)" in texts(at)
    assert [f["name"] for f in figure(at)["frames"]] == ["before", "after G update"]
    click(at, "slowmo-both")
    assert "**D+G step 1**" in texts(at) and "2 D updates and 2 G updates" in texts(at)
    assert len(figure(at)["frames"]) == 3
    click(at, "slowmo-reset")
    assert "0 D updates and 0 G updates since the run's checkpoint at step 20" in texts(at)
    assert "D update 1" not in texts(at)
    assert files(run.store.path) == disk, "slow motion never writes into the run"


def test_a_run_without_checkpoint_starts_fresh(lab: RunRegistry) -> None:
    fresh = ring(lab, steps=None)
    at = turn_on(show(fresh.id))
    assert "no checkpoint yet" in texts(at) and "(now step 0)" in texts(at)
    assert "**G update 1**" in texts(click(at, "slowmo-g"))


def test_a_damaged_checkpoint_is_refused_with_a_reason(lab: RunRegistry) -> None:
    damaged = ring(lab, steps=2)
    damaged.store.checkpoint_path().write_bytes(b"not a checkpoint")
    at = turn_on(show(damaged.id))
    assert any("is damaged" in w.value for w in at.warning), ([w.value for w in at.warning], texts(at)[-400:])
    assert all(at.button(key=f"slowmo-{k}").disabled for k in ("d", "g", "both"))
    assert not at.get("plotly_chart")


def test_an_image_run_has_no_slow_motion(lab: RunRegistry) -> None:
    digits = lab.create(get_preset("mnist-mlp").config(), "digits", start=False)
    at = show(digits.id)
    assert "Slow motion" not in [h.value for h in at.subheader]
    assert not [b for b in at.button if b.key and b.key.startswith("slowmo-")]
