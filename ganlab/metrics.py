"""Quality measures for generated samples that work offline.

2D mixtures (ring8, grid25): `mode_stats` counts covered modes and high-quality samples the way the
mode-collapse papers do. Images (MNIST-like, 28x28 grey): `image_metrics` scores samples with a small digit
classifier that this module trains itself on the bundled data (never downloaded), so the numbers are
"Inception-style" scores in a small feature space: comparable between runs of this app, not with FID/IS
values in papers (those use Inception-v3 features on 50k samples).

The classifier is trained once (a few seconds on a CPU), cached on disk as safetensors under
$GANLAB_CACHE/classifiers (default ~/.cache/ganlab/classifiers) and once per process in memory.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .disk import cache_root

log = logging.getLogger(__name__)

# --- 2D mode statistics ------------------------------------------------------------------------------------
HQ_STDS = 3.0
# A mode counts as covered when at least this share of all samples are high-quality samples on it.
# PacGAN (Lin et al. 2018) calls a mode lost when fewer than 20 of 2,500 samples lie within 3 std of its
# centre; VEEGAN and GDPP use the same 3-std rule on 2,500 samples. 20/2,500 = 0.8% keeps the rule when
# the UI scores another number of samples (1,024 by default: 9 samples).
MODE_MIN_SHARE = 20 / 2500
KL_EPS = 1e-6                 # probability floor so KL stays finite when a mode/class gets no samples


def mode_stats(points: np.ndarray, modes: np.ndarray, std: float, min_count: int | None = None) -> dict:
    """Coverage of a 2D Gaussian mixture by generated `points` (N, 2), mixture centres `modes` (K, 2).

    - high quality: a sample within HQ_STDS * std of its nearest mode (VEEGAN's definition);
    - covered: a mode with at least `min_count` high-quality samples (default ceil(0.8% of N), PacGAN's
      20 of 2,500); `modes_any` is VEEGAN's literal count (a mode with at least one high-quality sample);
      `mode_counts` the high-quality samples on each mode and `min_count` the threshold (the per-mode bars);
    - reverse_kl: KL(p_fake || p_real) over modes, p_fake = share of the high-quality samples on each mode
      (floored at KL_EPS), p_real uniform. 0 = all modes equally used, log(K) = everything on one mode.
      With no high-quality sample at all it is log(K): no better than a total collapse.
    - diversity: sample_diversity(points) / the mixture's own mean pairwise distance; about 1 for data-like
      spread, near 0 when G draws (nearly) one point, even one between the modes that covers none of them.
    """
    pts = np.asarray(points, dtype=np.float64)
    centres = np.asarray(modes, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"mode_stats: points must be (N, 2), got {pts.shape}")
    if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
        raise ValueError(f"mode_stats: modes must be (K, 2) with K >= 1, got {centres.shape}")
    if not std > 0:
        raise ValueError(f"mode_stats: std must be positive, got {std}")
    k = len(centres)
    n = len(pts)
    if n == 0:
        return {"modes_covered": 0, "n_modes": k, "high_quality_frac": 0.0, "reverse_kl": math.log(k),
                "diversity": 0.0, "modes_any": 0, "mode_counts": [0] * k, "min_count": 1}
    finite = np.isfinite(pts).all(axis=1)          # a diverged G emits NaN: those are simply not high quality
    d2 = ((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1)   # (N, K); K <= 25 so this stays small
    d2[~finite] = np.inf
    nearest = d2.argmin(axis=1)
    hq = d2[np.arange(n), nearest] <= (HQ_STDS * std) ** 2
    counts = np.bincount(nearest[hq], minlength=k)
    need = max(1, math.ceil(MODE_MIN_SHARE * n)) if min_count is None else max(1, int(min_count))
    n_hq = int(hq.sum())
    reverse_kl = _kl_to_uniform(counts) if n_hq else math.log(k)
    return {"modes_covered": int((counts >= need).sum()), "n_modes": k,
            "high_quality_frac": n_hq / n, "reverse_kl": reverse_kl,
            "diversity": sample_diversity(pts) / _mixture_diversity(centres, std),
            "modes_any": int((counts >= 1).sum()), "mode_counts": [int(c) for c in counts], "min_count": need}


def _mixture_diversity(centres: np.ndarray, std: float) -> float:
    """Mean distance between two independent samples of an equal-weight mixture: |m_i - m_j| for two modes,
    std * sqrt(pi) within one mode (the mean of a Rayleigh variable with scale sqrt(2) * std)."""
    dist = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, std * math.sqrt(math.pi))
    return float(dist.mean())


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) in nats for a histogram `counts`, with p floored at KL_EPS and renormalised."""
    p = counts.astype(np.float64) / max(counts.sum(), 1)
    p = (p + KL_EPS) / (1.0 + KL_EPS * len(p))
    return float(max(0.0, (p * np.log(p * len(p))).sum()))


# --- the digit classifier ----------------------------------------------------------------------------------
CLASSIFIER_VERSION = 2        # bump when the architecture or the training recipe changes: old caches retrain
HELD_OUT = 500                # images kept out of training to measure accuracy
TRAIN_MAX = 5000              # Fashion-MNIST has 60k: a 5k subset trains as fast as mnist5k
# v1 trained 6 epochs and was undertrained: 96.4% held-out on mnist5k and 0.95 mean confidence on real digits.
# 15 epochs: 98.4% and 0.975 (30 epochs: 98.0%, more confident but no more accurate). ~2.5x the CPU seconds.
EPOCHS = 15
BATCH = 64
FEATURES = 64                 # width of the penultimate layer: the Fréchet distance's feature space


class DigitClassifier(nn.Module):
    """Small CNN for (N, 1, 28, 28) images in [-1, 1]; ~106k parameters. Held-out accuracy: ~98% on mnist5k,
    ~85% on Fashion-MNIST (trained on 5k images each).

    Strided convolutions instead of 3x3 convs + max-pooling: a third of the arithmetic (training takes ~12 CPU
    seconds) at the same accuracy on this data."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, FEATURES)
        self.fc2 = nn.Linear(FEATURES, n_classes)
        self.n_classes = n_classes
        self.accuracy = float("nan")             # held-out accuracy, set by get_classifier

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"DigitClassifier expects (N, 1, 28, 28) images, got {tuple(x.shape)}")
        h = F.relu(self.conv1(x))                            # (N, 16, 14, 14)
        h = F.relu(self.conv2(h))                            # (N, 32, 7, 7)
        return F.relu(self.fc1(h.flatten(1)))                # (N, FEATURES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))                    # (N, n_classes) logits


_DATASET_FOR = {"mnist": "mnist5k", "fashion": "fashion"}
# Random shifts of up to this many pixels during training. Digits (6 epochs): +1.4 points held-out accuracy (96.2% vs
# 94.8%), and GAN digits are often off-centre. Clothes fill the frame and shifts clip them: 84.6% -> 79.2%.
_SHIFT_FOR = {"mnist": 2, "fashion": 0}
_CACHE: dict[tuple[str, str], DigitClassifier] = {}
_CACHE_LOCK = threading.Lock()     # one lock for all kinds: training twice in parallel would only waste CPU


def default_cache_dir() -> Path:
    return cache_root() / "classifiers"


def classifier_split(kind: str = "mnist") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_x, train_y, heldout_x, heldout_y) the classifier of `kind` uses: a fixed permutation (seed 0)
    of the dataset; the last HELD_OUT images are never trained on."""
    from .config import TrainConfig
    from .data import load_dataset
    from .dataset import DataError

    if kind not in _DATASET_FOR:
        raise ValueError(f"classifier kind {kind!r} is not one of: {', '.join(_DATASET_FOR)}")
    ds = load_dataset(TrainConfig(dataset=_DATASET_FOR[kind], model="mlp"))
    if ds.y is None or tuple(ds.sample_shape) != (1, 28, 28):
        raise DataError(f"{ds.name}: the classifier needs labelled 28x28 grey images")
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(ds)))
    train_idx, held_idx = perm[:-HELD_OUT][:TRAIN_MAX], perm[-HELD_OUT:]
    return ds.x[train_idx], ds.y[train_idx], ds.x[held_idx], ds.y[held_idx]


