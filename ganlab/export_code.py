"""Export a run as code: a runnable `train_<run>.py`, or the same code as a Jupyter notebook, that trains the
run's GAN with PyTorch and numpy alone (no ganlab), in the style of the classic GAN tutorials: the settings as
constants, then the data, the networks, the loss and the training loop, each only as general as the run needs.
It reproduces the run: the networks are built under the same seed in the same order, and batches, noise, dropout
masks, instance noise and gradient-penalty mixes come from one generator in `ganlab.trainer.Trainer`'s order, so
on CPU its per-step losses equal the run's history rows. The loss functions are `ganlab.losses`' own source. What
cannot be written (a folder or zip of images: decoding them is the lab's image loader) raises ExportError; what
is written but cannot match exactly (bf16, a GPU, live edits, a branch's start) is said in the script's header.
"""
from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import numpy as np

from . import losses as L
from .config import TrainConfig
from .control import COMMANDS
from .data_specs import SPECS
from .export import ExportError, open_store
from .loss_specs import LOSS_SPECS
from .models import LABEL_EMBED, _dcgan_init, _dcgan_plan, label_embedding
from .store import RunStore, StoreError, read_jsonl, slug

CSV_EMBED_MAX = 5000      # points of an uploaded CSV written into the script (about 20 KB of text per 1,000)

_SETTINGS = '''\
RUN = $run                          # the lab's run $run_id
SEED = $seed                          # fixes the data, the initial weights and every random draw
SAMPLE_SHAPE = $shape
NOISE_DIM = $noise_dim                     # z ~ $prior
BATCH_SIZE = $batch_size
STEPS = $steps                      # generator updates
D_STEPS = $d_steps                       # D updates per G update
G_LR, D_LR = $g_lr, $d_lr
BETA1, BETA2 = $beta1, $beta2             # Adam  #?adam
DROPOUT = $dropout                     # in G  #?g_drop
D_DROPOUT = $d_dropout                   # in D  #?d_drop
LABEL_SMOOTHING = $label_smoothing             # the real target is 1 - LABEL_SMOOTHING  #?smooth
INSTANCE_NOISE = $instance_noise              # std of the noise on D's inputs, annealed to 0  #?inoise
GP_LAMBDA = $gp_lambda                   # gradient penalty weight  #?gp
R1_GAMMA = $r1_gamma                    # R1 penalty weight  #?r1
STATS_EVERY = $stats_every                   # LOSS_LOG gets a row every this many steps
PRINT_EVERY = $print_every
TRAIN_STEPS = int(os.environ.get("TRAIN_STEPS", STEPS))   # stop early (the schedules still run to STEPS)
LOSS_LOG = os.environ.get("LOSS_LOG", "")                 # a CSV file for the losses, if set
DEVICE = $device
if DEVICE == "cpu":  #?is_2d
    torch.set_num_threads(1)                        # tiny nets: one thread is fastest (the lab does the same)  #?is_2d
'''

