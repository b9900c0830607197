"""Runs: every run on disk with its state and lineage; rename, delete (confirmed), resume, rewind-and-branch,
checkpoint download/upload, and exports (grid PNG, evolution GIF, metrics CSV, config JSON, zip, and the run as
a standalone PyTorch script or notebook)."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from ganlab import downloads, export, export_code, owners
from ganlab.lineage import (
    BRANCH_FORM_FIELDS,
    RESUMABLE,
    Upload,
    check_upload,
    checkpoint_bytes,
    create_from_upload,
    lineage,
    lineage_text,
    parent_text,
    runs_table,
)
from ganlab.store import StoreError, slug
from ui import session
from ui.common import live_owners, registry, run_picker, select_run, setup, state_badge, wait_until
from ui.config_form import field_widget
from ui.messages import flash

FLASH, CONFIRM, CHECKED = "runs._flash", "runs._confirm_delete", "runs._upload"


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)


# --- button callbacks (they run before the page redraws, so the page shows their effect) ----------------
def _allowed(run_id: str, action: str) -> None:
    owners.check(registry().get(run_id).owner, session.me(), action)


def _attempt(failed: str, action: Callable[[], str], errors: tuple = (KeyError, StoreError, OSError)) -> None:
    """Run a button's action: flash the text it returns, or `failed: why` (a refused action changes nothing)."""
    try:
        _flash("success", action())
    except errors as e:
        _flash("error", f"{failed}: {e}")


def _rename(run_id: str) -> None:
    def rename() -> str:
        _allowed(run_id, "rename")
        registry().rename(run_id, st.session_state[f"runs.name.{run_id}"])
        return "Renamed."
    _attempt("Rename failed", rename)


def _ask_delete(run_id: str | None) -> None:
    if run_id is not None:
        try:   # refused before the confirmation: asking "Delete?" of a run one may not delete misleads
            _allowed(run_id, "delete")
        except owners.NotAllowed as e:
            _flash("error", f"Delete refused: {e}")
            return
    st.session_state[CONFIRM] = run_id   # the confirmation step; None cancels it


def _delete(run_id: str) -> None:
    st.session_state.pop(CONFIRM, None)

    def delete() -> str:
        _allowed(run_id, "delete")
        name = registry().get(run_id).name
        registry().delete(run_id)
        return f"Deleted {name}."
    _attempt("Delete failed", delete)


def _delete_unreadable(run_id: str) -> None:
    def delete() -> str:
        if not session.me().instructor:
            raise owners.NotAllowed("only the instructor can delete a run directory nobody can read")
        registry().delete(run_id)
        return f"Deleted the unreadable run {run_id}."
    _attempt("Delete failed", delete)


def _resume(run_id: str) -> None:
    def resume() -> str:
        _allowed(run_id, "resume")
        registry().resume(run_id)
        return "Resumed from the last checkpoint: watch it on Train."
    _attempt("Resume failed", resume, (KeyError, RuntimeError, StoreError, OSError))


def _branch(run_id: str) -> None:
    reg, key = registry(), f"branch.{run_id}"
    step = st.session_state[f"{key}.step"]
    changes = {n: st.session_state[f"{key}.{n}"] for n in BRANCH_FORM_FIELDS}
    if changes["steps"] <= step:
        _flash("error", f"steps: the branch starts at step {step:,}; give it more steps than that")
        return
    try:
        run = reg.get(run_id)
        owners.check_quota(live_owners(reg), session.me())
        child = reg.branch(run, step, st.session_state.get(f"{key}.name") or None, owner=session.me().owner_id,
                           **changes)
    except (KeyError, ValueError, OSError) as e:   # ConfigError and StoreError are ValueErrors
        _flash("error", f"Branch failed: {e}")
        return
    select_run(child.id)
    wait_until(child, lambda v: v.step >= step or not child.alive)   # so the page shows it at its start step
    _flash("success", f"Started **{child.name}**: it continues {run.name} from step {child.parent['step']:,}.")


