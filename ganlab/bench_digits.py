"""digits_s: how long a class waits for readable digits. The bench key for the fastest image preset.

Trains a preset (default mnist-fast) headless on one device and, every `every` steps, scores 1,000 samples from
fixed noise with the bundled digit classifier (as the lessons check does). `digits_s` is the wall time from the
click (data loading and model set-up included) to the first score with mean confidence >= 0.80 and all 10 digits
drawn; the scoring itself is the measuring instrument and its time is left out (the app scores in the quality
worker, beside the run). The classifier is loaded (trained and cached on first use) before the clock starts.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from .checks import image_scores, images_shown
from .config import get_preset
from .metrics import get_classifier
from .trainer import Trainer
from .worker import CPU_THREADS

READABLE = {"conf_min": 0.80, "classes": 10}   # judged by the lessons check's own rule


def time_to_digits(preset: str = "mnist-fast", seed: int = 0, device: str = "cpu", cap_s: float = 300.0,
                   every: int = 100) -> dict[str, Any]:
    """{digits_s, digits_step, digits_conf, digits_curve}; digits_s is None when `cap_s` of training passed first."""
    get_classifier("mnist")
    cfg = get_preset(preset).config(seed=seed, device=device, steps=10_000_000)   # the bench stops it itself
    threads = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)                  # every core, as a worker trains an image run
    try:
        return _race(cfg, device, cap_s, every) | {"digits_preset": preset}
    finally:
        torch.set_num_threads(threads)


def _race(cfg, device: str, cap_s: float, every: int) -> dict[str, Any]:
    clock = time.perf_counter()
    trainer = Trainer(cfg, device=device)
    elapsed, curve, reached = 0.0, [], None
    while reached is None and elapsed < cap_s:
        trainer.train_step()
        if trainer.step % every:
            continue
        elapsed += time.perf_counter() - clock          # stop the clock while the classifier scores
        row = image_scores(trainer, conditional=False)
        curve.append([trainer.step, round(elapsed, 2), round(row["classifier_confidence"], 4),
                      int(row["classes_present"])])
        if images_shown(row, READABLE, conditional=False):
            reached = curve[-1]
        clock = time.perf_counter()
    return {"digits_s": reached[1] if reached else None, "digits_step": reached[0] if reached else None,
            "digits_conf": curve[-1][2] if curve else None, "digits_curve": curve}
