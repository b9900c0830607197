"""Seed ensembles: K runs of one 2D MLP config that differ only in seed, trained as one batched model.

The K members' G and D weights are stacked along a leading K dimension ([K, out, in] and [K, out]) and each
layer runs as one batched matmul (torch.baddbmm) for all members. Members never mix: member k's outputs, losses
and gradients depend only on member k's weights and draws, so one backward over the sum of the members' losses
gives each member exactly its own gradient, and one elementwise optimiser (Adam, RMSprop or SGD, from
`optimizers.make_optimizer`) over the stacked tensors equals K separate ones (the lr, and its decay, is shared).

Member k is `Trainer(cfg.replace(seed=seeds[k]))` up to float rounding: its data set is loaded with its seed,
its nets are initialised as the Trainer does (torch's global seed set to its seed, then `build_models`), and it
draws batch indices, noise, instance noise and gradient-penalty interpolates from its own torch.Generator, in
the order the Trainer does (tests/test_ensemble.py compares both step by step).

A member whose loss or gradient turns non-finite is marked diverged (`diverged_at[k]`, the step): that update
and every later one leaves its parameters and optimiser state as they were (its gradients are zeroed and,
since Adam and RMSprop would still move a parameter on momentum alone, its slices of the parameters and of the
optimiser state are put back after each step). The other members go on; the frozen one's statistics read NaN.

Supported: 2D data sets with model mlp, every loss (with gp_lambda), r1_gamma, d_steps, instance noise, label
smoothing, lr decay, batch size, widths, noise_dim / noise_dist, adam / rmsprop / sgd. Refused with a
ConfigError naming the field: image data sets, conditional, spectral_norm, d_dropout, bf16. The step is eager
(no CUDA graph). Speed: `measure_speedup` (`python -m ganlab bench` keys ensemble_speedup_8 and its matmul
roofline ensemble_bound_8).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, TrainConfig, get_preset
from .data import load_dataset
from .losses import get_loss
from .models import build_models
from .optimizers import make_optimizer
from .trainer import _INIT_LOCK, STAT_NAMES, Trainer, resolve_device

Tensor = torch.Tensor
Layers = list[tuple[Tensor, Tensor]]   # (weight [K, out, in], bias [K, out]) per linear layer, input first


def check_supported(cfg: TrainConfig) -> None:
    """Raise ConfigError (a ValueError) naming the first field an ensemble cannot train."""
    if not cfg.is_2d:
        raise ConfigError("dataset", f"ensembles train 2D data sets only, got {cfg.dataset!r}")
    if cfg.model != "mlp":
        raise ConfigError("model", f"ensembles train the mlp model only, got {cfg.model!r}")
    for name in ("conditional", "spectral_norm", "bf16"):
        if getattr(cfg, name):
            raise ConfigError(name, "not supported by ensembles; turn it off or train the seeds as separate runs")
    if cfg.d_dropout > 0:
        raise ConfigError("d_dropout", "dropout in D is not supported by ensembles; set it to 0")


def _mlp_linears(seq: nn.Sequential, skip: tuple[type, ...]) -> tuple[list[tuple[str, nn.Linear]], float]:
    """The (name, Linear) layers of an MLP `seq` of Linear / LeakyReLU (and `skip` types), and the slope."""
    layers, slopes = [], set()
    for name, m in seq.named_children():
        if isinstance(m, nn.Linear):
            layers.append((name, m))
        elif isinstance(m, nn.LeakyReLU):
            slopes.add(m.negative_slope)
        elif not isinstance(m, skip):
            raise ValueError(f"model: ensembles cannot batch a {type(m).__name__} layer")
    if len(slopes) != 1:
        raise ValueError("model: ensembles need one LeakyReLU slope in each net")
    return layers, slopes.pop()


def _stack(members: list[list[nn.Linear]], device: torch.device) -> Layers:
    return [(torch.stack([m[i].weight.detach() for m in members]).to(device).requires_grad_(True),
             torch.stack([m[i].bias.detach() for m in members]).to(device).requires_grad_(True))
            for i in range(len(members[0]))]


def _mlp(layers: Layers, x: Tensor, slope: float) -> Tensor:
    """x [K, B, in] through K MLPs at once: LeakyReLU after every layer but the last."""
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        if i < last:
            x = F.leaky_relu_(x, slope)   # in place on the matmul output: one 1 MB buffer less per layer
    return x


def _input_grad(out: Tensor, x: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)   # members are independent: per-member grads
    return grad


def _member_norms(tensors: list[Tensor]) -> Tensor:
    """[K]: the L2 norm of each member's slices of `tensors` taken together."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors],
                                                dim=1), dim=1)


