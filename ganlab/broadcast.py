"""The instructor's message to the class: one current broadcast (a lesson, a link or a pinned run) on disk.

It lives in `<runs>/.class/broadcast.json`, written atomically, so every server process on the runs directory
(the stateless web tier) shows the same banner, and a restart keeps it. Each broadcast has a fresh id: a
session that dismissed or followed one is shown the next. Reads are cheap (the file's mtime is checked first)
because every open page polls it; a damaged file reads as "no broadcast", never as an error on 40 screens.
No streamlit here: ui/classroom.py draws the banner.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

KINDS = ("lesson", "link", "pin")
MAX_TEXT = 300
MAX_FILE_BYTES = 64_000
_CACHE: dict[str, tuple[float, dict[str, Any] | None]] = {}
_LOCK = threading.Lock()


def path(runs_dir: Path | str) -> Path:
    return Path(runs_dir) / ".class" / "broadcast.json"


def push(runs_dir: Path | str, kind: str, page: str, params: dict[str, str], text: str) -> dict[str, Any]:
    """Replace the class's broadcast; returns it. Raises ValueError for a kind, page or text that is not fit."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if not isinstance(page, str) or not page.isidentifier():
        raise ValueError("page must be one of the lab's pages")
    text = " ".join(str(text).split())[:MAX_TEXT]
    item = {"id": uuid.uuid4().hex, "kind": kind, "page": page, "text": text, "time": time.time(),
            "params": {str(k)[:40]: str(v)[:400] for k, v in dict(params).items()}}
    target = path(runs_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(item))
    os.replace(tmp, target)
    return item


def clear(runs_dir: Path | str) -> None:
    try:
        path(runs_dir).unlink()
    except FileNotFoundError:
        pass


def current(runs_dir: Path | str) -> dict[str, Any] | None:
    """The current broadcast, or None (none pushed, cleared, or a file that is not one)."""
    target = path(runs_dir)
    try:
        mtime = target.stat().st_mtime_ns
    except OSError:
        return None
    key = str(target)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached and cached[0] == mtime:
        return cached[1]
    item = _read(target)
    with _LOCK:
        _CACHE[key] = (mtime, item)
    return item


def _read(target: Path) -> dict[str, Any] | None:
    try:
        if target.stat().st_size > MAX_FILE_BYTES:
            return None
        item = json.loads(target.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(item, dict):
        return None
    ok = (item.get("kind") in KINDS and isinstance(item.get("id"), str) and isinstance(item.get("text"), str)
          and isinstance(item.get("page"), str) and item["page"].isidentifier()
          and isinstance(item.get("params"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in item["params"].items()))
    return item if ok else None
