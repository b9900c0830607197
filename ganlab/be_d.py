"""Be the discriminator: a round of real and fake images that a student labels, scored beside D's own answers on
the same images, round after round as G improves.

`draw_round(store, cfg, n, seed)` draws a round once; a page keeps it, frozen, while the student labels it. Half
of it (n // 2) are real images from the run's data set, the rest fakes from G's newest weights (generator.pt, or
the newest checkpoint when that is newer), shuffled by `seed`, with D's score on each. D's weights live only in
the run's checkpoints, so D comes from the newest one, loaded and checked on the CPU (ckpt_load.load_checked),
and both networks are cached per run until a newer file appears. All of this happens in a sandbox process
(ganlab.sandbox; the cache lives there, in each child that served the run): `draw_round` and `ask` send plain
data in and get plain data back, so a damaged checkpoint cannot crash the server. The same seed on the
same weights gives the same round.

D says "real" when its score is above the loss's boundary (`LossSpec.boundary`: 0.5 for a probability and for
LSGAN's 1/0 targets, 0 for hinge's +-1 margins). A Wasserstein critic has none (its scores shift freely), so its
round is cut at the median of the round's own scores: the critic calls the higher-scored half real.

D scores as it does in training and on the Discriminator page (Trainer._d_for_scoring): dropout off, spectral
norm frozen, batch norm on batch statistics. So the round's reals are scored in a batch of reals and its fakes in
a batch of fakes, each filled up to the run's batch size, as D sees them when it trains.

`check(round, answers)` scores a student's answers beside D's, `tally_row` makes one row of the per-session tally
and `tally_chart` draws the tally (an ECharts option, like ganlab.charts).

`ask(store, cfg, image)` is "draw a digit, ask D": D's score of one drawn image (ganlab.drawn.digit_image), scored
among real images of the data set that fill up its batch (batch norm sees a batch as in training); for a
conditional run its score as each class, `class_chart` draws those. It also finds G's closest sample: SAMPLES
fakes from a fixed noise seed (cached with the networks), the nearest in pixel space. Never imports streamlit.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .config import TrainConfig
from .drawn import nearest
from .latent import sample_z
from .loss_specs import LOSS_SPECS
from .montage import montage
from .store import RunStore, StoreError
from .viz import D_COLOR

POOL = 1024            # real images kept per data set to draw rounds from
MAX_BATCH = 128        # the scoring batches are the run's batch size, at most this (CPU time per round)
MAX_RUNS = 8           # runs whose G and D stay loaded in this process
SAMPLES = 256          # G's samples the closest one to a drawing is searched among (noise seed SAMPLE_SEED)
SAMPLE_SEED = 0
SANDBOX_WALL_S = 60.0  # a child's first round loads the data set's real images
YOU_COLOR = "#54a24b"
LABELS = ("real", "fake")


class RoundError(RuntimeError):
    """No round can be drawn; the message says why in words a student can act on."""


@dataclass(frozen=True)
class Round:
    """One frozen round: the images in the order shown, which are real, and D's verdict on each."""
    seed: int
    images: np.ndarray       # (n, C, H, W) float32 in [-1, 1]
    real: np.ndarray         # (n,) bool: this image is from the data set
    scores: np.ndarray       # (n,) D's score of each image (a probability, or a raw score for the other losses)
    boundary: float          # D says "real" above this score
    rule: str                # how the boundary was chosen, for the page
    g_step: int              # the step of the G that drew the fakes
    d_step: int              # the step of D's checkpoint

    @property
    def d_says_real(self) -> np.ndarray:
        return self.scores > self.boundary

    def pictures(self, px: int = 128) -> list[np.ndarray]:
        """Each image as a uint8 picture, enlarged by whole pixels to about `px` wide."""
        scale = max(1, round(px / self.images.shape[-1]))
        return [montage(self.images[i:i + 1], nrow=1, pad=0, scale=scale) for i in range(len(self.images))]