_TOYS = '''\
N_POINTS = $n_points                    # a fixed sample, drawn from SEED
rng = np.random.default_rng(SEED)
$sampler
points, labels, modes, std = $name(rng, N_POINTS)
X = torch.from_numpy(points.astype(np.float32))      # (N_POINTS, 2)
Y = torch.from_numpy(labels.astype(np.int64))        # the labels G and D are given  #?cond
NUM_CLASSES = $classes  #?cond
'''
_IMAGES = '''\
DATA_FILE = $path   # bundled with $pkg  #?table
if not os.path.isfile(DATA_FILE):  #?table
    raise SystemExit(f"{DATA_FILE} not found: pip install $pkg, set DATA_FILE to its $where")  #?table
with gzip.open(DATA_FILE, "rb") as f:                # one image per row, the digit last  #?table
    table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  #?table
pixels, labels = table[:, :-1].reshape(-1, 1, $s, $s), table[:, -1]  #?table
IMAGES_FILE = $images  #?idx
LABELS_FILE = $labels  #?idx_cond
  #?idx
  #?idx
def read_idx(path):  #?idx
    \"\"\"An IDX file (MNIST's format, raw or gzip): 00 00 08 <ndim>, big-endian uint32 sizes, then uint8.\"\"\"  #?idx
    with open(path, "rb") as f:                     # the same files the lab trained on  #?idx
        raw = f.read()  #?idx
    raw = gzip.decompress(raw) if raw[:2] == b"\\x1f\\x8b" else raw  #?idx
    dims = struct.unpack(f">{raw[3]}I", raw[4:4 + 4 * raw[3]])  #?idx
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)  #?idx
  #?idx
  #?idx
pixels = read_idx(IMAGES_FILE)[:, None]              # (N, 1, H, W)  #?idx
labels = read_idx(LABELS_FILE)  #?idx_cond
import torchvision.datasets                          # downloads once (needs internet)  #?tv
ds = torchvision.datasets.$cls($cache, train=True, download=True)  #?tv
pixels, labels = np.asarray(ds.data)$hwc, np.asarray(ds.targets)  #?tv
X = torch.from_numpy(pixels.copy()).float().div_($half).sub_(1.0)   # 0..$top -> [-1, 1], as G's tanh
Y = torch.from_numpy(labels.astype(np.int64))  #?cond
NUM_CLASSES = int(Y.max()) + 1  #?cond
'''

_DROPOUT = '''\
class Dropout(nn.Dropout):
    """nn.Dropout drawing its masks from `gen`, the run's one random generator (as the lab does)."""

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=gen)
        return x * keep / (1.0 - self.p)


'''
_NETS = '''\
class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(NUM_CLASSES, $emb)   # the label, as learned numbers  #?cond
        self.project = nn.Sequential($project)  #?dcgan
        self.net = nn.Sequential(
$g_layers
        )
        dcgan_init(self)  #?dcgan

    def forward(self, z$y):
        z = torch.cat([z, self.embed(y)], dim=1)      # the label joins the noise  #?cond
        return self.net(self.project(z).view(-1, $ch0, $start, $start))  #?dcgan
        return self.net(z).view(-1, *SAMPLE_SHAPE)  #?!dcgan


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = $head   # made first, as in the lab: the order decides the initial weights
        self.embed = $d_embed   # projection D (Miyato & Koyama 2018)  #?cond
        self.net = nn.Sequential(
$d_layers
        )
        dcgan_init(self)  #?dcgan

    def forward(self, x$y):
        h = self.net(x)                               # features
        out = self.head(h).squeeze(1)                 # one logit per sample
        out = out + (self.embed(y) * h).sum(dim=1)    # + <embed(y), h>: does x look like its label?  #?cond
        return out
'''
_LOOP = '''\
torch.manual_seed(SEED)                             # the initial weights come from torch's global RNG
G, D = Generator().to(DEVICE), Discriminator().to(DEVICE)
if DEVICE == "cpu":                                 # oneDNN's NHWC convolutions: 15-30% faster a step on a CPU  #?dcgan
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)  #?dcgan
gen = torch.Generator(DEVICE).manual_seed(SEED)     # every other random draw comes from gen, in the lab's order
X = X.to(DEVICE)
Y = Y.to(DEVICE)  #?cond
N = len(X)
# fused=True (one kernel for all parameters, as the lab runs Adam) needs torch >= 2.4: drop it on an older torch  #?adam
opt_g = $opt_g
opt_d = $opt_d


def noise(n):
    """n noise vectors z (n, NOISE_DIM) from G's prior."""
    return torch.randn(n, NOISE_DIM, generator=gen, device=DEVICE)  #?normal
    return torch.rand(n, NOISE_DIM, generator=gen, device=DEVICE) * 2 - 1   # U(-1, 1)  #?!normal


def add_noise(x, sigma):  #?inoise
    """Instance noise on everything D sees, real and fake: Gaussian, its std annealed to 0 by STEPS."""  #?inoise
    return x + sigma * torch.randn(x.shape, generator=gen, device=DEVICE) if sigma > 0 else x  #?inoise
  #?inoise
  #?inoise
history = []                                        # step, loss_d, loss_g, D(real), D(fake): the lab's metrics
for step in range(TRAIN_STEPS):
    decay = max(0.0, 1.0 - step / STEPS)            # learning rates fall linearly to 0 at STEPS  #?decay
    for group in opt_g.param_groups:  #?decay
        group["lr"] = G_LR * decay  #?decay
    for group in opt_d.param_groups:  #?decay
        group["lr"] = D_LR * decay  #?decay
    sigma = INSTANCE_NOISE * max(0.0, 1.0 - step / STEPS)  #?inoise
    # (1) Update D D_STEPS times: push D(real) up and D(G(z)) down.
    for i in range(D_STEPS):
        idx = torch.randint(N, (BATCH_SIZE,), generator=gen, device=DEVICE)   # a random batch of real data
        real = X[idx]
        y = Y[idx]                                  # their labels; the fakes are drawn with the same ones  #?cond
        with torch.set_grad_enabled(i == D_STEPS - 1):   # G's update reuses the last fakes (and their graph)
            fake = G(noise(BATCH_SIZE)$y)
        real_in, fake_in = real, fake.detach()  #?!inoise
        real_in, fake_in = add_noise(real, sigma), add_noise(fake.detach(), sigma)  #?inoise
        d_real, d_fake = D(real_in$y), D(fake_in$y)   # logits
        loss_d = d_loss(d_real, d_fake$smooth)
        loss_d = loss_d + GP_LAMBDA * gradient_penalty($d, real, fake.detach(), gen)  #?gp
        loss_d = loss_d + R1_GAMMA * r1_penalty($d, real_in)  #?r1
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    # (2) Update G once, through a frozen D: make D(G(z)) look real.
    D.requires_grad_(False)
    loss_g = g_loss(D(fake$y))  #?!inoise
    loss_g = g_loss(D(add_noise(fake, sigma)$y))  #?inoise
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    D.requires_grad_(True)
    opt_g.step()
    if (step + 1) % STATS_EVERY == 0:
        history.append([step + 1, loss_d.item(), loss_g.item(), score(d_real).mean().item(),
                        score(d_fake).mean().item()])
    if (step + 1) % PRINT_EVERY == 0 or step + 1 == TRAIN_STEPS:
        print(f"step {step + 1:>7}  loss D {loss_d.item():8.4f}  loss G {loss_g.item():8.4f}")
if LOSS_LOG:
    np.savetxt(LOSS_LOG, history, fmt="%.17g", delimiter=",", header="step,loss_d,loss_g,d_real,d_fake", comments="")
'''

