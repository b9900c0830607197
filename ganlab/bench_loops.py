"""The loops that ganlab.bench times, one step at a time, each returning the samples it used.

  examples  `ExamplesLoop`: pytorch/examples dcgan's loop on our G and D: a DataLoader of uint8 PIL images with
            per-image ToTensor + Normalize, shuffle, default (non-fused) Adam, five `.item()` per step;
  trainer   `trainer_step`: `Trainer.train_step` + `collect`, as the engine calls them;
  bare      `bare_step`: the trainer's nets, optimisers, in-memory batches and D objective, nothing else;
  engine    `engine_window`: a real `Run` in its worker process (`start_paused`), resumed for one window and
            timed from the step and wall time its worker recorded.
`timed` gives the samples per second of one in-process loop over a window; `wait_for` and `next_step` wait on runs.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable

import numpy as np
import torch

from .config import TrainConfig
from .dataset import Dataset
from .losses import gradient_penalty, r1_penalty
from .models import build_models
from .registry import RunRegistry
from .runs import Run
from .trainer import Trainer


def wait_for(cond: Callable[[], bool], timeout: float = 120.0, poll: float = 0.005) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark: a run did not reach the expected state in time")
        time.sleep(poll)


# --- the loops ---------------------------------------------------------------------------------------------
def timed(step: Callable[[], int], seconds: float, device: torch.device) -> float:
    """Samples per second of `step()` (which returns the samples it used) over about `seconds`."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)   # queued kernels count
    step()                     # untimed: the first step after another loop pays for cold caches
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += step()
    sync()
    return n / (time.perf_counter() - t0)


def trainer_step(t: Trainer) -> int:
    if t.train_step():
        t.collect()            # the engine's sync point, every stats_every steps
    return t.cfg.batch_size


def bare_step(t: Trainer) -> int:
    """One D and one G update with the trainer's nets and optimisers, and nothing else."""
    cfg, dev, bs = t.cfg, t.device, t.cfg.batch_size
    for i in range(cfg.d_steps):
        real = t.x[torch.randint(t.n, (bs,), device=dev)]
        with torch.set_grad_enabled(i == cfg.d_steps - 1):   # G's update reuses the last fakes, as Trainer does
            fake = t.G(torch.randn(bs, cfg.noise_dim, device=dev))
        loss_d = t.loss.d_loss(t.D(real), t.D(fake.detach()))
        if t.loss.gradient_penalty and cfg.gp_lambda > 0:   # the same objective as the trainer's (ring8: R1)
            loss_d = loss_d + cfg.gp_lambda * gradient_penalty(t.D, real, fake.detach())
        if cfg.r1_gamma > 0:
            loss_d = loss_d + cfg.r1_gamma * r1_penalty(t.D, real)
        t.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        t.opt_d.step()
    t.D.requires_grad_(False)
    loss_g = t.loss.g_loss(t.D(fake))
    t.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    t.opt_g.step()
    t.D.requires_grad_(True)
    return bs


class _PilDigits(torch.utils.data.Dataset):
    """The data set as torchvision's MNIST serves it: one PIL image per item, transformed per item."""

    def __init__(self, data: Dataset):
        from torchvision import transforms
        self.u8 = ((data.x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        self.y = data.y
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self) -> int:
        return len(self.u8)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.transform(Image.fromarray(self.u8[i, 0], mode="L")), int(self.y[i])


class ExamplesLoop:
    """pytorch/examples dcgan/main.py's loop on our G and D (logits, so BCEWithLogits replaces BCELoss)."""

    def __init__(self, cfg: TrainConfig, data: Dataset, device: torch.device):
        # workers=0: the examples' 2 worker processes would compete for the same cores as the arithmetic
        loader = torch.utils.data.DataLoader(_PilDigits(data), batch_size=cfg.batch_size, shuffle=True)
        self.batches = itertools.chain.from_iterable(loader for _ in itertools.count())
        torch.manual_seed(cfg.seed)
        self.G, self.D = (m.to(device) for m in build_models(cfg, data.sample_shape))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
        self.criterion = torch.nn.BCEWithLogitsLoss()
        self.nz, self.device = cfg.noise_dim, device

    def step(self) -> int:
        real = next(self.batches)[0].to(self.device)
        b = real.size(0)
        self.D.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        output = self.D(real)
        err_d_real = self.criterion(output, label)
        err_d_real.backward()
        d_x = torch.sigmoid(output).mean().item()
        fake = self.G(torch.randn(b, self.nz, device=self.device))
        label.fill_(0.0)
        output = self.D(fake.detach())
        err_d_fake = self.criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = torch.sigmoid(output).mean().item()
        err_d = err_d_real + err_d_fake
        self.opt_d.step()
        self.G.zero_grad()
        label.fill_(1.0)
        output = self.D(fake)
        err_g = self.criterion(output, label)
        err_g.backward()
        d_g_z2 = torch.sigmoid(output).mean().item()
        self.opt_g.step()
        self.logged = [err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2]   # the examples print these every step
        return b


# --- runs in their workers -----------------------------------------------------------------------------------
def start_paused(reg: RunRegistry, cfg: TrainConfig, name: str) -> Run:
    run = reg.create(cfg, name, start=True, paused=True)
    wait_for(lambda: run.state == "paused" or not run.alive, timeout=120)
    if not run.alive:
        raise RuntimeError(f"benchmark run {name} ended: {run.state}: {run.message}")
    return run


def _rows_after(run: Run, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(steps, times) of the history rows the worker recorded after wall time `t`."""
    h = run.view(with_snapshots=False).history
    keep = h["time"] > t
    return h["step"][keep], h["time"][keep]


def next_step(run: Run, after: int, timeout: float = 120.0) -> tuple[int, float]:
    """The first recorded step past `after` and the wall time the worker recorded it."""
    wait_for(lambda: run.step > after or not run.alive, timeout)
    if not run.alive:
        raise RuntimeError(f"benchmark run ended: {run.state}: {run.message}")
    h = run.view(with_snapshots=False).history
    i = int(np.argmax(h["step"] > after))
    return int(h["step"][i]), float(h["time"][i])


def engine_window(run: Run, seconds: float) -> float:
    """Samples/s of a paused run resumed for about `seconds`, from the rows its worker recorded (step and
    wall time of each), skipping the first moments; the window grows until it holds 3 rows. Paused after."""
    run.resume()
    wait_for(lambda: run.state == "running" or not run.alive)
    t0 = time.time() + min(1.0, seconds / 3)   # the first steps after resuming are warm-up
    time.sleep(seconds + 1.0)
    wait_for(lambda: len(_rows_after(run, t0)[0]) >= 3 or not run.alive, timeout=120)
    run.pause()
    wait_for(lambda: run.state == "paused" or not run.alive)
    steps, times = _rows_after(run, t0)
    if len(steps) < 2:
        raise RuntimeError(f"benchmark run ended: {run.state}: {run.message}")
    return float(steps[-1] - steps[0]) * run.cfg.batch_size / max(float(times[-1] - times[0]), 1e-9)