@dataclass(frozen=True)
class Result:
    """A checked round: who got each image right."""
    you_right: np.ndarray    # (n,) bool; an image left unlabelled counts as wrong
    d_right: np.ndarray      # (n,) bool

    @property
    def you(self) -> float:
        return float(np.mean(self.you_right))

    @property
    def d(self) -> float:
        return float(np.mean(self.d_right))


def boundary_rule(loss: str) -> str:
    """How D's answers are read for `loss`, in words."""
    spec = LOSS_SPECS.get(loss)
    if spec is None or spec.boundary is None:
        return "a critic's scores have no fixed middle, so D says real for the higher-scored half of the round"
    what = "its output is the probability of real" if spec.uses_sigmoid else \
        "the score this loss settles on when D cannot tell real from fake"
    return f"D says real when its score is above {spec.boundary:g} ({what})"


def draw_round(store: RunStore, cfg: TrainConfig, n: int = 8, seed: int = 0) -> Round:
    """A round of `n` images (n // 2 real, the rest fake) from the run in `store`, shuffled by `seed`, scored by D
    in a sandbox process. Raises RoundError when the run has no checkpoint, damaged or unfitting weights (a file
    that crashes its sandbox process included), or no readable data set."""
    from .sandbox import call
    out = call("be_d_round", str(store.path), cfg.to_dict(), int(n), int(seed), what="Drawing the round",
               error=RoundError, wall_s=SANDBOX_WALL_S)
    try:
        return Round(seed=int(out["seed"]), images=np.asarray(out["images"], np.float32),
                     real=np.asarray(out["real"], bool), scores=np.asarray(out["scores"], np.float64),
                     boundary=float(out["boundary"]), rule=str(out["rule"]), g_step=int(out["g_step"]),
                     d_step=int(out["d_step"]))
    except (KeyError, TypeError, ValueError) as e:
        raise RoundError(f"drawing the round gave an unusable answer ({str(e)[:120]})") from None


def round_task(run_dir: str, cfg: dict, n: int, seed: int) -> dict[str, Any]:
    """The sandbox task behind draw_round."""
    return dataclasses.asdict(_draw_round(RunStore(run_dir), TrainConfig.from_dict(cfg), n, seed))


def _draw_round(store: RunStore, cfg: TrainConfig, n: int, seed: int) -> Round:
    import torch

    if cfg.is_2d:
        raise RoundError("Be the discriminator works on image runs: a single 2D point looks neither real nor fake")
    if n < 2:
        raise RoundError(f"a round needs at least 2 images, got {n}")
    pool_x, pool_y = _real_pool(cfg.dataset, cfg.data_path, cfg.image_size, cfg.seed)
    nets = _networks(store, cfg, tuple(pool_x.shape[1:]))
    n_real, n_fake = n // 2, n - n // 2
    if len(pool_x) < n_real:
        raise RoundError(f"the data set has {len(pool_x)} images, too few for a round of {n}")
    batch = min(cfg.batch_size, MAX_BATCH)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pool_x), size=min(len(pool_x), max(n_real, batch)), replace=False)
    z = sample_z(max(n_fake, batch), cfg.noise_dim, seed, cfg.noise_dist)
    fake_y = torch.as_tensor(rng.integers(0, nets.classes, len(z))) if nets.classes else None
    real_y = torch.as_tensor(pool_y[idx]) if nets.classes and pool_y is not None else None
    try:
        with nets.lock, torch.no_grad():
            fakes = nets.G(torch.as_tensor(z), fake_y).float()
            s_fake = nets.score(nets.D(fakes, fake_y).float())
            s_real = nets.score(nets.D(torch.as_tensor(pool_x[idx]), real_y).float())
    except (RuntimeError, ValueError) as e:
        raise RoundError(f"this run's networks cannot score its images: {str(e)[:160]}") from None
    images = np.concatenate([pool_x[idx[:n_real]], fakes[:n_fake].numpy()])
    scores = np.concatenate([s_real[:n_real].numpy(), s_fake[:n_fake].numpy()]).astype(np.float64)
    order = rng.permutation(n)
    spec = LOSS_SPECS.get(cfg.loss)
    boundary = spec.boundary if spec is not None and spec.boundary is not None else float(np.median(scores))
    return Round(seed=int(seed), images=images[order].astype(np.float32), real=(np.arange(n) < n_real)[order],
                 scores=scores[order], boundary=float(boundary), rule=boundary_rule(cfg.loss),
                 g_step=nets.g_step, d_step=nets.d_step)


