"""The run panels of the Train page (and others): Start/Pause/Stop and single-step controls, live settings,
progress, and the quality table with the diagnoses. Commands are button callbacks (`on_click`) checked against
the run's owner (ganlab.owners), so the whole page already sees the new state when it redraws.
"""
from __future__ import annotations

import streamlit as st

from ganlab import owners
from ganlab.config import LIVE_FIELDS, ConfigError
from ganlab.diagnose import diagnose
from ganlab.loss_specs import LOSS_SPECS
from ganlab.metrics import quality_rows
from ganlab.runs import Run, RunView
from ganlab.states import RunState
from ui import session
from ui.common import registry, wait_until
from ui.config_form import field_widget
from ui.live import mode_bars
from ui.messages import flash


def _command(run_id: str, action: str) -> None:
    """Button callback: run one command and wait briefly for its effect (runs before the page redraws)."""
    run = registry().get(run_id)
    try:
        owners.check(run.owner, session.me(), {"d": "step", "g": "step", "both": "step"}.get(action, action))
    except owners.NotAllowed as e:
        st.session_state["_flash"] = str(e)
        return
    before = run.view(with_snapshots=False)
    last = lambda v: (v.step, len(v.history["time"]), v.history["time"][-1] if len(v.history["time"]) else 0)  # noqa: E731
    try:
        if action in ("start", "pause", "resume", "stop"):
            command_and_wait(run, action)
        elif action in ("d", "g", "both"):
            run.request_step(action)
            after = wait_until(run, lambda v: last(v) != last(before) or v.state == "failed", timeout=10.0)
            st.session_state["_flash_ok"] = step_feedback(action, before, after)
    except (RuntimeError, ValueError, OSError) as e:
        st.session_state["_flash"] = f"{action} failed: {e}"


def command_and_wait(run: Run, action: str) -> None:
    """Start, pause, resume or stop `run` and wait briefly until its effect shows, so the page drawn next shows it
    (the Train controls and the Class page's tiles; owner checks are the caller's)."""
    if action == "start":
        run.start()
        wait_until(run, lambda v: v.state not in ("created", "stopped", "interrupted", "failed"))
    elif action == "pause":
        run.pause()
        wait_until(run, lambda v: v.state not in ("running", "queued") or not run.alive)
    elif action == "resume":
        run.resume()
        wait_until(run, lambda v: v.state != "paused")
    elif action == "stop":
        run.stop()
        wait_until(run, lambda v: not run.alive, timeout=10.0)   # the worker saves a checkpoint, then exits
    else:
        raise ValueError(f"unknown run command {action!r}")


def run_controls(run: Run, view: RunView, key: str = "ctl") -> None:
    """Start / Pause / Resume / Stop and single-step buttons for `run` (disabled for others' runs)."""
    s, alive = view.state, run.alive
    mine = owners.may_command(run.owner, session.me())
    done = s in ("finished", "diverged")
    final = RunState.parse(s, RunState.INTERRUPTED).final
    buttons = [
        ("Start", "start", ":material/play_arrow:", alive or s not in ("created", "stopped", "interrupted", "failed")),
        ("Pause", "pause", ":material/pause:", s not in ("running", "queued")),
        ("Resume", "resume", ":material/resume:", s != "paused"),
        # a stopped or finished run's worker may still be saving and exiting: there is nothing left to stop
        ("Stop", "stop", ":material/stop:", s not in ("running", "queued", "paused") and (not alive or final)),
        ("Step D", "d", None, done or s == "failed"),
        ("Step G", "g", None, done or s == "failed"),
        ("Step both", "both", ":material/skip_next:", done or s == "failed"),
    ]
    cols = st.columns(len(buttons))
    for col, (label, action, icon, disabled) in zip(cols, buttons):
        col.button(label, key=f"{key}-{action}", icon=icon, disabled=disabled or not mine, on_click=_command,
                   args=(run.id, action), width="stretch",
                   help="A step pauses the run first; 'both' is d_steps D updates then one G update."
                   if action in ("d", "g", "both") else None)
    if not mine:
        st.caption("Someone else started this run: you can watch it and branch it (Runs page); its owner or "
                   "the instructor controls it.")
    # One slot whether or not there is a message: a message that appears must not move the charts below it
    # to another place in the page (Streamlit would remount them: the 2D panel flickered after each step).
    note = st.empty()
    error = flash("_flash")
    done_text = flash("_flash_ok")
    if error:
        note.error(error)
    elif done_text:
        note.success(done_text, icon=":material/skip_next:")


