"""The training loop for one GAN: D and G updates, statistics, snapshots and checkpoint state.

`Trainer` is synchronous and single-threaded: a run's worker (ganlab.worker) drives it, and so do the lessons
check and the benchmark. It never imports streamlit and never syncs with the device on an ordinary step:
statistics are gathered on the device only on every `stats_every`-th step and read back in one transfer
(`collect`), the deliberate sync point.

Hot-path choices (see docs/architecture.md, performance facts): the whole dataset lives on the device and batches are
drawn by index (no DataLoader); Adam is fused where the device supports it; D's parameters stop requiring
gradients during G's update so its weight gradients are not computed for nothing. The optimisers themselves (their
kernels, device-tensor learning rates, and their state in checkpoints) are built in ganlab.optimizers.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

import numpy as np
import torch

from .config import LIVE_FIELDS, TrainConfig
from .cuda_graph import WARMUP_STEPS, StepGraph, graph_key, why_not
from .data import load_dataset
from .dataset import Dataset
from .latent import z_span
from .losses import get_loss, gradient_penalty, r1_penalty
from .models import build_models, use_generator
from .optimizers import load_optimizer_state, lr_value, make_optimizer, portable_state, set_lr
from .snapshots import Snapshot

_INIT_LOCK = threading.Lock()   # model init uses torch's global RNG: seed + build must not interleave
HIST_BINS = 40
FIELD_RES = 64                  # D heatmap resolution for 2D runs
MANIFOLD_RES = 17               # lines of G's noise-grid image for 2D runs
_LIVE = set(LIVE_FIELDS) | {"steps"}   # steps too: the CLI can extend a resumed run
STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "grad_g", "grad_d", "wdist")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' was asked for but is not available; use auto or cpu")
    return torch.device(name)


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class Trainer:
    """One GAN being trained. `step` counts G updates; `d_updates` counts D updates."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset | None = None, device: torch.device | str | None = None):
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        self.data = dataset if dataset is not None else load_dataset(cfg)
        self.loss = get_loss(cfg.loss)
        self.is_2d = self.data.kind == "2d"
        self.conditional = cfg.conditional
        n_classes = self.data.num_classes
        if cfg.conditional and (self.data.y is None or not n_classes):
            raise ValueError(f"conditional: dataset {cfg.dataset!r} has no labels")
        with _INIT_LOCK:
            torch.manual_seed(cfg.seed)
            self.G, self.D = build_models(cfg, self.data.sample_shape, n_classes)
        self.G.to(self.device)
        self.D.to(self.device)
        if self.device.type == "cpu":   # convolutions in oneDNN's NHWC kernels: a DCGAN step 15-30% faster on a
            for net in (self.G, self.D):   # CPU (bench: channels_last_dcgan); MLP weights are 2-d, left as they are
                net.to(memory_format=torch.channels_last)
        self.g_params = list(self.G.parameters())
        self.d_params = list(self.D.parameters())
        self.opt_g = make_optimizer(cfg.g_opt, self.g_params, cfg.g_lr, (cfg.beta1, cfg.beta2), self.device)
        self.opt_d = make_optimizer(cfg.d_opt, self.d_params, cfg.d_lr, (cfg.beta1, cfg.beta2), self.device)
        # The dataset lives on the device; batches are drawn by index with the run's own generator.
        self.x = self.data.x.to(self.device)
        self.y = self.data.y.to(self.device) if self.data.y is not None else None
        self.n = self.x.shape[0]
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed)
        use_generator(self.G, self.gen)   # dropout masks come from the run's generator, saved in checkpoints
        use_generator(self.D, self.gen)
        cpu_gen = torch.Generator().manual_seed(cfg.seed + 1)
        n_fixed = cfg.grid_size * (16 if self.is_2d else 1)
        self.fixed_z = self._noise(n_fixed, cpu_gen).to(self.device)   # the same z for every snapshot
        self.fixed_y = (torch.arange(n_fixed) % n_classes).to(self.device) if self.conditional else None
        self.fixed_real_idx = torch.randperm(self.n, generator=cpu_gen)[:min(self.n, 1024)].to(self.device)
        self.step = 0
        self.d_updates = 0
        self._stats: dict[str, torch.Tensor] = {}
        self.nonfinite: list[str] = []          # statistics that came back NaN/Inf at the last collect
        self._last_collect = (time.perf_counter(), 0)
        self._score_edges: np.ndarray | None = None
        self._extent = self._field_extent() if self.is_2d else None
        self._autocast = (self.device.type == "cuda" and cfg.bf16)
        self._fake_for_g: tuple[torch.Tensor, torch.Tensor | None] | None = None   # see step_d(keep_fake)
        self._graph: StepGraph | None = None    # the captured step on CUDA (ganlab.cuda_graph)
        self._graph_failed: tuple | None = None   # graph_key of a capture that failed: not tried again
        self._eager_steps = 0                   # eager steps since the graph was last dropped
        self.graph_note = why_not(self) or f"eager for the first {WARMUP_STEPS} steps, then one CUDA graph"

    # --- sampling ------------------------------------------------------------------------------------
    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.G.noise(n, generator if generator is not None else self.gen)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(self.n, (self.cfg.batch_size,), generator=self.gen, device=self.device)
        return self.x[idx], (self.y[idx] if self.conditional else None)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        return torch.randint(self.data.num_classes, (n,), generator=self.gen, device=self.device)

    def _instance_noise(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.cfg.instance_noise * max(0.0, 1.0 - self.step / self.cfg.steps)   # annealed to 0
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=self.gen, device=self.device)

    def _autocast_ctx(self):
        if self._autocast:   # no weight-cast cache: a captured step must cast the current weights every replay
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    # --- updates -------------------------------------------------------------------------------------
    def _apply_lr(self) -> None:
        decay = 1.0
        if self.cfg.lr_decay == "linear":
            decay = max(0.0, 1.0 - self.step / self.cfg.steps)
        for group in self.opt_g.param_groups:
            set_lr(group, self.cfg.g_lr * decay)
        for group in self.opt_d.param_groups:
            set_lr(group, self.cfg.d_lr * decay)

    def step_d(self, record: bool = False, keep_fake: bool = False) -> None:
        """One discriminator update. `keep_fake`: the G update that follows reuses these fakes."""
        cfg = self.cfg
        real, y = self._batch()
        # Reusing the last D update's fakes for G's update (as pytorch/examples and the DCGAN reference code do)
        # saves one G forward per step: ~20% of a DCGAN step on CPU. D only ever sees them detached.
        with torch.set_grad_enabled(keep_fake), self._autocast_ctx():
            fake = self.G(self._noise(cfg.batch_size), y if self.conditional else None)
        if keep_fake:
            self._fake_for_g = (fake, y)
        fake = fake.detach().float()
        real_in, fake_in = self._instance_noise(real), self._instance_noise(fake)
        with self._autocast_ctx():
            d_real = self.D(real_in, y).float()
            d_fake = self.D(fake_in, y).float()
            loss = self.loss.d_loss(d_real, d_fake, cfg.label_smoothing)
            if self.loss.gradient_penalty and cfg.gp_lambda > 0:
                loss = loss + cfg.gp_lambda * gradient_penalty(lambda v: self.D(v, y), real, fake, self.gen)
            if cfg.r1_gamma > 0:
                loss = loss + cfg.r1_gamma * r1_penalty(lambda v: self.D(v, y), real_in)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        if record:
            self._stats.update(loss_d=loss.detach(), grad_d=_grad_norm(self.d_params),
                               d_real=self.loss.score(d_real.detach()).mean(),
                               d_fake=self.loss.score(d_fake.detach()).mean(),
                               wdist=(d_real.detach().mean() - d_fake.detach().mean()))
        self.opt_d.step()
        self.d_updates += 1

    def step_g(self, record: bool = False) -> None:
        """One generator update (D's weights are frozen for it)."""
        cfg = self.cfg
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            kept, self._fake_for_g = self._fake_for_g, None   # valid only until G's weights change
            with self._autocast_ctx():
                if kept is not None:
                    fake, y = kept
                else:
                    y = self._fake_labels(cfg.batch_size)
                    fake = self.G(self._noise(cfg.batch_size), y)
                loss = self.loss.g_loss(self.D(self._instance_noise(fake), y).float())
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        if record:
            self._stats.update(loss_g=loss.detach(), grad_g=_grad_norm(self.g_params))
        self.opt_g.step()

    def train_step(self) -> bool:
        """`d_steps` D updates then one G update. Returns True when this step recorded statistics."""
        self._apply_lr()
        record = (self.step + 1) % self.cfg.stats_every == 0
        graph = self._step_graph()
        if graph is not None:
            graph.replay()
            self.d_updates += self.cfg.d_steps
            if record:
                self._stats.update(graph.stats)
        elif not self._capture(record):
            self._eager_step(record)
            self._eager_steps += 1
        self.step += 1
        return record

    def single_step(self, kind: str) -> bool:
        """One update for the step buttons, always recorded: 'd' (one D update), 'g' (one G update, which
        counts as a step) or 'both' (d_steps D updates then one G update). Statistics of the half that did
        not run stay NaN in the row."""
        if kind not in ("d", "g", "both"):
            raise ValueError(f"step kind must be d, g or both, got {kind!r}")
        self._apply_lr()
        if kind in ("d", "both"):
            for _ in range(self.cfg.d_steps if kind == "both" else 1):
                self.step_d(record=True)
        if kind in ("g", "both"):
            self.step_g(record=True)
            self.step += 1
        return True

    def _eager_step(self, record: bool) -> None:
        last = self.cfg.d_steps - 1
        for i in range(self.cfg.d_steps):
            self.step_d(record and i == last, keep_fake=i == last)
        self.step_g(record)

    # --- CUDA graph (see ganlab.cuda_graph) ----------------------------------------------------------------
    def _step_graph(self) -> StepGraph | None:
        if self._graph is not None and (self._graph.key != graph_key(self) or why_not(self)):
            self.drop_graph()   # a live edit changed what the captured step does: eager until captured again
        return self._graph

    @property
    def graphed(self) -> bool:
        """True while steps replay a captured CUDA graph."""
        return self._graph is not None

    def drop_graph(self) -> None:
        self._graph = None
        self._eager_steps = 0
        self.graph_note = why_not(self) or f"eager for {WARMUP_STEPS} steps after a change, then a new CUDA graph"

    def _capture(self, record: bool) -> bool:
        """Capture the step when it is due. True when this call also did this step's work (its warm-up)."""
        if self._eager_steps < WARMUP_STEPS or why_not(self) or self._graph_failed == graph_key(self):
            return False
        d_updates = self.d_updates
        try:
            self._graph = StepGraph(self, lambda: self._eager_step(True))
            self.graph_note = "one CUDA graph per step"
        except Exception as e:   # noqa: BLE001 - capture is an optimisation: report it and train eagerly
            self._graph, self._graph_failed = None, graph_key(self)
            self.graph_note = f"eager (CUDA graph capture failed: {type(e).__name__}: {str(e)[:120]})"
            self._fake_for_g = None
            self.opt_g.zero_grad(set_to_none=True)   # gradients the capture allocated never held values
            self.opt_d.zero_grad(set_to_none=True)
            torch.cuda.synchronize(self.device)
        self.d_updates = d_updates + self.cfg.d_steps   # the warm-up step counts; the capture ran nothing
        if not record:
            self._stats.clear()
        return True

    @property
    def epoch(self) -> int:
        """Passes over the data counted in G iterations (one iteration draws one batch per D step)."""
        return self.step * self.cfg.batch_size // self.n

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n / self.cfg.batch_size))

    def collect(self) -> dict[str, float]:
        """Read the recorded statistics back to the host. This is the deliberate CPU-GPU sync point."""
        now = time.perf_counter()
        t0, s0 = self._last_collect
        self._last_collect = (now, self.step)
        names = [k for k in STAT_NAMES if k in self._stats]
        values = torch.stack([self._stats[k].float().reshape(()) for k in names]).tolist() if names else []
        row: dict[str, float] = {k: float("nan") for k in STAT_NAMES}
        row.update(zip(names, values))
        self.nonfinite = [k for k, v in zip(names, values) if not math.isfinite(v)]
        self._stats.clear()
        if not self.loss.gradient_penalty:
            row["wdist"] = float("nan")
        row.update(step=self.step, epoch=self.epoch, time=time.time(),
                   images_per_s=(self.step - s0) * self.cfg.batch_size / max(now - t0, 1e-9),
                   lr_g=lr_value(self.opt_g.param_groups[0]), lr_d=lr_value(self.opt_d.param_groups[0]))
        return row

    def set_config(self, cfg: TrainConfig) -> None:
        """Live edit: lr, D steps and switches take effect on the next step (the architecture is fixed)."""
        fixed = {k: v for k, v in cfg.to_dict().items() if k not in _LIVE}
        mine = {k: v for k, v in self.cfg.to_dict().items() if k not in _LIVE}
        if fixed != mine:
            changed = sorted(k for k in fixed if fixed[k] != mine[k])
            raise ValueError(f"only lr, D steps and switches change live; {', '.join(changed)} needs a new run")
        self.cfg = cfg
        self._step_graph()

    # --- snapshots -----------------------------------------------------------------------------------
    def _field_extent(self) -> tuple[float, float]:
        half = float(self.data.x.abs().max()) * 1.25 + 0.25
        return -half, half

    def _score_bins(self, values: np.ndarray) -> np.ndarray:
        if self.loss.uses_sigmoid:
            return np.linspace(0.0, 1.0, HIST_BINS + 1)
        if self._score_edges is None:   # raw scores: fixed for the run from the first snapshot's spread
            lo, hi = float(np.min(values)), float(np.max(values))
            pad = max(hi - lo, 1.0)
            self._score_edges = np.linspace(lo - pad, hi + pad, HIST_BINS + 1)
        return self._score_edges

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        was = self.G.training
        self.G.eval()
        try:
            return self.G(z, y).float()
        finally:
            self.G.train(was)

    @contextlib.contextmanager
    def _d_for_scoring(self):
        """D for pictures without side effects on training (or the run would depend on how often pages look):
        dropout off and spectral norm's power iteration frozen (eval); batch norm keeps batch statistics, as in
        training, and its running statistics are put back afterwards."""
        saved = [b.clone() for b in self.D.buffers()]
        modes = [(m, m.training) for m in self.D.modules()]
        for m, was in modes:
            m.training = was and isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        try:
            yield
        finally:
            for m, was in modes:
                m.training = was
            with torch.no_grad():
                for b, value in zip(self.D.buffers(), saved):
                    b.copy_(value)

    def snapshot(self) -> Snapshot:
        """Samples from fixed noise, D score histograms and, for 2D, the layered view. Costs a few forwards."""
        fake = self.generate(self.fixed_z, self.fixed_y)
        real = self.x[self.fixed_real_idx]
        real_y = self.y[self.fixed_real_idx] if self.conditional else None
        n = min(len(real), len(fake))
        fake_y = self.fixed_y[:n] if self.conditional else None
        with torch.no_grad(), self._d_for_scoring():
            s_real = self.loss.score(self.D(real[:n], real_y[:n] if real_y is not None else None)).float().cpu().numpy()
            s_fake = self.loss.score(self.D(fake[:n], fake_y)).float().cpu().numpy()
        edges = self._score_bins(np.concatenate([s_real, s_fake]))
        clip = (edges[0], edges[-1])
        snap = Snapshot(step=self.step, epoch=self.epoch, time=time.time(), fake=fake.cpu().numpy(),
                        labels=self.fixed_y.cpu().numpy() if self.conditional else None,
                        hist_real=np.histogram(np.clip(s_real, *clip), edges)[0],
                        hist_fake=np.histogram(np.clip(s_fake, *clip), edges)[0],
                        score_edges=edges, score_label="D(x) = P(real)" if self.loss.uses_sigmoid else "critic score")
        if self.is_2d:
            self._add_2d_layers(snap, real)
        return snap

    def _add_2d_layers(self, snap: Snapshot, real: torch.Tensor) -> None:
        lo, hi = self._extent
        axis = torch.linspace(lo, hi, FIELD_RES, device=self.device)
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
        label = (torch.zeros(len(grid), dtype=torch.long, device=self.device) if self.conditional else None)
        fake = torch.as_tensor(snap.fake, device=self.device)
        fy = self.fixed_y
        with torch.no_grad(), self._d_for_scoring():
            field = self.loss.score(self.D(grid, label)).float().view(FIELD_RES, FIELD_RES)
            span = z_span(self.cfg.noise_dist)   # the grid covers the prior as the Latent page's sliders do
            line = torch.linspace(-span, span, MANIFOLD_RES, device=self.device)
            k = min(2, self.cfg.noise_dim)
            if k == 2:
                a, b = torch.meshgrid(line, line, indexing="ij")
                zs = torch.zeros(MANIFOLD_RES * MANIFOLD_RES, self.cfg.noise_dim, device=self.device)
                zs[:, 0], zs[:, 1] = a.reshape(-1), b.reshape(-1)
                shape = (MANIFOLD_RES, MANIFOLD_RES, 2)
            else:
                zs = line.view(-1, 1)
                shape = (1, MANIFOLD_RES, 2)
            zy = torch.zeros(len(zs), dtype=torch.long, device=self.device) if self.conditional else None
            manifold = self.generate(zs, zy).view(*shape)
        # Gradient arrows: the direction G's loss pushes each fake point (minus dL_G/dx).
        x = fake.detach().clone().requires_grad_(True)
        was = self.D.training
        self.D.eval()
        try:
            loss = self.loss.g_loss(self.D(x, fy)) * len(x)
            (grad,) = torch.autograd.grad(loss, x)
        finally:
            self.D.train(was)
        snap.real = real.cpu().numpy()
        snap.field_xs = snap.field_ys = axis.cpu().numpy()
        snap.field = field.cpu().numpy()
        snap.manifold = manifold.cpu().numpy()
        snap.grads = (-grad).cpu().numpy()

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser state, counters, RNG state."""
        return {"config": self.cfg.to_dict(), "G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": portable_state(self.opt_g.state_dict()),
                "opt_d": portable_state(self.opt_d.state_dict()),
                "step": self.step,
                "d_updates": self.d_updates, "rng": self.gen.get_state(), "fixed_z": self.fixed_z.cpu(),
                "fixed_y": self.fixed_y.cpu() if self.fixed_y is not None else None,
                "score_edges": torch.as_tensor(self._score_edges) if self._score_edges is not None else None}

    def load_state_dict(self, state: dict[str, Any], *, weights_only: bool = False) -> None:
        """Continue from `state`. `weights_only` loads G and D (e.g. an uploaded file) and keeps counters at 0."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self._fake_for_g = None   # made by the old weights
        if weights_only:
            return
        load_optimizer_state(self.opt_g, state["opt_g"])
        load_optimizer_state(self.opt_d, state["opt_d"])
        self.drop_graph()   # the optimiser's state tensors are new: the captured step points at the old ones
        self.step = int(state["step"])
        self.d_updates = int(state["d_updates"])
        try:
            self.gen.set_state(state["rng"])
        except RuntimeError:   # saved on another device type (a GPU server's run continued on a laptop)
            self.gen.manual_seed(self.cfg.seed + self.step)
        self.fixed_z = state["fixed_z"].to(self.device)
        if state.get("fixed_y") is not None:
            self.fixed_y = state["fixed_y"].to(self.device)
        if state.get("score_edges") is not None:
            self._score_edges = np.asarray(state["score_edges"])
        self._last_collect = (time.perf_counter(), self.step)