def check(rnd: Round, answers: Sequence[str | None]) -> Result:
    """Score `answers` ("real", "fake", or None for unlabelled, one per image in the order shown) beside D's."""
    if len(answers) != len(rnd.real):
        raise ValueError(f"{len(answers)} answers for a round of {len(rnd.real)} images")
    bad = [a for a in answers if a is not None and a not in LABELS]
    if bad:
        raise ValueError(f"an answer is 'real' or 'fake', got {bad[0]!r}")
    you = np.array([a is not None and (a == "real") == bool(r) for a, r in zip(answers, rnd.real)])
    return Result(you_right=you, d_right=rnd.d_says_real == rnd.real)


def tally_row(number: int, rnd: Round, result: Result) -> dict[str, Any]:
    """One row of the per-session tally (accuracies in percent)."""
    return {"round": number, "G step": rnd.g_step, "you %": round(100 * result.you),
            "D %": round(100 * result.d)}


def tally_chart(rows: Sequence[dict[str, Any]]) -> dict:
    """Your accuracy and D's per round (x: the round and G's step), with chance (50%) dashed."""
    xs = [f"{r['round']}\nstep {r['G step']:,}" for r in rows]

    def line(name: str, key: str, colour: str) -> dict:
        return {"type": "line", "name": name, "data": [r[key] for r in rows], "symbolSize": 8,
                "lineStyle": {"width": 2, "color": colour}, "itemStyle": {"color": colour}}
    chance = {"silent": True, "symbol": "none", "data": [{"yAxis": 50}],
              "lineStyle": {"type": "dashed", "color": "#999"}, "label": {"formatter": "chance"}}
    return {
        "animation": False, "title": {"text": "Right answers per round", "left": 0, "top": 0,
                                      "textStyle": {"fontSize": 14}},
        "legend": {"top": 0, "right": 10}, "tooltip": {"trigger": "axis", "valueFormatter": "%d%%"},
        "grid": {"left": 50, "right": 40, "top": 40, "bottom": 50},
        "xAxis": {"type": "category", "data": xs, "name": "round, G's step", "nameLocation": "middle",
                  "nameGap": 36},
        "yAxis": {"type": "value", "min": 0, "max": 100, "name": "% right", "nameLocation": "middle",
                  "nameGap": 35},
        "series": [{**line("you", "you %", YOU_COLOR), "markLine": chance}, line("D", "D %", D_COLOR)],
    }


@dataclass(frozen=True)
class Answer:
    """D's answer on one drawn image, and G's closest sample to it."""
    scores: np.ndarray       # (1,) D's score of the drawing; (classes,) its score as each class for a conditional D
    boundary: float | None   # D says "real" above this; None for a critic, whose scores have no fixed middle
    closest: np.ndarray      # (C, H, W) G's sample nearest to the drawing in pixel space, in [-1, 1]
    distance: float          # their L2 distance in pixel space
    closest_class: int | None
    g_step: int
    d_step: int


