"""Export a run directory's pictures and data: sample grid PNG, evolution GIF, metrics CSV, config JSON, a zip of
the whole directory, and TensorBoard event files when the `tensorboard` package is installed.

Every function reads the run directory (or Snapshots already in memory) and returns bytes. The run as code
(ganlab.export_code) and the class report (ganlab.report) build on `open_store` and `ExportError` here;
ganlab.downloads names every export for the Runs page and `python -m ganlab export`.

Nothing here imports streamlit. Pictures come from ganlab.montage (one montage per image grid, rasterised
points for 2D runs), so an exported grid looks like the one on the Samples page.
"""
from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .montage import gif_bytes, montage, png_bytes, points_image
from .snapshots import HISTORY_KEYS, Snapshot
from .store import RunStore, StoreError
from .viz import extent_of

MAX_GIF_FRAMES = 120       # a long run has thousands of snapshots; a GIF of all of them is megabytes
GIF_FPS = 2.5
GRID_SCALE = 2             # exported grids are enlarged by whole pixels (28px digits are tiny on a slide)


class ExportError(ValueError):
    """An export cannot be made (no snapshot yet, tensorboard missing, ...); the message says why."""


def open_store(run_dir: Path | str | RunStore) -> RunStore:
    """A RunStore for `run_dir`; refuses a folder that is not a run directory."""
    if isinstance(run_dir, RunStore):
        return run_dir
    path = Path(run_dir)
    if not (path / "config.json").is_file():
        raise ExportError(f"{path} is not a run directory (it has no config.json)")
    return RunStore(path)


# --- pictures ------------------------------------------------------------------------------------------
def snapshot_picture(snap: Snapshot, extent: tuple[float, float] | None = None, scale: int = GRID_SCALE) -> np.ndarray:
    """One uint8 picture of a snapshot: the sample grid, or real (blue) and fake (orange) points for 2D."""
    if snap.is_2d:
        return points_image(snap.real, snap.fake, extent or extent_of(snap))
    return montage(snap.fake, scale=scale)


def snapshot_png(snap: Snapshot, extent: tuple[float, float] | None = None) -> bytes:
    return png_bytes(snapshot_picture(snap, extent))


def snapshots_gif(snaps: list[Snapshot], fps: float = GIF_FPS, max_frames: int = MAX_GIF_FRAMES) -> bytes:
    """Animated GIF of snapshots (thinned evenly to `max_frames`, always keeping the first and the last).

    2D frames share the newest snapshot's extent so the points do not jump when the view grows."""
    if not snaps:
        raise ExportError("this run has no snapshots yet: start it first")
    if len(snaps) > max_frames:
        idx = np.unique(np.linspace(0, len(snaps) - 1, max_frames).round().astype(int))
        snaps = [snaps[i] for i in idx]
    extent = extent_of(snaps[-1]) if snaps[-1].is_2d else None
    return gif_bytes([snapshot_picture(s, extent) for s in snaps], fps=fps)


def grid_png(run_dir: Path | str | RunStore, step: int | None = None) -> bytes:
    """PNG of the snapshot at `step` (the nearest one at or before it; default: the newest)."""
    store = open_store(run_dir)
    steps = store.snapshot_steps()
    if not steps:
        raise ExportError(f"{store.run_id}: no snapshots yet: start the run first")
    chosen = steps[-1] if step is None else max([s for s in steps if s <= step] or steps[:1])
    return snapshot_png(store.load_snapshot(chosen))


def evolution_gif(run_dir: Path | str | RunStore, fps: float = GIF_FPS, max_frames: int = MAX_GIF_FRAMES) -> bytes:
    """GIF of every snapshot on disk (thinned to `max_frames`)."""
    store = open_store(run_dir)
    steps = store.snapshot_steps()
    if len(steps) > max_frames:   # thin before loading: each snapshot is a compressed npz read
        steps = [steps[i] for i in np.unique(np.linspace(0, len(steps) - 1, max_frames).round().astype(int))]
    snaps = []
    for s in steps:
        try:
            snaps.append(store.load_snapshot(s))
        except (OSError, ValueError, KeyError):
            continue   # a snapshot being replaced right now; the GIF simply skips it
    return snapshots_gif(snaps, fps=fps, max_frames=max_frames)