def get_classifier(kind: str = "mnist", cache_dir: Path | None = None) -> DigitClassifier:
    """The eval-mode classifier for `kind` ("mnist" or "fashion"): from memory, else from the disk cache,
    else trained now (deterministic, a few seconds on CPU) and saved. `.accuracy` is its held-out accuracy.
    Raises ganlab.dataset.DataError when the dataset is not on this machine (fashion without the package)."""
    if kind not in _DATASET_FOR:
        raise ValueError(f"classifier kind {kind!r} is not one of: {', '.join(_DATASET_FOR)}")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = (kind, str(folder.resolve()))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_or_train(kind, folder)
        return _CACHE[key]


def _load_or_train(kind: str, folder: Path) -> DigitClassifier:
    from safetensors.torch import load_file, save_file

    weights = folder / f"{kind}-classifier-v{CLASSIFIER_VERSION}.safetensors"
    info_path = weights.with_suffix(".json")
    model = _empty_classifier()
    if weights.is_file() and info_path.is_file():
        try:
            model.load_state_dict(load_file(str(weights)))
            model.accuracy = float(json.loads(info_path.read_text())["accuracy"])
            return _frozen(model)
        except Exception:  # noqa: BLE001 - a half-written or stale cache file: retrain and overwrite it
            model = _empty_classifier()
    train_x, train_y, held_x, held_y = classifier_split(kind)
    started = time.perf_counter()
    # One intra-op thread: these small convolutions gain little from a second one, and on a busy CPU
    # (a run training beside us) two threads made training 12x slower (6 vs 70 CPU seconds,
    # spin-waiting). The setting is process-wide in practice (OpenMP), so it is restored right after; a run
    # training in another thread meanwhile runs on one thread for those few seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(model, train_x, train_y, _SHIFT_FOR[kind])
    finally:
        torch.set_num_threads(threads)
    model.accuracy = _accuracy(model, held_x, held_y)
    info = {"kind": kind, "accuracy": model.accuracy, "held_out": HELD_OUT, "train_images": len(train_x),
            "epochs": EPOCHS, "version": CLASSIFIER_VERSION, "seconds": round(time.perf_counter() - started, 1)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Temp names then rename, so a second process never reads a half-written file.
        tmp = weights.with_name(f".{weights.name}.{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, weights)
        tmp_info = info_path.with_name(f".{info_path.name}.{os.getpid()}.tmp")
        tmp_info.write_text(json.dumps(info, indent=2))
        os.replace(tmp_info, info_path)
    except OSError as e:   # read-only home, full disk: the model still works, it just retrains next process
        log.warning("could not cache the %s classifier in %s: %s", kind, folder, e)
    return _frozen(model)


def _empty_classifier() -> DigitClassifier:
    # Built on the meta device: the default init would draw from the global RNG, which a training run in
    # another thread of this process relies on for reproducibility. Weights come from the cache or _train.
    with torch.device("meta"):
        model = DigitClassifier()
    return model.to_empty(device="cpu")


def _train(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor, shift: int = 0) -> None:
    # A private generator for init and shuffling: deterministic, and it never touches the global RNG that a
    # training run in another thread of this process draws from.
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):      # PyTorch's default init, drawn from `gen`
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = EPOCHS * math.ceil(len(x) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            batch = x[idx]
            if shift:                              # one random shift per batch: cheap augmentation
                dx, dy = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=gen))
                batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(batch), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


