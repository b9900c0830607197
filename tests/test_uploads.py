"""Data a browser user uploads is checked in full at upload; server paths from the browser stay in bounds."""
from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ganlab.dataset import DataError
from ganlab.uploads import check_browser_path, save_upload, uploads_dir
from ui.config_form import parse_config


def _png(w: int, h: int, colour=(200, 30, 30)) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def _csv(rows) -> bytes:
    return "".join(f"{a},{b}\n" for a, b in rows).encode()


RING = [(np.cos(t), np.sin(t)) for t in np.linspace(0, 6, 50)]
GOOD = {
    "points.csv": _csv(RING),
    "header.csv": b"x,y\n" + _csv(RING),
    "semicolons.csv": b"".join(f"{a:.3f};{b:.3f}\n".replace(".", ",").encode() for a, b in RING),
    "near-max-float.csv": _csv([(a * 1e307, b * 1e307) for a, b in RING]),
    "images.zip": _zip({f"img{i}.png": _png(32, 32, (i * 20, 50, 90)) for i in range(12)}),
}
BAD = {
    "empty.csv": (b"", "empty"),
    "binary.csv": (bytes(range(256)) * 40, "cannot read"),
    "overflow.csv": (_csv(RING[:20]) + b"1e400,2\n", "finite"),
    "three columns.csv": (b"1,2,3\n" * 20, "two numbers"),
    "too few.csv": (_csv(RING[:5]), "at least 10"),
    "too big.csv": (b"1,2\n" * (3 * 2**20), "at most 10 MB"),
    "notes.pdf": (b"%PDF-1.4", "upload a .csv"),
    "not a zip.zip": (b"PK\x03\x04garbage", "not a readable zip"),
    "no images.zip": (_zip({"a.txt": b"hello"}), "no readable images"),
    "escaping.zip": (_zip({"../../etc/x.png": _png(8, 8)}), "unsafe path"),
    "bomb.zip": (_zip({"big.png": b"\0" * (150 * 2**20)}), "expands"),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_uploads_are_kept_inside_the_runs_dir(tmp_path, name):
    kind, path, what = save_upload(tmp_path, name, GOOD[name])
    assert path.parent == uploads_dir(tmp_path) and path.is_file() and kind in ("csv", "folder")
    assert what.split()[0].replace(",", "").isdigit()
    again = save_upload(tmp_path, name, GOOD[name])[1]
    assert again == path, "content-addressed: the same file is kept once"


@pytest.mark.parametrize("name", list(BAD))
def test_bad_uploads_are_refused_and_nothing_is_kept(tmp_path, name):
    data, needle = BAD[name]
    with pytest.raises(DataError, match=needle):
        save_upload(tmp_path, name, data)
    assert not any(p.is_file() for p in uploads_dir(tmp_path).glob("*")) if uploads_dir(tmp_path).exists() else True


def test_huge_images_hit_the_pixel_budget_quickly(tmp_path):
    data = _zip({f"p{i}.png": _png(7000, 7000) for i in range(8)})   # 392 million pixels
    t0 = time.monotonic()
    with pytest.raises(DataError, match="million pixels"):
        save_upload(tmp_path, "posters.zip", data)
    assert time.monotonic() - t0 < 60


def test_browser_paths_only_under_the_uploads_or_the_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    for path in ("/etc/hosts", "/dev/zero", "/", str(tmp_path / "elsewhere.csv"), "~/.bashrc"):
        with pytest.raises(DataError, match="uploaded files") as info:
            check_browser_path(path, tmp_path / "runs")
        assert "127.0.0.1" not in str(info.value), "contents never echoed"
    kept = save_upload(tmp_path / "runs", "p.csv", GOOD["points.csv"])[1]
    check_browser_path(str(kept), tmp_path / "runs")
    link = uploads_dir(tmp_path / "runs") / "link.csv"
    os.symlink("/etc/hosts", link)
    with pytest.raises(DataError):
        check_browser_path(str(link), tmp_path / "runs")       # resolved: a link out is still out
    root = tmp_path / "shared-data"
    root.mkdir()
    (root / "mine.csv").write_bytes(GOOD["points.csv"])
    monkeypatch.setenv("GANLAB_DATA_ROOT", str(root))
    check_browser_path(str(root / "mine.csv"), tmp_path / "runs")
    with pytest.raises(DataError, match=str(root)):
        check_browser_path("/etc/hosts", tmp_path / "runs")


def test_the_form_refuses_server_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("GANLAB_DATA_ROOT", raising=False)
    cfg, errors = parse_config({"dataset": "csv", "data_path": "/dev/zero"})
    assert cfg is None and "uploaded files" in errors["data_path"]
    kept = save_upload(tmp_path / "runs", "p.csv", GOOD["points.csv"])[1]
    cfg, errors = parse_config({"dataset": "csv", "data_path": str(kept)})
    assert cfg is not None and errors == {}, errors


def test_uploads_dir_is_no_run(tmp_path):
    from ganlab.registry import RunRegistry
    save_upload(tmp_path, "p.csv", GOOD["points.csv"])
    assert RunRegistry(tmp_path, executor="thread").list() == []
    assert Path(tmp_path / ".uploads").is_dir()
