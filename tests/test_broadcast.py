"""The class broadcast (ganlab.broadcast): pushed, read by any process, replaced with a new id, cleared; a
damaged file reads as no broadcast; bad input is refused with a message."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ganlab import broadcast


def test_push_read_replace_clear(tmp_path: Path) -> None:
    assert broadcast.current(tmp_path) is None
    one = broadcast.push(tmp_path, "lesson", "Learn", {"lesson": "mode-collapse"}, "  Mode   collapse ")
    got = broadcast.current(tmp_path)
    assert got == one and got["text"] == "Mode collapse" and got["params"] == {"lesson": "mode-collapse"}
    two = broadcast.push(tmp_path, "pin", "Train", {"run": "r1"}, "Watch r1")
    assert two["id"] != one["id"] and broadcast.current(tmp_path)["id"] == two["id"]
    broadcast.clear(tmp_path)
    broadcast.clear(tmp_path)   # twice is fine
    assert broadcast.current(tmp_path) is None
    assert not [p for p in (tmp_path / ".class").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind,page,text", [("shout", "Train", ""), ("link", "../etc", ""),
                                            ("link", "Train?x=1", ""), ("link", "", "")])
def test_bad_broadcasts_are_refused(tmp_path: Path, kind: str, page: str, text: str) -> None:
    with pytest.raises(ValueError):
        broadcast.push(tmp_path, kind, page, {}, text)
    assert broadcast.current(tmp_path) is None


def test_long_text_is_cut(tmp_path: Path) -> None:
    assert len(broadcast.push(tmp_path, "link", "Train", {}, "x" * 10_000)["text"]) == broadcast.MAX_TEXT


DAMAGED = [b"", b"{", b"[]", b"null", b'"text"', json.dumps({"kind": "lesson"}).encode(),
           json.dumps({"id": "a", "kind": "lesson", "page": "Learn", "text": 5, "params": {}}).encode(),
           json.dumps({"id": "a", "kind": "lesson", "page": "../x", "text": "", "params": {}}).encode(),
           json.dumps({"id": "a", "kind": "lesson", "page": "Learn", "text": "", "params": {"a": 1}}).encode(),
           json.dumps({"id": "a", "kind": "evil", "page": "Learn", "text": "", "params": {}}).encode(),
           b"\xff\xfe" * 10, b" " * (broadcast.MAX_FILE_BYTES + 1)]


@pytest.mark.parametrize("raw", DAMAGED)
def test_a_damaged_file_reads_as_none(tmp_path: Path, raw: bytes) -> None:
    target = broadcast.path(tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(raw)
    assert broadcast.current(tmp_path) is None


def test_a_change_on_disk_is_seen_although_reads_are_cached(tmp_path: Path) -> None:
    broadcast.push(tmp_path, "link", "Train", {}, "first")
    assert broadcast.current(tmp_path)["text"] == "first"
    target = broadcast.path(tmp_path)
    item = json.loads(target.read_text())
    item["text"] = "second (another server)"
    target.write_text(json.dumps(item))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert broadcast.current(tmp_path)["text"] == "second (another server)"