def ask(store: RunStore, cfg: TrainConfig, image: np.ndarray, samples: int = SAMPLES) -> Answer:
    """D's score of one image (C, H, W) in [-1, 1] (each class's, for a conditional run) and G's closest sample
    among `samples` from a fixed noise seed, in a sandbox process. Raises RoundError as draw_round does, or when
    the image does not have the run's image shape."""
    from .sandbox import call
    out = call("be_d_ask", str(store.path), cfg.to_dict(), np.asarray(image, dtype=np.float32), int(samples),
               what="Asking D", error=RoundError, wall_s=SANDBOX_WALL_S)
    try:
        cls = out["closest_class"]
        return Answer(scores=np.asarray(out["scores"], np.float64), boundary=None if out["boundary"] is None
                      else float(out["boundary"]), closest=np.asarray(out["closest"], np.float32),
                      distance=float(out["distance"]), closest_class=None if cls is None else int(cls),
                      g_step=int(out["g_step"]), d_step=int(out["d_step"]))
    except (KeyError, TypeError, ValueError) as e:
        raise RoundError(f"asking D gave an unusable answer ({str(e)[:120]})") from None


def ask_task(run_dir: str, cfg: dict, image: np.ndarray, samples: int) -> dict[str, Any]:
    """The sandbox task behind ask."""
    return dataclasses.asdict(_ask(RunStore(run_dir), TrainConfig.from_dict(cfg), image, samples))


def _ask(store: RunStore, cfg: TrainConfig, image: np.ndarray, samples: int) -> Answer:
    import torch

    if cfg.is_2d:
        raise RoundError("drawing a digit works on image runs")
    pool_x, pool_y = _real_pool(cfg.dataset, cfg.data_path, cfg.image_size, cfg.seed)
    shape = tuple(pool_x.shape[1:])
    image = np.asarray(image, dtype=np.float32)
    if image.shape != shape:
        raise RoundError(f"the drawing is {image.shape} but this run's images are {shape}")
    nets = _networks(store, cfg, shape)
    fill = pool_x[:min(cfg.batch_size, MAX_BATCH) - 1]
    x = torch.as_tensor(np.concatenate([image[None], fill]))
    fill_y = pool_y[:len(fill)] if pool_y is not None else np.zeros(len(fill), np.int64)
    try:
        with nets.lock, torch.no_grad():
            labels = [torch.as_tensor(np.concatenate([[k], fill_y]).astype(np.int64)) for k in range(nets.classes)]
            scores = [float(nets.score(nets.D(x, y).float()).reshape(-1)[0]) for y in (labels or [None])]
            if nets.samples is None or len(nets.samples[0]) != samples:
                y = torch.arange(samples) % nets.classes if nets.classes else None
                z = torch.as_tensor(sample_z(samples, cfg.noise_dim, SAMPLE_SEED, cfg.noise_dist))
                nets.samples = (nets.G(z, y).float().numpy(), None if y is None else y.numpy())
            fakes, fake_y = nets.samples
    except (RuntimeError, ValueError) as e:
        raise RoundError(f"this run's networks cannot score the drawing: {str(e)[:160]}") from None
    i, dist = nearest(fakes, image)
    spec = LOSS_SPECS.get(cfg.loss)
    return Answer(scores=np.asarray(scores), boundary=None if spec is None else spec.boundary,
                  closest=fakes[i], distance=dist, closest_class=None if fake_y is None else int(fake_y[i]),
                  g_step=nets.g_step, d_step=nets.d_step)


def class_chart(scores: Sequence[float], names: Sequence[str], boundary: float | None) -> dict:
    """D's score of the drawing as each class, one bar per class, with the boundary dashed (when the loss has one)."""
    best = int(np.argmax(scores))
    bars = [{"value": round(float(v), 4), "itemStyle": {"color": YOU_COLOR if i == best else D_COLOR}}
            for i, v in enumerate(scores)]
    series: dict[str, Any] = {"type": "bar", "name": "D's score", "data": bars}
    if boundary is not None:
        series["markLine"] = {"silent": True, "symbol": "none", "data": [{"yAxis": boundary}],
                              "lineStyle": {"type": "dashed", "color": "#999"}, "label": {"formatter": "real above"}}
    return {
        "animation": False, "title": {"text": "D's score as each class", "left": 0, "top": 0,
                                      "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"}, "grid": {"left": 50, "right": 60, "top": 40, "bottom": 40},
        "xAxis": {"type": "category", "data": list(names), "name": "class", "nameLocation": "middle", "nameGap": 26},
        "yAxis": {"type": "value", "name": "score", "nameLocation": "middle", "nameGap": 38},
        "series": [series],
    }