@torch.no_grad()
def _accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def _frozen(model: DigitClassifier) -> DigitClassifier:
    model.eval()
    model.requires_grad_(False)
    return model


# --- image metrics -----------------------------------------------------------------------------------------
CLASS_MIN_SHARE = 0.02        # a class is "present" with >= 2% of the samples: a fifth of its fair 10% share,
                              # so a few stray misclassifications do not count as a class drawn
EVAL_BATCH = 500


def image_metrics(fake: torch.Tensor | np.ndarray, real: torch.Tensor | np.ndarray,
                  classifier: DigitClassifier) -> dict:
    """Scores of generated images `fake` against data images `real`, both (N, 1, 28, 28) in [-1, 1].

    classifier_confidence: mean max softmax probability on fakes (sharp, digit-like samples score high);
    classes_present: classes predicted for >= CLASS_MIN_SHARE of the fakes;
    class_kl: KL(predicted-class histogram of fakes || uniform), 0 = balanced, log(10) = one class only;
    frechet: Fréchet distance between Gaussians fitted to the classifier's penultimate features of fakes
    and reals (the FID formula in a 64-d feature space);
    class_score: Inception-Score-style exp(E_x KL(p(y|x) || p(y))), 1..n_classes;
    diversity: sample_diversity(fake) / sample_diversity(real), about 1 when fakes vary as much as data;
    n_classes: the classifier's number of classes;
    texture: texture_ratio(fake, real), about 1 for data-like strokes, above for speckle, below for blur;
    speckle, speckle_real: isolated pixels per image (`speckle_count`) of fakes and of real images.
    """
    fake_t, real_t = _as_images(fake, "fake"), _as_images(real, "real")
    logits_f, feats_f = _run(classifier, fake_t)
    _, feats_r = _run(classifier, real_t)
    probs = torch.softmax(logits_f.double(), dim=1).numpy()              # (N, K)
    k = probs.shape[1]
    counts = np.bincount(probs.argmax(1), minlength=k)
    marginal = probs.mean(0)
    eps = 1e-12
    kl_each = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(1)
    real_div = sample_diversity(real_t)
    return {
        "classifier_confidence": float(probs.max(1).mean()),
        "classes_present": int((counts >= CLASS_MIN_SHARE * len(probs)).sum()),
        "class_kl": _kl_to_uniform(counts),
        "frechet": frechet_distance(feats_f, feats_r),
        "class_score": float(np.exp(kl_each.mean())),
        "diversity": sample_diversity(fake_t) / real_div if real_div > 0 else float("nan"),
        "n_classes": int(k),
        "texture": texture_ratio(fake_t, real_t),
        "speckle": float(speckle_count(fake_t).mean()),
        "speckle_real": float(speckle_count(real_t).mean()),
    }