_RESULT = '''\
G.eval()                                            # dropout off, batch norm on its running statistics
with torch.no_grad():
    y = torch.arange($n, device=DEVICE) % NUM_CLASSES        # 0, 1, 2, ...: each class in turn  #?cond
    samples = G(noise($n)$y).cpu().numpy()
np.save(f"{RUN}-samples.npy", samples)                # (n, *SAMPLE_SHAPE)
torch.save(G.state_dict(), f"{RUN}-generator.pt")
'''


def _keep(template: str, flags: dict[str, bool], subs: dict[str, str]) -> str:
    """`template` with the lines tagged `#?name` (`#?!name`) kept only when flag `name` is on (off), and the
    `$name`s in it replaced (longest first: `$d_lr` is not `$d` + `_lr`)."""
    out = []
    for line in template.splitlines():
        m = re.search(r"\s*#\?(!?)(\w+)$", line)
        if m and flags[m.group(2)] == bool(m.group(1)):
            continue
        line = line[:m.start()] if m else line
        for key in sorted(subs, key=len, reverse=True):
            line = line.replace(key, subs[key]) if key in line else line
        out.append(line)
    return "\n".join(out) + "\n"


# --- checks ----------------------------------------------------------------------------------------------------
def refusal(cfg: TrainConfig) -> str | None:
    """Why a run of `cfg` cannot be exported as code, else None. Cheap: a page can disable its button by it."""
    if SPECS[cfg.dataset].source == "folder":
        return (f"dataset {cfg.dataset!r} (your own images or a zip) cannot be written as code: decoding and resizing "
                "them is the lab's image loader, which the script may not import; export the run folder (zip)")
    if SPECS[cfg.dataset].source == "csv":
        path = Path(cfg.data_path).expanduser()
        lines = path.read_bytes().count(b"\n") if path.is_file() else 0   # uploads are at most 10 MB
        if lines > CSV_EMBED_MAX + 1:
            return f"the CSV has about {lines - 1:,} points; at most {CSV_EMBED_MAX:,} are written into a script"
    return None


