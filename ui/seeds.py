"""Seeds side by side: the widgets of pages/10_Seeds.py. One preset over 4-8 seeds at once, so a class sees how
much a GAN's outcome depends on luck.

- `start_form(reg)`: preset, number of seeds, Start. 2D presets train as one batched model (one worker, one
  training slot: ganlab.ensemble_worker); others as separate runs, each queued for a slot, and the form says so.
- `group_picker(reg)`: the seed groups on disk (a student who opens the page later finds the running group);
  the URL's ?group= and the session follow it.
- `group_grid(group)`: a live grid of one panel per seed (its newest 2D view or samples, step, modes covered and
  high-quality share) and one line comparing the outcomes. Panels have a fixed width that holds their 2D view
  and wrap onto the next row when the page is narrow: a chart wider than its column is squeezed to the column's
  width at its full height, and the ring of 8 drew as an ellipse.
"""
from __future__ import annotations

import streamlit as st

from ganlab import owners
from ganlab.charts import square_size
from ganlab.config import PRESETS, get_preset
from ganlab.registry import MAX_SEEDS, RunRegistry, SeedGroup, group_note, group_of
from ganlab.runs import RunView
from ui import classroom, session
from ui.common import STATE_STYLE, state_badge, wait_until
from ui.live import LIVE_EVERY, chart_option, echart_2d, is_live, show_montage, snapshot_version
from ui.messages import flash

GROUP_KEY = "seeds.group"     # session_state: the group shown
URL_KEY = "group"             # ?group=<id>
SIDE = 120                    # px of each 2D panel's plot area: four panels fit a row of the wide layout at 1400 px
PANEL_PAD = 40                # px a bordered container takes beside its content (1 rem padding each side, border)
PANEL_WIDTH = square_size(SIDE)[0] + PANEL_PAD
WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def summary_line(modes: list[int | None], n_modes: int | None, done: bool) -> str:
    """'Modes covered per seed: 8, 8, 7, 5 — the same recipe, three different outcomes (5 to 8 modes).' ('?' for
    a seed not measured yet)."""
    if not modes or all(m is None for m in modes):
        return "Modes covered per seed appear with the first snapshots."
    shown = ", ".join("?" if m is None else str(m) for m in modes)
    head = f"Modes covered{f' (of {n_modes})' if n_modes else ''} per seed{'' if done else ' so far'}: {shown}"
    seen = sorted({m for m in modes if m is not None})
    if len(seen) > 1:
        return f"{head} — the same recipe, {WORDS.get(len(seen), len(seen))} different outcomes " \
               f"({seen[0]} to {seen[-1]} modes)."
    if not done:
        return f"{head} — so far the seeds agree."
    return f"{head} — every seed ended at {seen[0]} this time; another group of seeds may not agree."


def live_owners(reg: RunRegistry) -> list[str | None]:
    """Owners of queued or training runs, a seed group counted once (it holds one slot)."""
    seen, out = set(), []
    for run in reg.list():
        if run.state in ("queued", "running", "paused"):
            group = group_of(run)
            key = group["id"] if group else run.id
            if key not in seen:
                seen.add(key)
                out.append(run.owner)
    return out


def start_form(reg: RunRegistry) -> None:
    """Preset, seeds and Start; a new group becomes the one this page shows."""
    if classroom.presenting():
        return
    names = list(PRESETS)
    with st.container(border=True):
        left, mid, right = st.columns([3, 3, 2], vertical_alignment="bottom")
        preset = left.selectbox("Preset", names, index=names.index("ring8"), key="seeds.preset",
                                help="The recipe every seed trains with; only the seed differs.")
        k = mid.slider("Seeds", 4, MAX_SEEDS, 4, key="seeds.k", help="How many runs, seeds base, base + 1, ...")
        clicked = right.button("Start the seeds", key="seeds.start", type="primary", icon=":material/play_arrow:",
                               width="stretch")
        cfg = get_preset(preset).config()
        ensemble, note = group_note(cfg, k)
        st.caption(f"**{preset}** over seeds {cfg.seed} to {cfg.seed + k - 1}: " + note + "."
                   + ("" if ensemble else " 2D presets train as one batched model instead."))
    if clicked:
        who = session.me()
        try:
            owners.check_quota(live_owners(reg), who)
            group = reg.create_group(cfg, seeds=k, name=preset, owner=who.owner_id)
        except (OSError, ValueError, RuntimeError, owners.NotAllowed) as e:
            st.error(f"Could not start the seeds: {e}")
            return
        st.session_state[GROUP_KEY] = group.id
        wait_until(group.runs[0], lambda v: v.state != "created" or not group.runs[0].alive)


