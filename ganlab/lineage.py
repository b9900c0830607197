"""Managing runs that last: the runs table with parent lineage, checking an uploaded checkpoint before it
becomes a run, and the settings a rewind-and-branch may change.

The Runs page calls these; they never import streamlit. An uploaded checkpoint is untrusted input: it is
loaded with `store.load_checkpoint` (weights_only=True, so no code in it runs), its config is validated,
and its weights must fit the networks that config builds on this machine's copy of the dataset, before
any run directory is created. Every refusal is a StoreError whose message says what is wrong.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .config import LIVE_FIELDS, ConfigError, TrainConfig
from .registry import RunRegistry
from .runs import Run
from .states import BRANCH, RESUMABLE  # noqa: F401 - RESUMABLE re-exported (pages/7_Runs.py)
from .store import StoreError, load_checkpoint

FULL_STATE_KEYS = ("opt_g", "opt_d", "step", "d_updates", "rng", "fixed_z")
# The branch form: the loss first (the setting classes branch on most), then live settings and the length.
BRANCH_FORM_FIELDS = ("loss", *LIVE_FIELDS, "steps")
assert set(BRANCH_FORM_FIELDS) <= set(BRANCH)


def parent_text(parent: dict | None) -> str:
    """'name @ step' of a parent record: a run (branch) or an uploaded / CLI checkpoint file."""
    if not parent:
        return ""
    source = parent.get("name") or parent.get("run") or parent.get("checkpoint") or "?"
    return f"{source} @ {parent.get('step', '?')}"


def lineage(run: Run, get: Callable[[str], Run], limit: int = 20) -> list[dict[str, Any]]:
    """The chain of parent records, nearest first; a deleted ancestor ends the chain, marked deleted=True."""
    chain: list[dict[str, Any]] = []
    parent = run.parent
    seen = {run.id}
    while parent and len(chain) < limit:
        rec = dict(parent)
        chain.append(rec)
        rid = parent.get("run")
        if not rid or rid in seen:
            break
        seen.add(rid)
        try:
            parent = get(rid).parent
        except (KeyError, StoreError, ValueError, OSError):
            rec["deleted"] = True
            break
    return chain


def lineage_text(chain: Sequence[dict[str, Any]]) -> str:
    """'<- parent @ 400 <- grandparent @ 200' for a lineage chain ('' without parents)."""
    parts = [parent_text(rec) + (" (deleted)" if rec.get("deleted") else "") for rec in chain]
    return " ← ".join(parts)


def runs_table(runs: Sequence[Run], get: Callable[[str], Run]) -> list[dict[str, Any]]:
    """One row per run for the Runs page's table (state, step, lineage, ...)."""
    rows = []
    for run in runs:
        v = run.summary()
        rows.append({"name": v.name, "state": v.state, "step": v.step, "steps": v.cfg.steps,
                     "dataset": v.cfg.dataset, "model": v.cfg.model, "loss": v.cfg.loss,
                     "parent": lineage_text(lineage(run, get)),
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created)), "id": v.id})
    return rows


def checkpoint_bytes(run: Run, step: int | None = None) -> bytes:
    """The kept checkpoint at (or before) `step`; the nearest one if it was pruned meanwhile."""
    path = run.store.checkpoint_path(step)
    if path is None:
        raise StoreError(f"run {run.name!r} has no checkpoint yet")
    try:
        return path.read_bytes()
    except FileNotFoundError:   # pruned between listing and reading: take the newest one now
        path = run.store.checkpoint_path()
        if path is None:
            raise StoreError(f"run {run.name!r} has no checkpoint yet") from None
        return path.read_bytes()


# --- uploaded checkpoints -------------------------------------------------------------------------------
@dataclass
class Upload:
    """A checked checkpoint, ready for registry.create(cfg, init_state=state)."""
    cfg: TrainConfig
    state: dict[str, Any]
    step: int
    full: bool          # optimiser state and counters present: training continues exactly
    note: str = ""      # what was adapted (e.g. the device)


def check_upload(data: bytes) -> Upload:
    """Load and check an uploaded checkpoint. Raises StoreError (clear message) for anything unusable;
    nothing on disk changes either way."""
    from .ckpt_check import check_archive, check_state
    from .data import dataset_available, load_dataset
    from .dataset import DataError
    if not data:
        raise StoreError("the uploaded file is empty")
    check_archive(bytes(data))             # size and format before torch unpacks anything
    state = load_checkpoint(bytes(data))   # weights_only=True: code in the file is refused, never run
    if not isinstance(state.get("config"), dict):
        raise StoreError("not a ganlab checkpoint (its config is not a mapping of settings)")
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except ConfigError as e:
        raise StoreError(f"the checkpoint's config is invalid: {e}") from None
    note = ""
    if cfg.device not in ("auto", "cpu"):   # trained on a GPU server: run it wherever this machine can
        note = f"it was trained on {cfg.device}; here it uses the best available device"
        cfg = cfg.replace(device="auto")
    if cfg.data_path:
        raise StoreError("its config reads a file on this server (data_path); checkpoints of runs on your own "
                         "data cannot be uploaded: upload the data set instead")
    ok, why = dataset_available(cfg.dataset)
    if not ok:
        raise StoreError(f"its dataset {cfg.dataset!r} is not available here: {why}")
    try:
        dataset = load_dataset(cfg)
    except (DataError, ValueError, OSError) as e:
        raise StoreError(f"cannot rebuild its networks here: {str(e)[:200]}") from None
    full = all(state.get(k) is not None for k in FULL_STATE_KEYS)
    try:
        check_state(state, cfg, dataset.sample_shape, dataset.num_classes if cfg.conditional else 0, full)
    except ValueError as e:   # StoreError is one; build_models raises ValueError for impossible shapes
        raise StoreError(str(e)[:300] if isinstance(e, StoreError) else
                         f"cannot rebuild its networks here: {str(e)[:200]}") from None
    if not full:   # weights only (e.g. from another tool): counters and optimiser start fresh
        state = {**state, "_weights_only": True}
        note = "; ".join(filter(None, [note, "it holds weights only: optimisers and counters start fresh"]))
    step = int(state["step"]) if full else 0
    state = {**state, "config": cfg.to_dict()}
    return Upload(cfg, state, step, full, note)


def create_from_upload(reg: RunRegistry, upload: Upload, file_name: str, explore: bool = False,
                       name: str | None = None, owner: str | None = None) -> Run:
    """A new run from a checked upload: training continues (explore=False) or it starts paused, so the
    latent explorer and the D views can look at the networks without training them."""
    parent = {"checkpoint": file_name[:200], "step": upload.step}
    stem = file_name.rsplit(".", 1)[0][:60] or "upload"   # a long file name must not make the run name too long
    label = name or f"{stem} ({'explore' if explore else 'continued'})"
    return reg.create(upload.cfg, label, parent=parent, init_state=upload.state, start=True, paused=explore,
                      owner=owner)