def _notes(store: RunStore, cfg: TrainConfig) -> list[str]:
    """What makes the script differ from the lab's run, for its header (never silently)."""
    from .lineage import parent_text
    status = store.read_status()
    device, parent = str(status.get("device") or ""), status.get("parent")
    edits = [r for r in read_jsonl(store.path / COMMANDS) if r.get("cmd") in ("edit", "step")]
    return [note for cond, note in [
        (device and not device.startswith("cpu"), f"The lab trained this run on {device} (CUDA graphs, bf16 "
         "if allowed); the script runs plain fp32 eagerly and matches the lab step for step on CPU only: on a GPU "
         "expect the same curves within noise."),
        (parent, f"This run continued from {parent and parent_text(parent)}; the script trains from scratch."),
        (edits, f"The run had {len(edits)} live edit(s) or step-button press(es); the script uses the final "
         "settings from the first step to the last.")] if cond]


# --- the sections ----------------------------------------------------------------------------------------------
def _data(cfg: TrainConfig) -> tuple[str, str, tuple[int, ...]]:
    """(markdown, code, sample shape) of the data section."""
    from . import data, image_files
    from .dataset import DataError
    name, cond, spec = cfg.dataset, cfg.conditional, SPECS[cfg.dataset]
    flags = {"cond": cond, "table": spec.source == "table", "idx": spec.source == "idx",
             "idx_cond": cond and spec.source == "idx", "tv": spec.source == "torchvision"}
    if spec.source == "toy":
        subs = {"$n_points": str(data.TOY_POINTS), "$classes": str(len(spec.class_names)),
                "$name": spec.sample.__name__,   # the lab's own sampler, copied as it is:
                "$sampler": inspect.getsource(spec.sample).rstrip() + "\n\n"}
        return (f"The data: {name}, a fixed sample of 2D points drawn with numpy from SEED by the lab's own sampler.",
                _keep(_TOYS, flags, subs), (2,))
    try:
        if spec.source == "csv":
            x = data.load_dataset(cfg).x.numpy()   # parsed, centred and scaled as the lab does
            vals = [np.format_float_positional(v, unique=True) for v in x.ravel()]
            pairs = [f"[{a}, {b}]" for a, b in zip(vals[::2], vals[1::2])]
            rows = "".join(f"    {', '.join(pairs[i:i + 8])},\n" for i in range(0, len(pairs), 8))
            return (f"The data: your CSV of {len(x):,} points ({Path(cfg.data_path).name}), written in as the lab "
                    "read it.", f"X = torch.tensor([\n{rows}], dtype=torch.float32)\n", (2,))
        subs, shape, p = {}, (1, 28, 28), spec.params
        if flags["table"]:
            path = data.table_path(spec)
            if path is None:
                raise DataError(f"the {name} file is not here (pip install {p['pip']})")
            subs = {"$path": repr(str(path)), "$pkg": p["pip"], "$s": str(p["size"]),
                    "$where": "/".join(path.parts[-4:])}
            shape = (1, p["size"], p["size"])
        elif flags["idx"]:
            folder = data.idx_folder(spec, cfg)
            if folder is None:
                raise DataError(f"{name}: its IDX files are not here")
            images, labels = image_files.idx_files(folder)
            if cond and labels is None:
                raise DataError(f"{images} has no labels file, which a conditional run needs")
            shape = (1, *image_files.read_idx(images).shape[1:])
            subs = {"$images": repr(str(images.resolve())), "$labels": repr(str(labels and labels.resolve()))}
        elif flags["tv"] and p["channels"] == 3:
            subs, shape = {"$hwc": ".transpose(0, 3, 1, 2)"}, (3, p["size"], p["size"])
    except (DataError, OSError) as e:
        raise ExportError(f"script: {e}") from None
    top = spec.params.get("top", 255)
    subs = {"$hwc": "[:, None]", "$cls": spec.params.get("cls", ""), "$cache": repr(str(data.cache_dir())),
            "$top": str(top), "$half": str(top / 2), **subs}
    return (f"The data: {name} images, read from the same files the lab read, scaled to [-1, 1].",
            _keep(_IMAGES, flags, subs), shape)


