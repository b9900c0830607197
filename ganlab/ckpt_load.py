"""The one way a checkpoint from outside a worker is loaded: in a sandbox process, through one field check.

Every entry point calls `check_checkpoint(source, ...)`: an upload on the Runs page (`lineage.check_upload`),
`python -m ganlab train --from-checkpoint FILE` (`cli`), a branch of a run's checkpoint (`RunRegistry.branch`),
and a Resume of a run from its newest checkpoint (`Run.start`). The file is read, unpacked and checked in a child
process (`ganlab.sandbox`, task "check_checkpoint" = `check_task`), never in the caller: the zip directory
(`ckpt_check.check_archive`), then `store.load_checkpoint` (weights_only), then every tensor dense and every
string UTF-8 (`ckpt_check.check_tensors`), the config (`TrainConfig.from_dict`), and every field against the
networks that config builds (`ckpt_check.check_state`). What comes back is plain data: the checked config, the
step, and the state re-saved by the child (`Checked.init`, bytes the caller writes as init.pt unread).

Slow motion, Be the discriminator and the latent explorer load a run's files inside their own sandbox tasks;
they call `load_checked` there, the same load and check. Refusals are StoreError with one line.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import ConfigError, TrainConfig
from .store import StoreError, load_checkpoint

FULL_STATE_KEYS = ("opt_g", "opt_d", "step", "d_updates", "rng", "fixed_z")
CHECK_WALL_S = 60.0      # a check loads the data set too (shapes and classes): seconds on a busy machine


@dataclass(frozen=True)
class Checked:
    """A checkpoint that passed the check: its config (after overrides or branch changes), step, whether it holds
    the optimisers and counters (`full`), what was adapted (`note`), and the state as bytes to write as init.pt."""
    cfg: TrainConfig
    step: int
    full: bool
    note: str
    init: bytes


def check_checkpoint(source: bytes | Path | str, *, what: str = "The checkpoint check", upload: bool = False,
                     require_full: bool = False, overrides: Sequence[str] = (), changes: dict | None = None,
                     run_dir: Path | str | None = None, want_init: bool = True) -> Checked:
    """Check `source` (the file's bytes, or a path the child reads) in the sandbox; StoreError (one line) when it
    is refused. `upload`: a file from a browser (no data_path; a config trained on a GPU runs where it can).
    `require_full`: the optimisers and counters must be there (a resume). `overrides`: CLI --set KEY=VALUE.
    `changes`: a branch's changed settings (the weights must still fit: ValueError naming them when not).
    `run_dir`: the run the file belongs to (its newest snapshot gives the sample shape, no data set to load)."""
    from .sandbox import call
    src = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    out = call("check_checkpoint", src, upload=upload, require_full=require_full, overrides=list(overrides),
               changes=dict(changes or {}), run_dir=None if run_dir is None else str(run_dir),
               want_init=want_init, what=what, error=StoreError, wall_s=CHECK_WALL_S)
    if isinstance(out, dict) and out.get("unfit"):
        raise ValueError(out["unfit"])
    try:
        cfg = TrainConfig.from_dict(out["config"])
        return Checked(cfg, int(out["step"]), bool(out["full"]), str(out["note"]), bytes(out["init"]))
    except (KeyError, TypeError, ValueError) as e:
        raise StoreError(f"{what} gave an unusable answer ({str(e)[:120]})") from None


def check_resumable(store) -> None:
    """StoreError (one line) when the newest checkpoint of `store`'s run, which a new worker continues from, is
    damaged: a Resume is refused with the reason, not a worker that dies on KeyError or a corrupt tensor."""
    path = store.checkpoint_path()
    if path is None:
        return
    try:
        check_checkpoint(path, what=f"The check of {path.name}", require_full=True, run_dir=store.path,
                         want_init=False)
    except StoreError as e:
        raise StoreError(f"its newest checkpoint ({path.name}) cannot be resumed from: {e} Branch from an "
                         "earlier checkpoint instead.") from None


# --- the child's side ---------------------------------------------------------------------------------------
def load_checked(source: bytes | str | Path, cfg: TrainConfig | None = None, *, require_full: bool = False,
                 run_dir: Path | str | None = None, upload: bool = False) -> tuple[dict[str, Any], TrainConfig]:
    """(state, cfg) of a checkpoint that passed every check (call it in a sandbox process only). `cfg`: check
    against this config instead of the file's own (a run's config.json). The optimisers and counters are checked
    when the file holds them; `require_full`: it must."""
    from .ckpt_check import MAX_UNPACKED, check_archive, check_tensors
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_UNPACKED + 1)
        except OSError as e:
            raise StoreError(f"cannot read the checkpoint ({e.strerror or e})") from None
    else:
        data = bytes(source)
    if not data:
        raise StoreError("the checkpoint file is empty")
    if len(data) > MAX_UNPACKED:
        raise StoreError(f"refused: the checkpoint is larger than {MAX_UNPACKED // 2**20} MB")
    check_archive(data)              # size and format before torch unpacks anything
    state = load_checkpoint(data)    # weights_only=True: code in the file is refused, never run
    if not isinstance(state.get("config"), dict):
        raise StoreError("not a ganlab checkpoint (its config is not a mapping of settings)")
    check_tensors(state["config"], "config")
    check_tensors(state)
    if cfg is None:
        try:
            cfg = TrainConfig.from_dict(state["config"])
        except ConfigError as e:
            raise StoreError(f"the checkpoint's config is invalid: {e}") from None
        if upload and cfg.device not in ("auto", "cpu"):
            cfg = cfg.replace(device="auto")
    missing = [k for k in FULL_STATE_KEYS if state.get(k) is None]
    if missing and require_full:
        raise StoreError(f"the checkpoint lacks its {missing[0]!r} (it holds weights only, or is damaged)")
    shape, classes = sample_shape(cfg, run_dir, upload)
    check_fields(state, cfg, shape, classes, not missing)
    return state, cfg


def sample_shape(cfg: TrainConfig, run_dir: Path | str | None, upload: bool = False) -> tuple[tuple[int, ...], int]:
    """(sample shape, class count) that `cfg`'s networks are built for: from the run's newest snapshot when it has
    one (no data set to load), else from the data set. StoreError when neither is available here."""
    from .data import dataset_available, load_dataset
    from .dataset import DataError
    if run_dir is not None:
        from .store import RunStore
        store = RunStore(Path(run_dir))
        steps = store.snapshot_steps()
        if steps and not cfg.conditional:   # a conditional run's class count is the data set's
            try:
                return tuple(store.load_snapshot(steps[-1]).fake.shape[1:]), 0
            except (OSError, ValueError, KeyError, AttributeError):
                pass   # a damaged snapshot: the data set says the same
    if upload and cfg.data_path:
        raise StoreError("its config reads a file on this server (data_path); checkpoints of runs on your own "
                         "data cannot be uploaded: upload the data set instead")
    ok, why = dataset_available(cfg.dataset)
    if not ok:
        raise StoreError(f"its dataset {cfg.dataset!r} is not available here: {why}")
    try:
        ds = load_dataset(cfg)
    except (DataError, ValueError, OSError) as e:
        raise StoreError(f"cannot rebuild its networks here: {str(e)[:200]}") from None
    return tuple(ds.sample_shape), ds.num_classes if cfg.conditional else 0


def check_fields(state: dict, cfg: TrainConfig, shape: tuple[int, ...], classes: int, full: bool) -> None:
    from .ckpt_check import check_state
    try:
        check_state(state, cfg, shape, classes, full)
    except ValueError as e:   # StoreError is one; build_models raises ValueError for impossible shapes
        raise StoreError(str(e)[:300] if isinstance(e, StoreError) else
                         f"cannot rebuild its networks here: {str(e)[:200]}") from None


def check_task(source: bytes | str, *, upload: bool, require_full: bool, overrides: list[str], changes: dict,
               run_dir: str | None, want_init: bool) -> dict[str, Any]:
    """The sandbox task behind check_checkpoint: plain data out (see Checked)."""
    import torch
    state, cfg = load_checked(source, require_full=require_full, run_dir=run_dir, upload=upload)
    device = state["config"].get("device")
    note = f"it was trained on {device}; here it uses the best available device" if \
        upload and device not in ("auto", "cpu") else ""
    full = all(state.get(k) is not None for k in FULL_STATE_KEYS)
    if overrides:
        cfg = cfg.with_overrides(overrides)   # ConfigError: a bad --set, said as such
    if changes:
        new = cfg.replace(**changes)
        if new != cfg:
            shape, classes = sample_shape(new, run_dir)
            try:
                check_fields(state, new, shape, classes, False)
            except StoreError:
                names = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
                return {"unfit": f"{names} changes the networks' layers ({new.model} D drops batch norm for "
                                 "WGAN-GP), so this checkpoint's weights do not fit: start a new run instead"}
        cfg = new
    elif overrides:
        shape, classes = sample_shape(cfg, run_dir)
        check_fields(state, cfg, shape, classes, False)   # --set model=... must still fit the file's weights
    if not full:   # weights only (e.g. from another tool): counters and optimiser start fresh
        state = {**state, "_weights_only": True}
        note = "; ".join(filter(None, [note, "it holds weights only: optimisers and counters start fresh"]))
    init = b""
    if want_init:
        buf = io.BytesIO()
        torch.save({**state, "config": cfg.to_dict()}, buf)
        init = buf.getvalue()
    return {"config": cfg.to_dict(), "step": int(state["step"]) if full else 0, "full": full, "note": note,
            "init": init}