def _as_images(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    t = t.float().cpu()
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 28, 28) or len(t) < 2:
        raise ValueError(f"image_metrics: {name} must be (N >= 2, 1, 28, 28) images, got {tuple(t.shape)}")
    return t


@torch.no_grad()
def _run(classifier: DigitClassifier, x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    device = next(classifier.parameters()).device
    logits, feats = [], []
    for i in range(0, len(x), EVAL_BATCH):
        f = classifier.features(x[i:i + EVAL_BATCH].to(device))
        feats.append(f.cpu())
        logits.append(classifier.fc2(f).cpu())
    return torch.cat(logits), torch.cat(feats).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2) for features (N, F).

    Symmetric eigendecompositions instead of scipy.linalg.sqrtm: the matrix inside is symmetric PSD, so
    this is exact, never returns complex parts, and copes with singular covariances (dead ReLU units).
    torchmetrics' FrechetInceptionDistance with this classifier as `feature=` works offline and agreed to
    six digits (5.25983 vs 5.25982, held-out vs training digits); this avoids the extra dependency."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need (N >= 2, F) features of equal F, got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    sqrt_a = _psd_sqrt(cov_a)
    inner = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(inner, 0.0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


# --- texture: speckle that the classifier's confidence and the Fréchet distance do not see ------------------
SPECK_STEP = 0.25   # a pixel this much (1/8 of [-1, 1]) brighter or darker than all 8 neighbours is a speck


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Per image (N,): mean |vertical| + mean |horizontal| difference between neighbouring pixels."""
    return (x.diff(dim=-2).abs().flatten(1).mean(1) + x.diff(dim=-1).abs().flatten(1).mean(1))


def texture_ratio(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean total variation of fakes / of real images. MNIST: real vs real 1.00, salt-and-pepper on 1% / 3% of
    the pixels 1.13 / 1.39, a 3x3 blur 0.82."""
    tv_real = float(total_variation(real).mean())
    return float(total_variation(fake).mean()) / tv_real if tv_real > 0 else float("nan")


def speckle_count(x: torch.Tensor) -> torch.Tensor:
    """Per image (N,): isolated dots, pixels beyond SPECK_STEP from all their neighbours (8, or fewer at the border)
    in the same direction. MNIST: 0.18 per real digit (stroke ends), 2.8 with 1% salt-and-pepper, 0.02 blurred."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    ring = [0, 1, 2, 3, 5, 6, 7, 8]                       # the 3x3 patch without its centre
    up = F.unfold(F.pad(flat, (1, 1, 1, 1), value=-math.inf), 3)      # (N*C, 9, H*W); padding never counts
    down = F.unfold(F.pad(flat, (1, 1, 1, 1), value=math.inf), 3)
    specks = (up[:, 4] - up[:, ring].amax(1) > SPECK_STEP) | (down[:, ring].amin(1) - down[:, 4] > SPECK_STEP)
    return specks.reshape(n, -1).sum(1).float()


DIVERSITY_MAX = 500           # pairs grow as N^2: 500 samples give 124,750 pairs, plenty for a mean


def sample_diversity(fake: torch.Tensor | np.ndarray) -> float:
    """Mean pairwise Euclidean distance between samples (flattened); near 0 when G outputs one thing.
    Uses the first DIVERSITY_MAX samples (deterministic, so the value does not jitter between calls)."""
    x = fake.detach().cpu().numpy() if isinstance(fake, torch.Tensor) else np.asarray(fake)
    x = x.reshape(len(x), -1)[:DIVERSITY_MAX].astype(np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    n = len(x)
    if n < 2:
        return 0.0
    sq = (x ** 2).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None)
    iu = np.triu_indices(n, k=1)
    return float(np.sqrt(d2[iu]).mean())


# --- how the measures are shown (the Train page's quality table, the class report) --------------------------
# Each measure: label, format, and the one-line meaning a student needs.
QUALITY_LABELS = {
    "modes_covered": ("modes covered", "{:.0f}", "modes with at least 0.8% of the samples there, within 3 std "
                                                 "(the bars' line)"),
    "modes_smoothed": ("modes covered, smoothed", "{:.0f}", "median of the last 5 measures of the row above"),
    "modes_any": ("modes with any sample", "{:.0f}", "VEEGAN's literal count: at least one sample within 3 std"),
    "n_modes": ("modes in the data", "{:.0f}", ""),
    "high_quality_frac": ("high-quality samples", "{:.0%}", "fakes within 3 std of a mode (VEEGAN)"),
    "reverse_kl": ("reverse KL over modes", "{:.3f}", "0 = every mode used equally"),
    "classifier_confidence": ("classifier confidence", "{:.2f}", "mean top probability of our digit classifier"),
    "classes_present": ("classes present", "{:.0f}", "classes drawn for at least 2% of the samples"),
    "class_kl": ("class KL to uniform", "{:.3f}", "0 = balanced classes, 2.3 = one class only"),
    "frechet": ("Fréchet distance", "{:.2f}", "FID formula in our classifier's feature space; lower is better"),
    "class_score": ("class score (IS-style)", "{:.2f}", "1 to 10; higher = sharp and varied"),
    "diversity": ("diversity vs data", "{:.2f}", "spread of fakes / spread of real data"),
    "texture": ("texture vs data", "{:.2f}", "total variation of fakes / of real images; 1 = as smooth as data, "
                                            "speckle above 1.1, blur below 0.9"),
    "speckle": ("speckle", "{:.1f} per image", "isolated dots (a pixel unlike all 8 neighbours); "
                                               "speckle above 3x the data's"),
}


SMOOTH_ROWS = 5   # modes covered is also shown as the median over this many latest measures


def quality_rows(latest: dict, recent: list[dict] | None = None) -> list[tuple[str, str, str]]:
    """(label, formatted value, meaning) for each measure of one quality row; mode counts as 'k / in the data'.
    `recent` (the latest rows, oldest first, `latest` last) adds the smoothed count of modes covered."""
    latest = dict(latest)
    counts = [r["modes_covered"] for r in (recent or [])[-SMOOTH_ROWS:] if _is_num(r.get("modes_covered"))]
    if len(counts) > 1:
        latest["modes_smoothed"] = float(np.median(counts))
    rows = []
    for k, (label, fmt, meaning) in QUALITY_LABELS.items():
        if not _is_num(latest.get(k)) or k == "n_modes":
            continue
        value = fmt.format(latest[k])
        if k in ("modes_covered", "modes_smoothed", "modes_any") and _is_num(latest.get("n_modes")):
            value = f"{fmt.format(latest[k])} / {latest['n_modes']}"
        if k == "speckle" and _is_num(latest.get("speckle_real")):
            value = f"{value} (data {latest['speckle_real']:.1f})"
        rows.append((label, value, meaning))
    return rows


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
