"""The types every data loader shares: `Dataset` (what a loader returns), `DataError` (what it raises on bad
input), `image_dataset` (uint8 image arrays -> a [-1, 1] float32 Dataset) and two message/path helpers.

Kept apart from the registry (ganlab.data) and the file decoders (ganlab.image_files) so both can use them
without importing each other. Every DataError message is one line that names the file and says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A dataset cannot be loaded; the one-line message names the file and the fix."""


@dataclass
class Dataset:
    name: str
    kind: str                                   # "2d" or "image"
    x: torch.Tensor                             # float32 CPU: (N, 2) or (N, C, H, W) in [-1, 1]
    y: torch.Tensor | None = None               # int64 (N,) labels, or None
    num_classes: int = 0                        # 0 when unlabelled
    class_names: list[str] = field(default_factory=list)
    modes: np.ndarray | None = None             # (K, 2) mixture centres (ring8, grid25)
    mode_std: float | None = None               # std of each mixture component
    skipped: int = 0                            # folder/zip entries that were not readable images
    note: str = ""                              # what the loader dropped or changed, for the UI

    def __post_init__(self) -> None:
        # Cheap checks at the boundary so a loader bug fails here, not deep inside the trainer.
        if self.kind not in ("2d", "image"):
            raise ValueError(f"Dataset.kind must be '2d' or 'image', got {self.kind!r}")
        want = 2 if self.kind == "2d" else 4
        if self.x.dtype != torch.float32 or self.x.ndim != want or (want == 2 and self.x.shape[1] != 2):
            raise ValueError(f"{self.name}: x must be float32 with {want} dims, got {self.x.dtype} "
                             f"{tuple(self.x.shape)}")
        if self.y is not None and (self.y.dtype != torch.int64 or self.y.shape != (len(self.x),)):
            raise ValueError(f"{self.name}: y must be int64 of shape ({len(self.x)},)")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


def image_dataset(name: str, u8: np.ndarray, labels: np.ndarray | None, names: list[str] | None = None,
                  top: int = 255, **extra) -> Dataset:
    """uint8 (N, C, H, W) in 0..top -> float32 [-1, 1] Dataset (labels int64 or None)."""
    # copy(): cached arrays are read-only (torch warns on those); a uint8 copy is 4x cheaper than a float one
    x = torch.from_numpy(u8.copy()).float().div_(top / 2).sub_(1.0)
    if labels is None:
        return Dataset(name, "image", x, **extra)
    k = int(labels.max()) + 1 if len(labels) else 0
    return Dataset(name, "image", x, torch.from_numpy(labels.astype(np.int64)), k,
                   list(names) if names else [str(i) for i in range(k)], **extra)


def existing_path(data_path: str, what: str) -> Path:
    """cfg.data_path as a Path that exists (`what` names the expected kind of file in the message)."""
    if not data_path or not data_path.strip():
        raise DataError(f"data_path is empty: give the path of a {what}")
    try:
        path = Path(data_path.strip()).expanduser()
    except RuntimeError:   # "~name/..." for a user this machine does not have
        raise DataError(f"{data_path.strip()[:200]}: no such {what} (unknown home directory)") from None
    if not path.exists():
        raise DataError(f"{path}: no such {what}")
    return path


def one_line(e: BaseException) -> str:
    """An exception's text on one line, for a DataError message."""
    return " ".join(str(e).split()) or type(e).__name__