def _from_upload(explore: bool) -> None:
    _, file_name, upload = st.session_state[CHECKED]
    try:
        owners.check_quota(live_owners(registry()), session.me())
        run = create_from_upload(registry(), upload, file_name, explore=explore, owner=session.me().owner_id)
    except (ValueError, OSError) as e:
        _flash("error", f"Could not create the run: {e}")
        return
    select_run(run.id)
    wait_until(run, lambda v: v.step >= upload.step or not run.alive)
    _flash("success", f"Created **{run.name}** from {file_name}" + (" (paused)." if explore else "."))


# --- the page ------------------------------------------------------------------------------------------------
reg = setup()
run = run_picker(reg)
st.title("Runs")
kind, text = flash(FLASH, (None, None))
if kind:
    getattr(st, kind)(text)
runs = reg.list()
for rid, why in sorted(reg.unreadable.items()):
    c1, c2 = st.columns([6, 1], vertical_alignment="center")
    c1.warning(f"`{rid}` is unreadable: {why}", icon=":material/broken_image:")
    c2.button("Delete", key=f"runs-del-broken-{rid}", on_click=_delete_unreadable, args=(rid,),
              help="Remove this damaged run directory; every other run is untouched.")
if runs:
    st.dataframe(runs_table(runs, reg.get), hide_index=True, width="stretch",
                 column_order=("name", "state", "step", "steps", "dataset", "model", "loss", "parent", "created"))
else:
    st.info("No runs yet: start one on Home or Train, or continue from a checkpoint file below.")

if run is not None:
    view = run.view(with_snapshots=False)
    cfg = view.cfg
    head, badge = st.columns([6, 1], vertical_alignment="center")
    head.subheader(view.name)
    with badge:
        state_badge(view)
    chain = lineage(run, reg.get)
    st.caption(f"`{run.id}` · {cfg.dataset} · {cfg.model} · loss {cfg.loss} · step {view.step:,}/{cfg.steps:,}"
               + (f" · lineage: {lineage_text(chain)}" if chain else ""))
    ckpts = run.store.checkpoint_steps()
    mine = owners.may_command(run.owner, session.me())
    manage, branch, exports = st.tabs(["Manage", "Rewind and branch", "Export"])
    with manage:
        c1, c2 = st.columns(2)
        with c1:
            st.text_input("Name", value=view.name, key=f"runs.name.{run.id}")
            st.button("Rename", on_click=_rename, args=(run.id,), key="runs-rename", disabled=not mine)
        with c2:
            if view.state in RESUMABLE:
                st.button("Resume from the last checkpoint", on_click=_resume, args=(run.id,), type="primary",
                          disabled=run.alive or not ckpts or not mine, icon=":material/resume:", key="runs-resume")
            if ckpts:
                step = st.selectbox("Checkpoint", ckpts[::-1], format_func=lambda s: f"step {s:,}", key="runs.ckpt")
                st.download_button("Download checkpoint", data=lambda: checkpoint_bytes(run, step),
                                   file_name=f"{slug(view.name)}-step{step}.pt", on_click="ignore",
                                   mime="application/octet-stream", icon=":material/download:", key="runs-ckpt-dl")
        if st.session_state.get(CONFIRM) != run.id:
            st.button("Delete run", icon=":material/delete:", key="runs-delete", disabled=not mine,
                      on_click=_ask_delete, args=(run.id,))
            if not mine:
                st.caption("Someone else started this run: its owner or the instructor may rename, resume or "
                           "delete it; you can branch it and download it.")
        else:
            st.warning(f"Delete **{view.name}** and all its files (checkpoints, snapshots, metrics)? "
                       "This cannot be undone.")
            y, n, _ = st.columns([1, 1, 4])
            y.button("Yes, delete", type="primary", on_click=_delete, args=(run.id,), key="runs-delete-yes")
            n.button("Cancel", on_click=_ask_delete, args=(None,), key="runs-delete-no")
    with branch:
        st.caption("Go back to a kept checkpoint and continue from it in a new run with other settings: the "
                   "same weights, optimiser state and noise, so the branch and this run differ only by what "
                   "you change here.")
        if not ckpts:
            st.info("This run has no checkpoint of its own yet" + (
                f": it continues from {parent_text(view.parent)} and keeps its first checkpoint once it has "
                "trained a while." if view.parent else ": its worker keeps one as it trains."))
        else:
            key = f"branch.{run.id}"
            if st.session_state.get(f"{key}.step") not in ckpts:
                st.session_state[f"{key}.step"] = ckpts[-1]
            with st.form(f"{key}-form"):
                st.selectbox("Rewind to checkpoint", ckpts, key=f"{key}.step", format_func=lambda s: f"step {s:,}")
                st.text_input("Branch name", key=f"{key}.name", placeholder=f"{view.name} @<step>")
                cols = st.columns(4)
                extra = cfg.steps // 2 if view.step >= cfg.steps else 0   # a finished run needs more steps
                for i, name in enumerate(BRANCH_FORM_FIELDS):
                    with cols[i % 4]:
                        field_widget(name, cfg.steps + extra if name == "steps" else getattr(cfg, name),
                                      f"{key}.{name}")
                st.form_submit_button("Branch from this checkpoint", type="primary", on_click=_branch,
                                      args=(run.id,), icon=":material/call_split:")
    with exports:
        store, snap, code_why = run.store, view.latest, export_code.refusal(cfg)
        cols = st.columns(4) + st.columns(4)
        files = [("png", "Grid PNG", ":material/image:", "image/png"),
                 ("gif", "Evolution GIF", ":material/movie:", "image/gif"),
                 ("csv", "Metrics CSV", ":material/table:", "text/csv"),
                 ("json", "Config JSON", ":material/settings:", "application/json"),
                 ("zip", "Run folder (zip)", ":material/folder_zip:", "application/zip"),
                 ("script", "Training script (.py)", ":material/code:", "text/x-python"),
                 ("notebook", "Notebook (.ipynb)", ":material/book:", "application/x-ipynb+json"),
                 ("report", "Class report (HTML)", ":material/description:", "text/html")]
        for col, (what, label, icon, mime) in zip(cols, files):
            code = what in ("script", "notebook")
            col.download_button(label, data=lambda w=what: downloads.export_bytes(store, w), mime=mime, icon=icon,
                                file_name=downloads.default_file_name(view.name, what, snap.step if snap else None),
                                disabled=(what in ("png", "gif") and snap is None) or (code and code_why is not None),
                                help=(code_why or "The run as PyTorch code that reproduces it step for step on "
                                      "CPU") if code else ("One page: curves, samples, quality, diagnoses and lineage, "
                                                           "with interactive charts; opens offline" if what == "report"
                                                           else None), on_click="ignore", key=f"runs-export-{what}",
                                width="stretch")
        if export.tensorboard_available():
            st.download_button("TensorBoard events (zip)", data=lambda: export.tensorboard_zip(store),
                               file_name=downloads.default_file_name(view.name, "tensorboard") + ".zip",
                               mime="application/zip", on_click="ignore", key="runs-export-tb")
        else:
            st.caption("TensorBoard export: `pip install tensorboard` to enable it.")

