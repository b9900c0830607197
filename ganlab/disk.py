"""Keeping run directories' disk use bounded: how many snapshots and milestone checkpoints a run keeps (`thin`
spaces old ones out log-wise), size limits from the environment (`budget_bytes`), sizes of files and folders,
and `sweep_temp`, which clears the temp files and half-done deletes that a killed writer leaves behind; and
`cache_root`, this machine's cache of things ganlab builds once (classifiers, downloads, lesson timings).

Plain file-system code with no knowledge of RunStore; ganlab.store and ganlab.registry apply it.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def cache_root() -> Path:
    """$GANLAB_CACHE, default ~/.cache/ganlab."""
    return Path(os.environ.get("GANLAB_CACHE") or "~/.cache/ganlab").expanduser()


MAX_SNAPSHOT_FILES = 240     # snapshots kept on disk per run: the newest half dense, older ones thinned 2:1
MAX_MILESTONES = 8           # milestone checkpoints kept per run: older ones thinned 2:1 the same way
STALE_TMP_S = 600.0          # a temp file this old belongs to a write that died (a kill mid-checkpoint)


def thin(steps: list[int], limit: int) -> list[int]:
    """The steps to delete so at most `limit` remain: the first and the newest half stay, every other one of
    the older half goes. Applied each time the limit is passed, old steps end up log-spaced."""
    if len(steps) <= limit or limit < 4:
        return []
    half = len(steps) // 2
    older = steps[1:half]
    return older[::2]


def sweep_temp(runs_dir: Path) -> int:
    """Remove temp files of writes that never finished (`.<name>.<pid>....tmp` older than STALE_TMP_S or
    whose writer process is gone); returns how many went."""
    removed = 0
    now = time.time()
    try:
        dirs = [p for p in Path(runs_dir).iterdir() if p.is_dir()]
    except OSError:
        return 0
    for d in dirs:
        if d.name.startswith(".trash-"):   # a delete that a kill interrupted
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
            continue
        for sub in (d, d / "snapshots", d / "checkpoints"):
            try:
                tmps = list(sub.glob(".*.tmp"))
            except OSError:
                continue
            for tmp in tmps:
                parts = tmp.name.split(".")
                pid = int(parts[-4]) if len(parts) >= 5 and parts[-4].isdigit() else None
                try:
                    old = now - tmp.stat().st_mtime > STALE_TMP_S
                    if old or (pid is not None and not _pid_running(pid)):
                        tmp.unlink()
                        removed += 1
                except OSError:
                    continue
    return removed


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_size(path: Path) -> int:
    """Bytes of `path`, 0 when it is missing."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def budget_bytes(var: str, default_mb: float) -> int:
    """A size limit from the environment in MB (e.g. GANLAB_RUN_BUDGET_MB), as bytes; a bad value keeps the default."""
    try:
        mb = float(os.environ.get(var, default_mb))
    except ValueError:
        mb = default_mb
    return int(max(mb, 0.01) * 2**20)


def dir_size(path: Path) -> int:
    """Bytes of every file under `path` (files that vanish meanwhile count 0)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total
