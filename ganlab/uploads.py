"""Data a browser user brings, and which server paths the browser may name at all.

Uploads are the only way a browser user brings data: a CSV of x,y points or a zip of images is checked in full
when it arrives (size, that it parses, values finite, the images' pixel and time budgets: the same loader the
worker will run, in a sandbox process under CPU, memory and time limits: `ganlab.sandbox`), then kept as
`<runs>/.uploads/<sha256>.<ext>`, inside the runs directory. A path typed into
the form must lie under that folder or under GANLAB_DATA_ROOT (set by whoever runs the server; none by
default), be a regular file (or a folder, for image folders and IDX files), and is never echoed back with
its contents. The CLI is not the browser: its paths are the user's own.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .config import TrainConfig
from .data import load_dataset
from .dataset import DataError

UPLOADS = ".uploads"
MAX_BYTES = {"csv": 10 * 2**20, "folder": 50 * 2**20}
KINDS = {".csv": "csv", ".txt": "csv", ".zip": "folder"}
CHECK_WALL_S = 25.0    # a verdict within this: the largest CSV parses in a few seconds, a hostile one is cut off


def uploads_dir(runs_dir: Path) -> Path:
    return Path(runs_dir) / UPLOADS


def save_upload(runs_dir: Path, file_name: str, data: bytes, image_size: int = 28) -> tuple[str, Path, str]:
    """Check an uploaded data file and keep it; returns (dataset kind, stored path, summary). DataError says
    what is wrong, and then nothing is kept."""
    ext = Path(file_name or "").suffix.lower()
    kind = KINDS.get(ext)
    if kind is None:
        raise DataError("upload a .csv of x,y points or a .zip of images")
    if not data:
        raise DataError("the uploaded file is empty")
    if len(data) > MAX_BYTES[kind]:
        raise DataError(f"the file is {len(data) / 2**20:.1f} MB; at most {MAX_BYTES[kind] // 2**20} MB for a {ext}")
    folder = uploads_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:24]
    final = folder / f"{digest}{'.zip' if kind == 'folder' else '.csv'}"
    tmp = folder / f".{digest}.{os.getpid()}.check"
    tmp.write_bytes(data)
    try:   # parsed in a sandbox process: a file that makes the parser spin or crash is a refusal, not the server's
        from .sandbox import call
        n = call("check_data", str(tmp), kind, image_size, what=f"The check of {file_name[:80]}", error=DataError,
                 wall_s=CHECK_WALL_S)
        os.replace(tmp, final)
    except DataError as e:
        raise DataError(str(e).replace(str(tmp), file_name[:80])) from None
    except OSError as e:
        raise DataError(f"{file_name[:80]}: cannot be kept ({str(e)[:160]})") from None
    finally:
        tmp.unlink(missing_ok=True)
    what = f"{int(n):,} points" if kind == "csv" else f"{int(n):,} images"
    return kind, final, what


def check_task(path: str, kind: str, image_size: int) -> int:
    """The sandbox task behind save_upload: load the file as the worker will, and return how many samples."""
    cfg = TrainConfig(dataset=kind, data_path=path, image_size=image_size)
    try:
        ds = load_dataset(cfg)
        import torch
        if not bool(torch.isfinite(ds.x).all()):
            raise DataError("its values do not fit in floating point (too large): rescale them")
    except DataError:
        raise
    except (ValueError, OSError) as e:
        raise DataError(f"{Path(path).name}: cannot be read ({str(e)[:160]})") from None
    return len(ds.x)


def check_browser_path(data_path: str, runs_dir: Path) -> None:
    """DataError unless `data_path` may be read on behalf of a browser user (see the module docstring)."""
    if not data_path:
        return
    try:
        path = Path(data_path).expanduser().resolve()
    except (RuntimeError, OSError, ValueError):
        raise DataError("data_path: not a usable path") from None
    roots = [uploads_dir(runs_dir).resolve()]
    if os.environ.get("GANLAB_DATA_ROOT"):
        roots.append(Path(os.environ["GANLAB_DATA_ROOT"]).expanduser().resolve())
    if not any(path == r or r in path.parents for r in roots):
        extra = f" or a file under {roots[1]}" if len(roots) > 1 else ""
        raise DataError(f"data_path: the browser can use uploaded files{extra} only: upload your data above")
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise DataError("data_path: not a regular file")