def _nets(cfg: TrainConfig, shape: tuple[int, ...], flags: dict[str, bool], subs: dict[str, str]) -> str:
    """The Generator and Discriminator classes, layer by layer, made in the lab's order (it decides the weights)."""
    sn = (lambda s: f"spectral_norm({s})") if cfg.spectral_norm else (lambda s: s)
    out, z_in = math.prod(shape), cfg.noise_dim + (LABEL_EMBED if cfg.conditional else 0)
    g, d = [], []
    if cfg.model == "dcgan":
        start, ups = _dcgan_plan(shape[1])
        ch = ch0 = cfg.channels * 2 ** ups
        for i in range(ups):   # as models.upsample_layer builds each x2 step of `upsample`
            up = {"transposed": f"nn.ConvTranspose2d({ch}, {ch // 2}, 4, 2, 1, bias=False)",
                  "transposed-k3": f"nn.ConvTranspose2d({ch}, {ch // 2}, 3, 2, 1, output_padding=1, bias=False)",
                  "resize": f"nn.Upsample(scale_factor=2), nn.Conv2d({ch}, {ch // 2}, 3, 1, 1, bias=False)"}
            g.append(f"{up[cfg.upsample]}, nn.BatchNorm2d({ch // 2}), "
                     f"nn.ReLU(True),   # {start << i} -> {start << i + 1} pixels")
            ch //= 2
        g.append(f"nn.Conv2d({ch}, {shape[0]}, 3, 1, 1), nn.Tanh(),")
        bn = not (cfg.spectral_norm or LOSS_SPECS[cfg.loss].gradient_penalty)   # as models.build_models decides
        c_in, ch = shape[0], cfg.channels
        for i in range(ups):
            norm = (", bias=False", f" nn.BatchNorm2d({ch}),") if bn and i > 0 else ("", "")
            d.append(f"{sn(f'nn.Conv2d({c_in}, {ch}, 4, 2, 1{norm[0]})')},{norm[1]} nn.LeakyReLU(0.2, True),"
                     f"   # {shape[1] >> i} -> {shape[1] >> i + 1} pixels")
            c_in, ch = ch, ch * 2
        d.append("nn.Flatten(),")
        feat = c_in * start * start
        subs.update({"$project": f"nn.Linear({z_in}, {ch0 * start * start}, bias=False), nn.BatchNorm1d("
                                 f"{ch0 * start * start}), nn.ReLU(True)", "$ch0": str(ch0), "$start": str(start)})
    else:
        dense = cfg.model == "dense-dropout"
        widths = [z_in, *(cfg.g_layers[:1] if dense else cfg.g_layers)]
        act = ("nn.ReLU()," + " Dropout(DROPOUT)," * flags["g_drop"]) if dense else "nn.LeakyReLU(0.2),"
        g = [f"nn.Linear({a}, {b}), {act}" for a, b in zip(widths, widths[1:])]
        g.append(f"nn.Linear({widths[-1]}, {out}),{' nn.Tanh(),' if len(shape) == 3 else ''}")
        widths, drop = [out, *cfg.d_layers], " Dropout(D_DROPOUT)," * flags["d_drop"]
        d = ["nn.Flatten(),"] + [f"{sn(f'nn.Linear({a}, {b})')}, nn.LeakyReLU(0.2),{drop}"
                                 for a, b in zip(widths, widths[1:])]
        feat = cfg.d_layers[-1]
    subs.update({"$g_layers": "\n".join(" " * 12 + s for s in g), "$d_layers": "\n".join(" " * 12 + s for s in d),
                 "$head": sn(f"nn.Linear({feat}, 1)"), "$d_embed": sn(f"label_embedding(NUM_CLASSES, {feat})"),
                 "$emb": str(LABEL_EMBED)})
    init = inspect.getsource(_dcgan_init).replace("_dcgan_init(module: nn.Module) -> None", "dcgan_init(module)")
    embed = re.sub(r'""".*?"""', '"""D\'s class vectors for its projection, N(0, 1/dim) like its other weights."""',
                   inspect.getsource(label_embedding), flags=re.S)
    embed = embed.replace("(num_classes: int, dim: int) -> nn.Embedding", "(num_classes, dim)")
    return (_DROPOUT * (flags["g_drop"] or flags["d_drop"]) + (init + "\n\n") * flags["dcgan"]
            + (embed + "\n\n") * flags["cond"] + _keep(_NETS, flags, subs))