st.divider()
st.subheader("Continue from a checkpoint file")
st.caption("A `.pt` checkpoint from this app or `python -m ganlab train` (Download checkpoint above). It is "
           "loaded as tensors and numbers only: a file that would run code is refused.")
up = st.file_uploader("Checkpoint file", type=["pt", "pth", "ckpt"], key="runs.upload")
if up is not None:
    checked = st.session_state.get(CHECKED)
    if checked is None or checked[0] != up.file_id:   # check each uploaded file once, not on every rerun
        try:
            result: Upload | StoreError = check_upload(up.getvalue())
        except StoreError as e:
            result = e
        st.session_state[CHECKED] = checked = (up.file_id, up.name, result)
    result = checked[2]
    if isinstance(result, StoreError):
        st.error(f"Refused **{up.name}**: {result}", icon=":material/block:")
    else:
        c = result.cfg
        st.success(f"**{up.name}**: {c.dataset} · {c.model} · loss {c.loss} · step {result.step:,}"
                   + (f" ({result.note})" if result.note else ""))
        b1, b2, _ = st.columns([1, 1, 3])
        b1.button("Continue training", type="primary", on_click=_from_upload, args=(False,), key="runs-up-train")
        b2.button("Explore (paused)", on_click=_from_upload, args=(True,), key="runs-up-explore",
                  help="A paused run: look at its samples, latent space and D without training it")
