"""Quality measures for a run, computed at each snapshot without stalling its training thread.

2D mixtures are scored on the snapshot's fixed-noise points at once (microseconds). Images need a classifier
pass over QUALITY_SAMPLES fresh samples, so they go to one process-wide worker thread that uses the run's
eval-mode copy of G (never the trainer's live weights). Results land in the run with `Run.add_quality`.
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
from typing import Any

import numpy as np
import torch

from .data_specs import SPECS
from .metrics import get_classifier, image_metrics, mode_stats

log = logging.getLogger(__name__)
QUALITY_SAMPLES = 1000          # enough for a stable class histogram of 10 classes (100 per class if balanced)


def classifier_kind(dataset: str, sample_shape: tuple[int, ...]) -> str | None:
    """Which bundled classifier can judge samples of this dataset (None: no image measures)."""
    if tuple(sample_shape) != (1, 28, 28):
        return None
    spec = SPECS.get(dataset)
    return spec.classifier if spec else None


class QualityWorker:
    """One daemon thread evaluating image snapshots in order; jobs for a busy run are coalesced."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False

    def submit(self, run, step: int, g: torch.nn.Module, kind: str, real: torch.Tensor, n_classes: int) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="ganlab-quality", daemon=True)
                self._thread.start()
            self._idle.clear()
            self._queue.put((run, step, g, kind, real, n_classes))

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Drop queued jobs and wait for the current one: a daemon thread still inside torch when the
        interpreter exits aborts the process ("terminate called without an active exception")."""
        self._closing = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _work(self) -> None:
        torch.set_num_threads(1)   # share the CPU with training instead of competing for every core
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._closing:
                    continue
                nxt = self._queue.queue[0] if self._queue.qsize() else None
                if nxt is not None and nxt[0] is job[0]:
                    continue   # a newer snapshot of the same run is waiting: skip this one
                evaluate_images(*job)
            except Exception as e:  # noqa: BLE001 - a failed measure never takes a run down
                log.warning("quality evaluation failed: %s", e)
            finally:
                self._queue.task_done()
                if self._queue.unfinished_tasks == 0:
                    self._idle.set()


def evaluate_images(run, step: int, g: torch.nn.Module, kind: str, real: torch.Tensor, n_classes: int) -> None:
    classifier = get_classifier(kind)
    gen = torch.Generator().manual_seed(1234)   # the same z every time: changes come from G, not from noise
    z = g.noise(QUALITY_SAMPLES, gen)             # from G's own prior (normal or uniform)
    y = torch.arange(QUALITY_SAMPLES) % n_classes if n_classes else None
    with torch.no_grad():
        fake = g(z, y).float()
    row = image_metrics(fake, real, classifier)
    run.add_quality({"step": step, **row})


_WORKER = QualityWorker()
atexit.register(_WORKER.shutdown)


def default_quality_fn(run, snap, g: torch.nn.Module, trainer) -> dict[str, Any] | None:
    """Measures for `snap`: returned now for 2D mixtures, queued for images (None returned)."""
    data = trainer.data
    if snap.is_2d:
        if data.modes is None or data.mode_std is None:
            return None
        return mode_stats(np.asarray(snap.fake), data.modes, data.mode_std)
    kind = classifier_kind(trainer.cfg.dataset, tuple(data.sample_shape))
    if kind is None:
        return None
    real = getattr(trainer, "_quality_real", None)
    if real is None:   # a fixed random subset of the data, kept on the CPU for the worker
        idx = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:QUALITY_SAMPLES]
        real = trainer._quality_real = data.x[idx].cpu()
    n_classes = data.num_classes if trainer.conditional else 0
    _WORKER.submit(run, snap.step, g, kind, real, n_classes)
    return None


def wait_idle(timeout: float | None = None) -> bool:
    """Block until queued image evaluations are done (the CLI waits before printing its result)."""
    return _WORKER.wait_idle(timeout)