# --- tables --------------------------------------------------------------------------------------------
def rows_csv(rows: list[dict[str, Any]], first: Iterable[str] = HISTORY_KEYS) -> bytes:
    """CSV with a header: the `first` columns, then any other keys in the order they appear.

    NaN and missing values are empty cells (spreadsheets read them as blanks, not as text)."""
    columns = [k for k in first if any(k in r for r in rows)] if rows else list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(k)) for k in columns])
    return buf.getvalue().encode()


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def metrics_csv(run_dir: Path | str | RunStore, kind: str = "history") -> bytes:
    """history.jsonl (or quality.jsonl with kind='quality') as CSV with a header row."""
    if kind not in ("history", "quality"):
        raise ExportError(f"kind must be history or quality, got {kind!r}")
    store = open_store(run_dir)
    return rows_csv(store.read_rows(kind), HISTORY_KEYS if kind == "history" else ("step",))


def config_json(run_dir: Path | str | RunStore) -> bytes:
    """The run's config (as saved with every checkpoint), pretty-printed."""
    store = open_store(run_dir)
    try:
        return (store.read_config().to_json() + "\n").encode()
    except (StoreError, ValueError) as e:
        raise ExportError(str(e)) from None


# --- whole directory -------------------------------------------------------------------------------------
def _is_temp(path: Path) -> bool:
    # store.atomic_write's half-written files: ".<name>.<pid>.<ns>.tmp"
    return path.name.startswith(".") or path.suffix == ".tmp"


def run_zip(run_dir: Path | str | RunStore) -> bytes:
    """The whole run directory as a zip (in memory), under a folder named after the run id.

    Unzipped into another runs directory it is a complete run again. Temp files of writes in progress are
    skipped, as are files that vanish while we read (a checkpoint pruned by the training thread)."""
    store = open_store(run_dir)
    root = store.path
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or _is_temp(path):
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            zf.writestr(f"{store.run_id}/{path.relative_to(root).as_posix()}", data)
    return buf.getvalue()


# --- TensorBoard (optional) ------------------------------------------------------------------------------
def tensorboard_available() -> bool:
    """True when torch.utils.tensorboard can be imported (it needs the `tensorboard` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def write_tensorboard(run_dir: Path | str | RunStore, out_dir: Path | str) -> Path:
    """Write TensorBoard event files (scalars, quality measures, sample grids) into `out_dir`.

    Raises ExportError when the `tensorboard` package is missing: it is optional, `pip install tensorboard`."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ExportError("TensorBoard export needs the tensorboard package: pip install tensorboard") from None
    store = open_store(run_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(log_dir=str(out))
    try:
        for row in store.read_rows("history"):
            _scalars(writer, "train", row)
        for row in store.read_rows("quality"):
            _scalars(writer, "quality", row)
        for s in store.snapshot_steps():
            try:
                snap = store.load_snapshot(s)
            except (OSError, ValueError, KeyError):
                continue
            img = snapshot_picture(snap, scale=1)
            writer.add_image("samples", img, global_step=snap.step, dataformats="HW" if img.ndim == 2 else "HWC")
        writer.add_text("config", "```\n" + store.read_config().to_json() + "\n```")
    finally:
        writer.close()
    return out


def tensorboard_zip(run_dir: Path | str | RunStore) -> bytes:
    """TensorBoard event files of the run, zipped (for a download button); ExportError without tensorboard."""
    import tempfile
    store = open_store(run_dir)
    with tempfile.TemporaryDirectory(prefix="ganlab-tb-") as tmp:
        out = write_tensorboard(store, Path(tmp) / store.run_id)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{store.run_id}/{path.relative_to(out).as_posix()}")
        return buf.getvalue()


def _scalars(writer, prefix: str, row: dict[str, Any]) -> None:
    step = int(row.get("step", 0))
    for key, value in row.items():
        if key in ("step", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            writer.add_scalar(f"{prefix}/{key}", value, global_step=step)