def _label(group: SeedGroup) -> str:
    stamp = group.id[1:16].replace("-", " ")   # no state: the picker sits outside the live grid
    return f"{group.runs[0].name.rsplit(' seed ', 1)[0]} · {len(group.runs)} seeds · {stamp}"


def group_picker(reg: RunRegistry) -> SeedGroup | None:
    """The group this page shows: the URL's, the session's, else the newest."""
    groups = {g.id: g for g in reg.groups()}
    url = st.query_params.get(URL_KEY)
    if url in groups and url != st.session_state.get("_seeds_url"):
        st.session_state[GROUP_KEY] = url
    current = st.session_state.get(GROUP_KEY)
    if current not in groups:
        current = next(iter(groups), None)
    if current is None:
        return None
    st.session_state[GROUP_KEY] = st.session_state["_seeds_pick"] = current
    st.selectbox("Seed group", list(groups), key="_seeds_pick", format_func=lambda i: _label(groups[i]),
                 on_change=lambda: st.session_state.update({GROUP_KEY: st.session_state["_seeds_pick"]}),
                 help="Every seed group on this server, newest first.")
    st.query_params[URL_KEY] = st.session_state["_seeds_url"] = current
    return groups[current]


def _stop(group: SeedGroup) -> None:
    who = session.me()
    try:
        owners.check(group.runs[0].owner, who, "stop")
    except owners.NotAllowed as e:
        st.session_state["_seeds_flash"] = str(e)
        return
    for run in group.runs:   # one command reaches a group's worker; separate runs need one each
        run.stop()


def _quality(view: RunView) -> dict:
    rows = [q for q in view.quality if "modes_covered" in q]
    return rows[-1] if rows else {}


def _panel(i: int, seed: int, view: RunView) -> int | None:
    """One seed's panel; returns its modes covered (None before the first measure)."""
    snap, q = view.latest, _quality(view)
    with st.container(border=True, key=f"seed-panel-{i}", width=PANEL_WIDTH):
        st.markdown(f"**seed {seed}** · step {view.step:,}")
        if snap is None:
            st.caption("waiting for the first snapshot")
        elif snap.is_2d:   # keyed by position: a new snapshot redraws the same canvas, no blink
            option = chart_option("layered_2d_chart", snapshot_version(view, snap), snap, layers=("fake", "real"),
                                  side=SIDE, title=f"step {snap.step:,}", legend=False)
            echart_2d(option, f"seeds-2d-{i}", side=SIDE)
        else:
            show_montage(snap.fake[:16], caption=f"step {snap.step:,}", target_px=square_size(SIDE)[0])
        modes = q.get("modes_covered")
        if modes is not None:
            st.caption(f"{int(modes)}/{int(q.get('n_modes', 0))} modes covered · "
                       f"{float(q.get('high_quality_frac', 0.0)):.0%} high quality (step {int(q['step']):,})")
        if view.state in ("failed", "diverged"):
            st.error(view.message, icon=STATE_STYLE[view.state][1])
        else:
            state_badge(view)
    return int(modes) if modes is not None else None


def group_grid(group: SeedGroup) -> None:
    """The group's panels, refreshed every second while any seed trains."""
    period = LIVE_EVERY if any(is_live(r.view(with_snapshots=False), r) for r in group.runs) else None

    def body() -> None:
        views = [r.view(with_snapshots=False) for r in group.runs]
        live = any(is_live(v, r) for v, r in zip(views, group.runs))
        modes = []
        with st.container(horizontal=True, gap="small", key="seeds-panels"):   # wraps: no panel is squeezed
            for i, (seed, view) in enumerate(zip(group.seeds, views)):
                modes.append(_panel(i, seed, view))
        n_modes = next((int(_quality(v)["n_modes"]) for v in views if "n_modes" in _quality(v)), None)
        if views[0].cfg.is_2d:
            st.markdown(summary_line(modes, n_modes, not live))
        if live:
            st.button("Stop the group", key="seeds.stop", icon=":material/stop:", on_click=_stop, args=(group,),
                      help="Stops every seed (a seed group trains and stops together).")
        if period is not None and not live:
            st.rerun()   # every seed ended: redraw once without the timer

    refused = flash("_seeds_flash")
    if refused:
        st.warning(refused)
    st.caption(f"Seeds {', '.join(map(str, group.seeds))}: {group.note}.")
    with st.container(key="frag-seeds"):
        st.fragment(body, run_every=period)()