def _loss(cfg: TrainConfig) -> tuple[str, str]:
    loss = L.get_loss(cfg.loss)
    funcs = [L._bce] * loss.uses_sigmoid + [loss.d_loss, loss.g_loss]   # the BCE losses share _bce
    funcs += [L.gradient_penalty] * (loss.gradient_penalty and cfg.gp_lambda > 0)
    funcs += [L.r1_penalty] * (cfg.r1_gamma > 0)
    code = "Tensor = torch.Tensor\n\n\n" + "\n\n".join(inspect.getsource(f) for f in dict.fromkeys(funcs))
    code += f"\n\nd_loss, g_loss = {loss.d_loss.__name__}, {loss.g_loss.__name__}\n"
    code += "score = torch.sigmoid   # D's score: a probability\n" if loss.uses_sigmoid else \
        "score = lambda logits: logits   # D's score: the raw critic value\n"
    return f"The loss: {cfg.loss}. {loss.summary} (These are the lab's own functions, ganlab.losses.)", code


def sections(run_dir) -> tuple[str, list[tuple[str, str, str]]]:
    """(header docstring, [(title, markdown, code)]) of run `run_dir`'s script; ExportError if it cannot be."""
    store = open_store(run_dir)
    try:
        cfg = store.read_config()
    except (StoreError, ValueError) as e:
        raise ExportError(str(e)) from None
    if why := refusal(cfg):
        raise ExportError(f"script: {why}")
    name = store.read_status().get("name") or store.run_id
    run = slug(name)   # as export.default_file_name names the file
    data_md, data_code, shape = _data(cfg)
    loss = L.get_loss(cfg.loss)
    flags = dict(normal=cfg.noise_dist == "normal", inoise=cfg.instance_noise > 0, decay=cfg.lr_decay == "linear",
                 cond=cfg.conditional, gp=loss.gradient_penalty and cfg.gp_lambda > 0, r1=cfg.r1_gamma > 0,
                 adam="adam" in (cfg.g_opt, cfg.d_opt), dcgan=cfg.model == "dcgan", is_2d=cfg.is_2d,
                 g_drop=cfg.model == "dense-dropout" and cfg.dropout > 0,
                 d_drop=cfg.model != "dcgan" and cfg.d_dropout > 0,
                 smooth=cfg.label_smoothing > 0 and LOSS_SPECS[cfg.loss].smooths_labels)
    opt = {"adam": "torch.optim.Adam({0}.parameters(), lr={0}_LR, betas=(BETA1, BETA2), fused=True)",
           "sgd": "torch.optim.SGD({0}.parameters(), lr={0}_LR, foreach=True)",
           "rmsprop": "torch.optim.RMSprop({0}.parameters(), lr={0}_LR, foreach=True)"}
    subs = {**{f"${k}": repr(v) for k, v in cfg.to_dict().items()}, "$run_id": store.run_id, "$run": repr(run),
            "$shape": repr(shape), "$print_every": repr(max(1, cfg.steps // 20)), "$y": ", y" * cfg.conditional,
            "$device": repr(cfg.device) if cfg.device != "auto" else '"cuda" if torch.cuda.is_available() else "mps" '
                       'if torch.backends.mps.is_available() else "cpu"', "$n": "1000" if cfg.is_2d else "64",
            "$prior": "N(0, I)" if flags["normal"] else "U(-1, 1)",
            "$smooth": ", LABEL_SMOOTHING" * flags["smooth"], "$d": "lambda v: D(v, y)" if cfg.conditional else "D",
            "$opt_g": opt[cfg.g_opt].format("G"), "$opt_d": opt[cfg.d_opt].format("D")}
    nets = _nets(cfg, shape, flags, subs)
    loss_md, loss_code = _loss(cfg)
    body = data_code + nets + loss_code
    uses = [("import gzip", "gzip."), ("import os", ""), ("import struct", "struct."),
            ("from typing import Callable", "Callable["), ("\nimport numpy as np\nimport torch", ""),
            ("import torch.nn.functional as F\nfrom torch import nn", ""),
            ("from torch.nn.utils.parametrizations import spectral_norm", "spectral_norm(")]
    imports = [m for m, mark in uses if mark in body]
    secs = [("Settings", "Every setting of the run, as constants. `TRAIN_STEPS=300` (environment) stops early; "
                         "`LOSS_LOG=losses.csv` writes the losses.",
             "\n".join(imports) + "\n\n" + re.sub(r"(?m)^([A-Z][A-Z_, 0-9]* = [^#\n]*?) +# ",   # align comments
                                                   lambda m: f"{m.group(1):<34}  # ", _keep(_SETTINGS, flags, subs))),
            ("Data", data_md, data_code),
            ("Networks", f"G maps noise z to a sample; D maps a sample to one logit ({cfg.model}).", nets),
            ("Loss", loss_md, loss_code),
            ("Training", "Build G and D and their optimisers, then alternate D_STEPS updates of D with one of G.",
             _keep(_LOOP, flags, subs)),
            ("Samples", "Samples, and G's weights, saved next to the script.", _keep(_RESULT, flags, subs))]
    header = (f'"""Train the GAN of the ganlab run "{name}" ({store.run_id}) with PyTorch and numpy alone.\n\n'
              f"{cfg.dataset} · {cfg.model} · loss {cfg.loss} · {cfg.steps:,} steps of batch {cfg.batch_size}. Written "
              "by ganlab's 'export as code'. On CPU, with the\nsame seed, its losses equal the lab's run step for "
              "step (the lab's metrics CSV; LOSS_LOG writes this one's).\n\n"
              f"    python train_{run}.py                    # the whole run\n"
              f"    TRAIN_STEPS=300 python train_{run}.py    # stop after 300 steps\n"
              + "".join(f"\nNote: {n}\n" for n in _notes(store, cfg)) + '"""\n')
    return header, secs


def script_py(run_dir) -> bytes:
    """The run as one runnable Python script (`train_<run>.py`)."""
    header, secs = sections(run_dir)
    return (header + "".join(f"\n\n# --- {t} {'-' * (100 - len(t))}\n{code}" for t, _, code in secs)).encode()


def notebook_ipynb(run_dir) -> bytes:
    """The same code as a Jupyter notebook (nbformat 4): a markdown heading before each section's code cell."""
    header, secs = sections(run_dir)
    cells = [("markdown", "# " + header.strip().strip('"').strip())]
    for title, text, code in secs:
        cells += [("markdown", f"## {title}\n\n{text}"), ("code", code.strip("\n"))]
    nb = {"cells": [{"cell_type": k, "id": f"cell-{i}", "metadata": {}, "source": t.splitlines(keepends=True),
                     **({"execution_count": None, "outputs": []} if k == "code" else {})}
                    for i, (k, t) in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    return (json.dumps(nb, indent=1) + "\n").encode()