class EnsembleTrainer:
    """K seeds of one 2D config trained as one batched model. `step` counts G updates, as Trainer's does."""

    # The same code as the solo trainer's: the lr schedule, the D-steps-then-G loop of one step, a single step.
    _apply_lr = Trainer._apply_lr
    single_step = Trainer.single_step   # the step buttons: 'd', 'g' or 'both', for every member
    _eager_step = Trainer._eager_step
    epoch = Trainer.epoch

    def __init__(self, cfg: TrainConfig, seeds: Sequence[int], device: torch.device | str | None = None):
        check_supported(cfg)
        if not seeds:
            raise ValueError("seeds: an ensemble needs at least one seed")
        self.cfg, self.seeds, self.k = cfg, [int(s) for s in seeds], len(seeds)
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        self.loss = get_loss(cfg.loss)
        datas = [load_dataset(cfg.replace(seed=s)) for s in self.seeds]
        sizes = {len(d.x) for d in datas}
        if len(sizes) != 1:
            raise ValueError(f"dataset: the members' data sets differ in size ({sorted(sizes)})")
        self.n = sizes.pop()
        self.x = torch.cat([d.x for d in datas]).to(self.device)              # [K * n, 2]: member k at k * n
        self._offset = (torch.arange(self.k, device=self.device) * self.n).view(self.k, 1)
        g_lin, d_lin = [], []
        for s in self.seeds:
            with _INIT_LOCK:   # as Trainer.__init__: the global seed, then the nets
                torch.manual_seed(s)
                g, d = build_models(cfg, datas[0].sample_shape, 0)
            gl, self._g_slope = _mlp_linears(g.net, ())
            dl, self._d_slope = _mlp_linears(d.net, (nn.Flatten,))
            g_lin.append(gl)
            d_lin.append(dl + [("head", d.head)])
        self._noise = g.noise                  # every member's prior: noise_dim and noise_dist come from cfg
        self._solo_order = {"G": [n for n, _ in g.named_parameters()], "D": [n for n, _ in d.named_parameters()]}
        self.g_names = [name for name, _ in g_lin[0]]
        self.d_names = [name for name, _ in d_lin[-1]]
        self.g_layers = _stack([[m for _, m in lin] for lin in g_lin], self.device)
        self.d_layers = _stack([[m for _, m in lin] for lin in d_lin], self.device)
        self.g_params = [t for layer in self.g_layers for t in layer]
        self.d_params = [t for layer in self.d_layers for t in layer]
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = make_optimizer(cfg.g_opt, self.g_params, cfg.g_lr, betas, self.device)
        self.opt_d = make_optimizer(cfg.d_opt, self.d_params, cfg.d_lr, betas, self.device)
        self.gens = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]
        self._d_loss = torch.vmap(self.loss.d_loss, in_dims=(0, 0, None))   # [K, B] logits -> [K] losses
        self._g_loss = torch.vmap(self.loss.g_loss)
        self.step = 0
        self.d_updates = 0
        self.diverged_at: list[int | None] = [None] * self.k
        self._stats: dict[str, Tensor] = {}
        self._fake_for_g: Tensor | None = None

    # --- the batched nets and the members' draws -------------------------------------------------------------
    def G(self, z: Tensor) -> Tensor:
        """[K, B, noise_dim] -> [K, B, 2]."""
        return _mlp(self.g_layers, z, self._g_slope)

    def D(self, x: Tensor) -> Tensor:
        """[K, B, 2] -> logits [K, B]."""
        return _mlp(self.d_layers, x, self._d_slope).squeeze(2)

    def _each(self, draw) -> Tensor:
        return torch.stack([draw(g) for g in self.gens])

    def _randn(self, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        return torch.randn(shape, generator=gen, device=self.device)

    def _sigma(self) -> float:
        return self.cfg.instance_noise * max(0.0, 1.0 - self.step / self.cfg.steps)   # as Trainer._instance_noise

    @property
    def alive(self) -> Tensor:
        """[K] bool: members still training."""
        return torch.tensor([d is None for d in self.diverged_at], device=self.device)

    # --- updates ---------------------------------------------------------------------------------------------
    def step_d(self, record: bool = False, keep_fake: bool = False) -> None:
        """One D update of every member; the draws of each member come in the solo Trainer's order."""
        cfg, bs, sigma = self.cfg, self.cfg.batch_size, self._sigma()
        gp = self.loss.gradient_penalty and cfg.gp_lambda > 0
        idx, z, noise_real, noise_fake, alpha = [], [], [], [], []
        for gen in self.gens:
            idx.append(torch.randint(self.n, (bs,), generator=gen, device=self.device))
            z.append(self._noise(bs, gen))
            if sigma > 0:
                noise_real.append(self._randn((bs, 2), gen))
                noise_fake.append(self._randn((bs, 2), gen))
            if gp:
                alpha.append(torch.rand((bs, 1), generator=gen, device=self.device))
        real = self.x[torch.stack(idx) + self._offset]
        with torch.set_grad_enabled(keep_fake):
            fake = self.G(torch.stack(z))
        if keep_fake:
            self._fake_for_g = fake
        fake = fake.detach()
        real_in = real + sigma * torch.stack(noise_real) if sigma > 0 else real
        fake_in = fake + sigma * torch.stack(noise_fake) if sigma > 0 else fake
        if cfg.r1_gamma > 0:   # D(real_in) serves the loss and R1 (the Trainer runs it twice)
            real_in = real_in.detach().requires_grad_(True)
        d_real, d_fake = self.D(real_in), self.D(fake_in)
        loss = self._d_loss(d_real, d_fake, cfg.label_smoothing)
        if gp:
            a = torch.stack(alpha)
            x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
            grad = _input_grad(self.D(x_hat), x_hat)
            loss = loss + cfg.gp_lambda * ((grad.norm(2, dim=2) - 1.0) ** 2).mean(dim=1)
        if cfg.r1_gamma > 0:
            loss = loss + cfg.r1_gamma * (0.5 * _input_grad(d_real, real_in).pow(2).sum(dim=2).mean(dim=1))
        grad_norm = self._update(self.opt_d, self.d_params, loss)
        if record:
            d_real, d_fake = d_real.detach(), d_fake.detach()
            self._stats.update(loss_d=loss.detach(), grad_d=grad_norm,
                               d_real=self.loss.score(d_real).mean(dim=1), d_fake=self.loss.score(d_fake).mean(dim=1),
                               wdist=d_real.mean(dim=1) - d_fake.mean(dim=1))
        self.d_updates += 1

    def step_g(self, record: bool = False) -> None:
        """One G update of every member (D's weights are frozen for it)."""
        bs, sigma = self.cfg.batch_size, self._sigma()
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            fake, self._fake_for_g = self._fake_for_g, None
            if fake is None:
                fake = self.G(self._each(lambda gen: self._noise(bs, gen)))
            if sigma > 0:
                fake = fake + sigma * self._each(lambda gen: self._randn((bs, 2), gen))
            loss = self._g_loss(self.D(fake))
            grad_norm = self._update(self.opt_g, self.g_params, loss)
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        if record:
            self._stats.update(loss_g=loss.detach(), grad_g=grad_norm)

    def _update(self, opt: torch.optim.Optimizer, params: list[Tensor], loss: Tensor) -> Tensor:
        """Backward of the members' summed losses, the divergence check, one optimiser step. Returns the
        members' gradient norms [K]."""
        opt.zero_grad(set_to_none=True)
        loss.sum().backward(inputs=params)
        grads = [p.grad for p in params]
        norms = _member_norms(grads)
        bad = ~(torch.isfinite(loss) & torch.isfinite(norms))
        if bool(bad.any()):    # one host read per update; on the CPU it costs nothing
            for k in bad.nonzero().flatten().tolist():
                if self.diverged_at[k] is None:
                    self.diverged_at[k] = self.step
        frozen = [k for k, at in enumerate(self.diverged_at) if at is not None]
        if not frozen:
            opt.step()
            return norms
        dead = torch.tensor(frozen, device=self.device)
        saved = []
        for p, g in zip(params, grads):
            g.index_fill_(0, dead, 0.0)
            state = {name: t.index_select(0, dead) for name, t in opt.state.get(p, {}).items()
                     if isinstance(t, Tensor) and t.shape == p.shape}
            saved.append((p, p.detach().index_select(0, dead), state))
        opt.step()
        with torch.no_grad():   # zero gradients still move Adam's parameters on momentum: put the slices back
            for p, value, state in saved:
                p.index_copy_(0, dead, value)
                for name, t in state.items():
                    opt.state[p][name].index_copy_(0, dead, t)
        return norms

    def train_step(self) -> bool:
        """`d_steps` D updates then one G update, for every member. True when this step recorded statistics."""
        self._apply_lr()
        record = (self.step + 1) % self.cfg.stats_every == 0
        self._eager_step(record)
        self.step += 1
        return record

    # --- reading it out --------------------------------------------------------------------------------------
    def collect(self) -> dict[str, Tensor]:
        """The last recorded statistics, each a [K] CPU tensor (NaN for frozen members and for what was not
        recorded), in one transfer; plus step."""
        nan = torch.full((self.k,), float("nan"), device=self.device)
        if not self.loss.gradient_penalty:
            self._stats.pop("wdist", None)
        rows = torch.stack([self._stats.get(name, nan).float() for name in STAT_NAMES])
        rows = torch.where(self.alive, rows, nan).cpu()
        self._stats.clear()
        return {**dict(zip(STAT_NAMES, rows.unbind(0))), "step": self.step}

    def member_state_dict(self, k: int) -> dict[str, dict[str, Tensor]]:
        """Member k's weights as the solo nets' state dicts ({"G": ..., "D": ...}): `Trainer.load_state_dict(...,
        weights_only=True)` takes them."""
        def one(names: list[str], layers: Layers, prefix: str) -> dict[str, Tensor]:
            out = {}
            for name, (w, b) in zip(names, layers):
                key = name if name == "head" else f"{prefix}.{name}"
                out[f"{key}.weight"], out[f"{key}.bias"] = w[k].detach().clone(), b[k].detach().clone()
            return out
        return {"G": one(self.g_names, self.g_layers, "net"), "D": one(self.d_names, self.d_layers, "net")}


    def member_optimizer_state(self, k: int) -> dict[str, dict[str, Any]]:
        """Member k's optimiser states as the solo Trainer's ({"opt_g": ..., "opt_d": ...}, state_dict form, in the
        solo nets' parameter order): its slices of the moments, the shared step count and hyper-parameters."""
        def one(opt: torch.optim.Optimizer, params: list[Tensor], net: str, names: list[str]) -> dict[str, Any]:
            keys = [f"{n if n == 'head' else 'net.' + n}.{kind}" for n in names for kind in ("weight", "bias")]
            order = self._solo_order[net]        # e.g. D registers its head before its body
            state = {}
            for key, p in zip(keys, params):
                state[order.index(key)] = {name: (t[k].detach().clone() if isinstance(t, Tensor) and t.shape == p.shape
                                   else (t.clone() if isinstance(t, Tensor) else t))
                            for name, t in opt.state.get(p, {}).items()}
            groups = [{**{key: v for key, v in g.items() if key != "params"}, "params": list(range(len(params)))}
                      for g in opt.param_groups]
            return {"state": state, "param_groups": groups}
        return {"opt_g": one(self.opt_g, self.g_params, "G", self.g_names),
                "opt_d": one(self.opt_d, self.d_params, "D", self.d_names)}

# --- speed ---------------------------------------------------------------------------------------------------
def _matmul_flops_per_step(trainer: Trainer, steps: int = 5) -> float:
    """The matmul FLOPs of one solo step (the profiler's count: mm, addmm, bmm), averaged over `steps`."""
    from torch.profiler import profile
    with profile(with_flops=True) as prof:
        for _ in range(steps):
            trainer.train_step()
    return sum(e.flops for e in prof.key_averages()) / steps


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _matmul_seconds_per_step(trainer: Any, steps: int = 20) -> float:
    """Seconds one step of `trainer` (solo or ensemble) spends inside matmul ops on the CPU (the profiler's self
    time of MATMUL_OPS), averaged over `steps`."""
    from torch.profiler import profile
    with profile():   # untimed: a process's first profile is slow to start (ring8 x 8: 60 ms a step, then 14)
        trainer.train_step()
    with profile() as prof:
        for _ in range(steps):
            trainer.train_step()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMUL_OPS) / 1e6 / steps


