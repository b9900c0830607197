"""Managing runs that last: the runs table with parent lineage, checking an uploaded checkpoint before it
becomes a run, and the settings a rewind-and-branch may change.

The Runs page calls these; they never import streamlit. An uploaded checkpoint is untrusted input: it is
unpacked and checked only in a sandbox process (`ckpt_load.check_checkpoint`: weights_only, every tensor
dense, every string UTF-8, its config validated, its weights fitting the networks that config builds on this
machine's copy of the dataset), before any run directory is created. Every refusal is a StoreError whose
message says what is wrong in one line, a file that crashes the check included.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .ckpt_load import check_checkpoint
from .config import LIVE_FIELDS, TrainConfig
from .registry import RunRegistry
from .runs import Run
from .states import BRANCH, RESUMABLE  # noqa: F401 - RESUMABLE re-exported (pages/7_Runs.py)
from .store import StoreError

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
    """A checked checkpoint, ready for registry.create(cfg, init_state=init): `init` is the state as bytes,
    re-saved by the sandbox process that checked it (this process never unpacks the file)."""
    cfg: TrainConfig
    init: bytes
    step: int
    full: bool          # optimiser state and counters present: training continues exactly
    note: str = ""      # what was adapted (e.g. the device)


def check_upload(data: bytes) -> Upload:
    """Check an uploaded checkpoint in a sandbox process (ckpt_load.check_checkpoint). Raises StoreError (one
    line) for anything unusable, a file that crashes the check included; nothing on disk changes either way."""
    if not data:
        raise StoreError("the uploaded file is empty")
    checked = check_checkpoint(bytes(data), what="The checkpoint check", upload=True)
    return Upload(checked.cfg, checked.init, checked.step, checked.full, checked.note)


def create_from_upload(reg: RunRegistry, upload: Upload, file_name: str, explore: bool = False,
                       name: str | None = None, owner: str | None = None) -> Run:
    """A new run from a checked upload: training continues (explore=False) or it starts paused, so the
    latent explorer and the D views can look at the networks without training them."""
    parent = {"checkpoint": file_name[:200], "step": upload.step}
    stem = file_name.rsplit(".", 1)[0][:60] or "upload"   # a long file name must not make the run name too long
    label = name or f"{stem} ({'explore' if explore else 'continued'})"
    return reg.create(upload.cfg, label, parent=parent, init_state=upload.init, start=True, paused=explore,
                      owner=owner)