def step_feedback(action: str, before: RunView, after: RunView) -> str:
    """What one Step button did, in words: a lone D update leaves the step counter (it counts G updates) where it
    was, so without this line nothing on the page said it happened."""
    what = {"d": "One D update", "g": "One G update", "both": f"{after.cfg.d_steps} D update(s) then one G update"}
    rows = lambda v: len(v.history.get("time", ()))  # noqa: E731
    if rows(after) == rows(before) and after.step == before.step:
        return f"{what[action]} asked for: the run has not shown it yet (it may be finishing the update it was in)."
    losses = []
    for name, label in (("loss_d", "D's loss"), ("loss_g", "G's loss")):
        b, a = before.history.get(name), after.history.get(name)
        if b is not None and a is not None and len(b) and len(a):
            losses.append(f"{label} {float(b[-1]):.3f} → {float(a[-1]):.3f}")
    counter = (f"step {after.step:,} (the step counts G updates, so a D update leaves it)" if action == "d"
               else f"step {before.step:,} → {after.step:,}")
    return f"{what[action]} done: " + ", ".join([*losses, counter]) + "."


def _apply_live(run_id: str, names: tuple[str, ...]) -> None:
    run = registry().get(run_id)
    try:
        owners.check(run.owner, session.me(), "edit")
    except owners.NotAllowed as e:
        st.session_state["_live_msg"] = ("error", str(e))
        return
    changes = {n: st.session_state[f"live.{run_id}.{n}"] for n in names}
    changes = {n: v for n, v in changes.items() if v != getattr(run.cfg, n)}
    try:
        if changes:
            run.update_live(**changes)
        st.session_state["_live_msg"] = ("ok", f"applied {', '.join(changes)}" if changes else "nothing changed")
    except (ConfigError, ValueError) as e:
        st.session_state["_live_msg"] = ("error", str(e))


def live_settings(run: Run, view: RunView) -> None:
    """Form for the settings a run accepts while it trains (LIVE_FIELDS); they apply from the next step."""
    names = tuple(n for n in LIVE_FIELDS if n != "gp_lambda" or LOSS_SPECS[view.cfg.loss].gradient_penalty)
    with st.form(f"live-form-{run.id}", border=False):
        cols = st.columns(4)
        for i, name in enumerate(names):
            with cols[i % 4]:
                field_widget(name, getattr(view.cfg, name), f"live.{run.id}.{name}")
        st.form_submit_button("Apply to the running run", on_click=_apply_live, args=(run.id, names),
                              disabled=not owners.may_command(run.owner, session.me()))
    kind, msg = flash("_live_msg", (None, None))
    if kind == "error":
        st.error(msg)
    elif kind == "ok":
        st.caption(f"Live settings: {msg}.")


def progress(view: RunView) -> None:
    """Step, epoch, speed and device of a run, plus a progress bar."""
    c = st.columns(4)
    c[0].metric("Step", f"{view.step:,} / {view.cfg.steps:,}")
    c[1].metric("Epoch", view.epoch)
    c[2].metric("Images/s" if not view.cfg.is_2d else "Points/s", f"{view.images_per_s:,.0f}")
    c[3].metric("Device", view.device or "-")
    st.progress(min(1.0, view.step / max(1, view.cfg.steps)))


def quality_panel(view: RunView) -> None:
    """Latest quality measures and the diagnoses with what to try (ganlab.quality / ganlab.diagnose)."""
    found = diagnose(view.history, view.quality, view.cfg.loss, view.cfg.is_2d, cfg=view.cfg)
    for d in found:
        show = st.error if d.severity == "error" else st.warning
        show(f"**{d.title}** (since step {d.step:,}): {d.message}\n\n**Try:** {d.fix}")
    if not view.quality:
        return
    latest = view.quality[-1]
    rows = quality_rows(latest, view.quality)
    if not rows:
        return
    table, bars = st.columns([3, 2]) if latest.get("mode_counts") else (st.container(), None)
    with table:
        st.markdown(f"**Quality** at step {latest.get('step', 0):,}")
        st.table({"measure": [r[0] for r in rows], "value": [r[1] for r in rows], "meaning": [r[2] for r in rows]})
    if bars is not None:
        with bars:
            mode_bars(view, "train-modes")