def _bmm_peak(k: int, batch: int, width: int, device: torch.device, calls: int = 50) -> float:
    """FLOP/s of a [k, batch, width] x [k, width, width] batched matmul, the ensemble's largest layer."""
    a = torch.randn(k, batch, width, device=device)
    w = torch.randn(k, width, width, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(5):
        torch.bmm(a, w)
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        torch.bmm(a, w)
    sync()
    return 2 * k * batch * width * width * calls / (time.perf_counter() - t0)


def measure_speedup(k: int = 8, preset: str = "ring8", window_s: float = 1.0, rounds: int = 3,
                    device: str = "cpu") -> dict[str, Any]:
    """`ensemble_speedup_{k}`: k seeds of `preset` as one ensemble vs k solo Trainers run one after another for
    the same number of steps, alternating in each round (one torch thread on the CPU, as a 2D Run uses); the
    median of per-round ratios, with each side's aggregate member steps/s.

    `ensemble_bound_{k}` is the matmul roofline: the speedup an ensemble would reach if its step cost only the
    k members' matmul FLOPs at this machine's batched-matmul rate (`ensemble_gflops`). A solo step that is
    mostly matmul arithmetic already (ring8's batch 512 on one CPU core) leaves little to batch away.
    `ensemble_matmul_bound_{k}` (CPU) is the same bound from time instead of FLOPs: a solo step over the time the
    ensemble's own matmuls take per member (profiled), i.e. the speedup if everything else in its step were free."""
    dev = resolve_device(device)
    cfg = get_preset(preset).config(device=dev.type).replace(steps=10_000_000)   # a flat lr, as bench's runs
    seeds = list(range(k))
    ens = EnsembleTrainer(cfg, seeds, dev)
    solos = [Trainer(cfg.replace(seed=s), device=dev) for s in seeds]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run(trainer, steps: int) -> float:
        if trainer.train_step():   # untimed: the first step after the other loop pays for cold caches
            trainer.collect()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            if trainer.train_step():
                trainer.collect()
        sync()
        return time.perf_counter() - t0

    prev = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    ratios, ens_rates, solo_rates = [], [], []
    try:
        steps = 10
        steps = max(10, int(window_s / run(ens, steps) * steps))
        for _ in range(rounds):
            t_ens = run(ens, steps)
            t_solo = sum(run(t, steps) for t in solos)
            ratios.append(t_solo / t_ens)
            ens_rates.append(k * steps / t_ens)
            solo_rates.append(k * steps / t_solo)
        flops = _matmul_flops_per_step(solos[0])
        width = max((*cfg.g_layers, *cfg.d_layers))
        peak = _bmm_peak(k, cfg.batch_size, width, dev)
        ens_matmul_s = _matmul_seconds_per_step(ens) if dev.type == "cpu" else 0.0   # CPU time is kernel time
    finally:
        torch.set_num_threads(prev)
    key = f"ensemble_speedup_{k}"
    solo_step_s = 1 / statistics.median(solo_rates)   # one member step, alone
    return {key: round(statistics.median(ratios), 3), f"{key}_rounds": [round(r, 3) for r in ratios],
            f"ensemble_{k}_steps_s": round(statistics.median(ens_rates), 1),
            f"solo_{k}_steps_s": round(statistics.median(solo_rates), 1),
            f"ensemble_bound_{k}": round(solo_step_s * peak / flops, 2) if flops else None,
            f"ensemble_matmul_bound_{k}": round(solo_step_s * k / ens_matmul_s, 2) if ens_matmul_s else None,
            "ensemble_gflops": round(peak / 1e9, 1), "solo_step_mflop": round(flops / 1e6, 1)}


if __name__ == "__main__":
    print(measure_speedup())