# --- the networks and the real images, cached -----------------------------------------------------------------
@dataclass
class _Networks:
    G: Any
    D: Any
    score: Any               # D's raw output -> its score (sigmoid for the BCE losses)
    classes: int
    g_step: int
    d_step: int
    lock: threading.Lock
    samples: Any = None      # G's SAMPLES fakes and their classes for `ask`, drawn once per weights


_CACHE: OrderedDict[str, tuple[tuple, _Networks]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _mtime(path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _networks(store: RunStore, cfg: TrainConfig, shape: tuple[int, ...]) -> _Networks:
    """G and D of the run, rebuilt only when generator.pt or the newest checkpoint changed."""
    ckpt = store.checkpoint_path()
    if ckpt is None:
        raise RoundError("this run has no checkpoint yet: D's weights are saved with its first checkpoint, a "
                         "moment after it starts training")
    key = (ckpt.name, _mtime(ckpt), _mtime(store.generator_path()), shape, cfg.loss, cfg.model)
    with _CACHE_LOCK:
        hit = _CACHE.get(str(store.path))
        if hit is not None and hit[0] == key:
            _CACHE.move_to_end(str(store.path))
            return hit[1]
        nets = _load(store, cfg, shape, ckpt)
        _CACHE[str(store.path)] = (key, nets)
        while len(_CACHE) > MAX_RUNS:
            _CACHE.popitem(last=False)
        return nets


def _load(store: RunStore, cfg: TrainConfig, shape: tuple[int, ...], ckpt) -> _Networks:
    import torch

    from .ckpt_load import load_checked
    from .losses import get_loss
    from .models import build_models
    from .weights import label_count, published_generator
    try:
        state, _ = load_checked(ckpt, cfg, run_dir=store.path)   # every field checked against the run's config
        d_weights, d_step = state["D"], int(state.get("step") or 0)
    except (StoreError, KeyError, TypeError, ValueError) as e:
        raise RoundError(f"D's newest checkpoint ({ckpt.name}) is damaged or its weights do not fit this run's "
                         f"config, so D cannot answer: {e}") from None
    g_weights, classes, g_step = state.get("G"), label_count(state) if "G" in state else 0, d_step
    try:
        published = published_generator(store.generator_path())
        if published[2] >= d_step:
            g_weights, classes, g_step = published
    except Exception:  # noqa: BLE001 - no or a damaged generator.pt: the checkpoint's G is as good
        pass
    try:
        g, d = build_models(cfg, shape, classes)
        g.load_state_dict(g_weights)
        d.load_state_dict(d_weights)
    except (RuntimeError, TypeError, AttributeError, ValueError) as e:
        raise RoundError(f"this run's weights do not fit its config: {str(e)[:160]}") from None
    g.eval()
    for m in d.modules():   # as Trainer._d_for_scoring: batch norm on batch statistics, the rest in eval mode
        m.training = isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    return _Networks(g, d, get_loss(cfg.loss).score, classes, g_step, d_step, threading.Lock())


@lru_cache(maxsize=4)
def _real_pool(dataset: str, data_path: str, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """POOL real images (and labels) of a data set, drawn once by a fixed seed; RoundError if it cannot load."""
    from .data import load_dataset
    try:
        data = load_dataset(TrainConfig(dataset=dataset, data_path=data_path, image_size=image_size, seed=seed))
    except Exception as e:  # noqa: BLE001 - a missing file or package: say so instead of a traceback
        raise RoundError(f"the real images of {dataset!r} cannot be loaded here: {e}") from None
    idx = np.sort(np.random.default_rng(0).choice(len(data), size=min(POOL, len(data)), replace=False))
    x = data.x[idx].numpy().astype(np.float32)
    y = data.y[idx].numpy() if data.y is not None else None
    return x, y
