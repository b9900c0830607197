"""The lessons, as data: each pairs a preset with the idea it shows (text with LaTeX math), what to watch on
which page, what to try next, and the check that the preset still shows it.

Only content lives here; ganlab/lessons.py runs the checks (`python -m ganlab lessons --check`) and
pages/5_Learn.py lays the lessons out. To add a lesson: one `Lesson(...)` entry in LESSONS, with a `Check` of a
kind that lessons.CHECKS knows (or none, for a look-and-see lesson); tests/test_lessons.py covers it by itself.
`page` names the page to open (the page file's name without its number: "Train", "Samples", ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import TrainConfig, get_preset


@dataclass(frozen=True)
class Check:
    """The phenomenon a lesson's preset must show, judged on one headless run per seed.

    kind: coverage (>= min_modes modes covered, default all, and >= hq_min high-quality samples), collapse
    (<= max_modes covered), vanishing (median G gradient norm over `window` steps at least `ratio` times below
    the same run with loss=nonsaturating), overpowering (diagnose() names an overpowering D or vanishing
    gradients), images (classifier confidence >= conf_min with `classes` digits drawn), conditional (the
    classifier reads the asked-for digit in >= acc_min of the samples). Image kinds are judged at the end.
    """
    kind: str
    phenomenon: str                 # one line for the table
    target_rate: float = 0.8        # share of seeds that must show it
    seeds: int = 10                 # default number of seeds (image lessons: 1, they take minutes on a CPU)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    preset: str
    explanation: str                # markdown with $$...$$ math
    watch: str                      # what to watch, naming the page
    try_next: str                   # the change to try next
    page: str                       # the page the start button opens: "Train", "Samples", "Latent", ...
    check: Check | None = None      # None: a look-and-see lesson without an automatic check
    changes: dict[str, Any] = field(default_factory=dict)   # applied on top of the preset

    def config(self, **extra: Any) -> TrainConfig:
        """The validated config this lesson trains: preset, then `changes`, then `extra` (seed, steps...)."""
        return get_preset(self.preset).config(**{**self.changes, **extra})


# --- the lessons ------------------------------------------------------------------------------------------
_FIRST = r"""
A GAN is a game between two networks. The **generator** $G$ turns noise $z \sim p_z$ (here 8 numbers drawn
from $\mathcal N(0, I)$) into a point $G(z)$; the **discriminator** $D(x) \in (0, 1)$ is its estimate of the
probability that $x$ came from the data. The tutorial articles write the game the way Goodfellow et al. (2014) did:

$$
\min_G \max_D \; V(D, G) = \mathbb E_{x \sim p_{data}}[\log D(x)] + \mathbb E_{z \sim p_z}[\log(1 - D(G(z)))]
$$

For a fixed $G$, with $p_g$ the density of $G$'s samples, $D$ maximises
$p_{data}(x) \log D(x) + p_g(x) \log(1 - D(x))$ at every point $x$; setting the derivative to zero gives the
**optimal discriminator**

$$
D^*(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)}
$$

Putting $D^*$ back into $V$ turns the game into a distance between distributions:

$$
V(D^*, G) = -\log 4 + 2 \cdot \mathrm{JSD}(p_{data} \,\|\, p_g)
$$

The Jensen-Shannon divergence is zero only when $p_g = p_{data}$, so the best $G$ copies the data, and there
$D^* = \tfrac12$ everywhere: the discriminator can only guess. In practice nobody finds $D^*$: ganlab
alternates one gradient step on $D$ (real batch and a detached fake batch) and one on $G$ (with $D$ frozen),
each with its own backward pass and its own Adam optimiser.

The data are 8 Gaussians on a circle of radius 2 (std 0.02); $G$ and $D$ are small MLPs (3 layers of 64),
batch 512, Adam with the learning rate decayed linearly to 0, which lets the samples settle on the modes.
$D$ also pays the R1 penalty of Mescheder et al. (2018) on real data,

$$
\frac{\gamma}{2}\, \mathbb E_{x \sim p_{data}} \|\nabla_x D(x)\|^2, \qquad \gamma = 0.1,
$$

which keeps $D$ flat where the data are: at the equilibrium $D$ has nothing left to push $G$ with, so $G$ settles
instead of circling. Without it, a mode or two stays empty in some seeds.
"""
_COLLAPSE = r"""
**Mode collapse**: $G$ maps most of its noise onto a few modes and ignores the rest. Nothing in one
gradient step of $G$ asks it to cover the data; it asks it to move each sample to where $D$ currently says
"real". The theory assumed $D = D^*$ after every change of $G$; alternating single steps is a different game.
Here $G$ learns twice as fast as $D$: it moves its mass onto the spot $D$ likes best before $D$ can react,
then $D$ learns to reject that spot and $G$ jumps to the next one. In effect $\min_G \max_D$ turns into
$\max_D \min_G$, and the best answer of $G$ to a fixed $D$ is a single point. $G$ also gets a single noise
dimension, so it draws a curve, and a curve that visits all 8 modes has to spend samples on the way between
them: cheaper for $G$ to sit on one or two.

A sample is **high quality** when it lies within $3\sigma$ of a mode; a mode is **covered** when at least 0.8%
of the samples are high-quality samples on it (PacGAN's 20 of 2,500). The reverse KL over modes,
$\mathrm{KL}(\hat p_g \,\|\, \mathrm{uniform})$, is 0 for an even spread and $\log 8 \approx 2.08$ when every
sample sits on one mode.
"""
_SATURATING = r"""
Write $D(x) = \sigma(\ell(x))$ with $\ell$ the discriminator's logit. The minimax objective gives $G$ the loss
$\mathcal L_G = \mathbb E_z[\log(1 - D(G(z)))]$ (tutorial 001 writes it exactly so). Its gradient with respect
to the logit of a fake sample is

$$
\frac{\partial}{\partial \ell} \log(1 - \sigma(\ell)) = -\sigma(\ell) = -D(G(z))
$$

Early in training, or whenever $D$ wins, $D$ rejects the fakes: $D(G(z)) \to 0$, and so does the gradient:
$G$ stops learning exactly when it is worst. This is the **saturating** loss. Goodfellow et al. already
proposed the fix: let $G$ maximise $\log D(G(z))$, i.e. minimise $-\log D(G(z))$, whose gradient is

$$
\frac{\partial}{\partial \ell} \left(-\log \sigma(\ell)\right) = -(1 - \sigma(\ell)) = -(1 - D(G(z)))
$$

close to $-1$ when $D$ rejects the fakes: a strong push. Both losses have the same fixed point
($p_g = p_{data}$, $D = \tfrac12$); only the **non-saturating** one gives $G$ a usable gradient far from it.
This preset uses the minimax loss on the ring of 8, with a wider discriminator that learns 10x faster than
$G$, so $D$ wins early, as it does in most GANs' first steps. `lessons --check` compares $G$'s gradient norm
with the same run using `loss=nonsaturating`.
"""
_STRONG_D = r"""
When $D$ is far ahead of $G$ (here $D$ has 3 layers of 128 units and learns 50x faster than a $G$ with one
hidden layer of 16), it separates real from fake almost perfectly: $D(x) \approx 1$ and $D(G(z)) \approx 0$.
Arjovsky & Bottou (2017) showed why this is a dead end. Real data and early fakes lie on thin sets (here 8
tiny blobs) that barely overlap, so a perfect discriminator exists, and then

$$
\mathrm{JSD}(p_{data} \,\|\, p_g) = \log 2 \quad\text{for every such } G,
$$

a constant: it says "wrong" but not "which way". With the saturating loss $G$'s gradient vanishes; with the
non-saturating loss it stays large but points along $D$'s sharp, nearly flat-topped decision surface, so $G$'s
samples jitter instead of converging. A good $D$ is one that is *slightly* ahead of $G$.
"""
_WGAN = r"""
The Jensen-Shannon divergence saturates at $\log 2$ when the two distributions do not overlap, whatever the
distance between them. The **Wasserstein-1** (earth mover's) distance keeps measuring how far they are:

$$
W_1(p_{data}, p_g) = \inf_{\gamma \in \Pi(p_{data}, p_g)} \mathbb E_{(x, y) \sim \gamma} \|x - y\|
= \sup_{\|f\|_L \le 1} \mathbb E_{x \sim p_{data}}[f(x)] - \mathbb E_{x \sim p_g}[f(x)]
$$

(Kantorovich-Rubinstein duality). WGAN trains a **critic** $f$ (D without the sigmoid, raw scores) to reach
the supremum, and $G$ to lower it with the loss $-\mathbb E_z[f(G(z))]$. The supremum is over **1-Lipschitz**
functions; WGAN-GP (Gulrajani et al. 2017) enforces that softly with a gradient penalty at random points
$\hat x$ on lines between real and fake samples:

$$
\mathcal L_D = \mathbb E[f(G(z))] - \mathbb E[f(x)]
+ \lambda\, \mathbb E_{\hat x}\big[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2\big]
$$

The critic gets 5 steps per $G$ step (it should be near its optimum) and Adam uses $\beta = (0.5, 0.9)$.
The paper uses $\lambda = 10$ for images; this preset uses a smaller $\lambda$ because the ring's modes are tiny
(std 0.02) and the critic needs steep slopes between them.
"""
_DCGAN = r"""
The tutorials' generators are MLPs: every pixel has its own weights, and nothing tells the network that
neighbouring pixels belong together. **DCGAN** (Radford et al. 2016) builds $G$ from transposed convolutions
that upsample $z$ step by step, $(N, z) \to (N, 2c, 7, 7) \to (N, c, 14, 14) \to (N, 1, 28, 28)$, with
batch norm and ReLU, and $\tanh$ at the output; $D$ mirrors it with strided convolutions and LeakyReLU(0.2),
no pooling and no fully connected hidden layers. Adam with learning rate $2\cdot 10^{-4}$ and
$\beta_1 = 0.5$ is the paper's recipe, which the tutorials copied.

ganlab scores image samples with a small digit classifier trained on the bundled MNIST digits: the mean
**confidence** $\mathbb E_x \max_y p(y \mid x)$ is high for sharp, digit-like samples, **classes present**
counts digits drawn by at least a few percent of the samples (a collapsed $G$ draws fewer), and the Fréchet
distance in the classifier's feature space is the FID formula in a small feature space.

What to expect from 5,000 digits: real held-out digits score about 0.97; this DCGAN climbs to about 0.83 in
3,000 steps and stays there, with all ten digits drawn evenly. Half its samples are read with confidence
above 0.9; the lowest quarter are broken strokes and shapes between two digits. $G$ is a continuous map
from one connected cloud of noise, and the digits are separate islands, so some noise must land between
them. Giving $G$ the label (the conditional lesson, the same networks) lifts confidence to about 0.93.
"""
_LATENT = r"""
$G$ is a smooth function of $z$, so walking from $z_0$ to $z_1$ morphs one sample into another. With
$z \sim \mathcal N(0, I_d)$ almost all the probability sits on a thin shell: $\|z\| \approx \sqrt d$
(10 for $d = 100$). The straight line (**lerp**)

$$
z(t) = (1 - t)\, z_0 + t\, z_1
$$

cuts through the inside of the shell: at $t = \tfrac12$, $\|z\| \approx \sqrt{d/2}$ (about 7 for $d = 100$), a
region $G$ never saw in training, and the midpoints look faded or blurry. The spherical path (**slerp**,
White 2016) stays on the shell:

$$
\mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\,\Omega)}{\sin \Omega}\, z_0
+ \frac{\sin(t\,\Omega)}{\sin \Omega}\, z_1, \qquad \cos \Omega = \frac{z_0 \cdot z_1}{\|z_0\|\,\|z_1\|}
$$

This preset is the tutorials' MLP GAN on MNIST (fast enough for a laptop CPU).
"""
_COND = r"""
A conditional GAN (Mirza & Osindero 2014) gives both networks the label $y$: $G(z, y)$ draws a sample of
class $y$, and $D(x, y)$ judges whether $x$ is a real example *of that class*:

$$
\min_G \max_D \; \mathbb E_{(x, y) \sim p_{data}}[\log D(x, y)] + \mathbb E_{z, y}[\log(1 - D(G(z, y), y))]
$$

ganlab feeds $y$ through a learned embedding. Now $z$ only has to carry what the label does not: the
handwriting style. Fix $z$ and change $y$: the digit changes, the stroke width and slant stay.
"""
_TUTORIALS = r"""
The tutorial articles this app starts from teach the minimax objective, the MLP generator of article 000
(256-512-1024 units, LeakyReLU 0.2, Tanh output, Adam $2\cdot10^{-4}$, $\beta_1 = 0.5$), the saturating
$G$ loss (001), a small 128-128 MLP with $\mathcal L_G = -\mathbb E[D(G(z))]$ (002) and the Keras generator
Dense(128, relu) + Dropout(0.3) + Dense(784, tanh) on 100-d noise (003). This preset is that Keras generator
against an MLP discriminator on the bundled MNIST digits.
"""
GNN_NOTE = (
    "**About the \"generator network (GNN)\" of article 004.** The article presents a \"generator network "
    "(GNN)\" as a model family that evolved from GANs and beats them. There is no such family: in the "
    "literature GNN means *graph neural network*, which has nothing to do with generating images, and a "
    "\"generator network\" is simply the $G$ of a GAN (or of a VAE decoder). The article's code does not run "
    "(its Generator adds tensors of different widths, its Discriminator ignores the second layer, and "
    "`generator.backward()` calls a method that modules do not have), and its claimed advantages are not "
    "measured anywhere. Read it as a GAN article with a wrong name; everything real it describes is in the "
    "lessons above.")
TUTORIAL_BUGS = (
    "**Bugs in the tutorial code that ganlab avoids.** "
    "(1) `BCELoss` applied to raw logits (or a sigmoid followed by BCELoss): ganlab computes every BCE loss with "
    "`binary_cross_entropy_with_logits`, which is exact and numerically safe. "
    "(2) One combined backward pass for $G$ and $D$ with one optimiser step: the discriminator then also learns "
    "from the generator's objective. ganlab steps $D$ on detached fakes, then $G$ with $D$'s weights frozen, each "
    "with its own optimiser. "
    "(3) A discriminator that flattens images before `Conv2d`: the convolution then sees no 2D image. ganlab's "
    "DCGAN discriminator convolves $(N, 1, 28, 28)$ images and flattens only before its last layer.")

LESSONS: list[Lesson] = [
    Lesson("first-gan", "Your first GAN: the minimax game on a ring of 8", "ring8", _FIRST,
           "On **Train**, watch the fake points (orange) spread from a blob to all 8 modes, and D's background "
           "fade towards 0.5 as it loses its edge. The quality panel counts modes covered and the share of "
           "high-quality samples; on **Discriminator** the histograms of D(x) and D(G(z)) move towards 0.5.",
           "Start again with `r1_gamma` 0 (a bare GAN): in some seeds a mode stays empty. Or set `lr_decay` "
           "to none and watch the samples keep jittering around the modes.", "Train",
           Check("coverage", "8/8 modes with >= 80% high-quality samples", params={"hq_min": 0.8})),
    Lesson("mode-collapse", "Mode collapse", "ring8-collapse", _COLLAPSE,
           "On **Train**, the fakes gather on a few modes (or hop from one to another); the quality panel "
           "shows few modes covered, a high reverse KL and a *Mode collapse* diagnosis. On **Latent**, the "
           "whole noise grid maps onto those few points.",
           "Start it again with `noise_dim` 8 and `g_lr` 1e-3 (or start `ring8`, which adds R1 and learning-rate "
           "decay), and compare the two runs on **Compare**.", "Train",
           Check("collapse", "<= 4 of 8 modes covered", params={"max_modes": 4})),
    Lesson("saturating", "Saturating vs non-saturating generator loss", "ring8-saturating", _SATURATING,
           "On **Train**, D(G(z)) drops below 0.1 within a few hundred steps and stays there; G's gradient norm "
           "stays small and the fakes crawl towards the ring. The gradient arrows on the 2D view are short.",
           "Start the same preset with `loss` nonsaturating (or branch this run with that loss on **Runs**) and "
           "put both on **Compare**: G's gradient is 10-30x larger and the fakes reach the modes much sooner.",
           "Train",
           Check("vanishing", "G's gradient >= 10x below the non-saturating run",
                 params={"ratio": 10.0, "window": (500, 1500)})),
    Lesson("strong-d", "A discriminator that is too strong", "ring8", _STRONG_D,
           "On **Discriminator**, the two histograms split to 0 and 1 and stay there; D's heatmap draws hard "
           "islands around the modes. On **Train**, the diagnosis *The discriminator is overpowering G*.",
           "Weaken D while it runs (live settings): `label_smoothing` 0.1, `instance_noise` 0.1, `d_steps` 1, "
           "or `d_lr` 1e-4; each one gives G useful feedback again.", "Discriminator",
           Check("overpowering", "diagnosis: D overpowers G (or G's gradient vanishes)"),
           # Measured: a 256x3 D with 5 steps per G step still let G keep up (D(x) 0.89, D(G(z)) 0.10, no
           # diagnosis); D only runs away when G is both small and slow.
           dict(g_layers=(16,), d_layers=(128, 128, 128), g_lr=2e-5, d_lr=1e-3, r1_gamma=0.0, batch_size=256,
                lr_decay="none", steps=3000)),
    Lesson("wgan-gp", "WGAN-GP: from Jensen-Shannon to Wasserstein", "ring8-wgan-gp", _WGAN,
           "On **Train**, the Wasserstein estimate E[f(x)] - E[f(G(z))] falls as G improves (a loss curve that "
           "means something); on **Discriminator** the scores are raw critic values, not probabilities.",
           "Set `gp_lambda` to 0 (live): without the penalty the critic's slopes grow and training wobbles. "
           "Then try `d_steps` 1.", "Train",
           Check("coverage", ">= 7 of 8 modes covered", params={"min_modes": 7, "hq_min": 0.0})),
    Lesson("dcgan", "DCGAN on MNIST", "mnist-dcgan", _DCGAN,
           "On **Samples**, the fixed-noise grid turns from grey noise into strokes and then digits within a "
           "few epochs; the quality panel shows classifier confidence rising and the number of digits drawn.",
           "Start `mnist-mlp` (the tutorials' MLP GAN) and compare both on **Compare**: same data, same "
           "optimiser, very different samples per step.", "Samples",
           Check("images", "confidence >= 0.9 with all 10 digits drawn", seeds=1,
                 params={"conf_min": 0.9, "classes": 10, "eval_every": 500})),
    Lesson("latent-walk", "Walking the latent space: linear vs spherical", "mnist-mlp", _LATENT,
           "On **Latent**, interpolate between two seeds with *linear*, then with *slerp*: the linear path's "
           "middle frames are fainter. Sweep one dimension to see what it controls.",
           "Interpolate in a DCGAN run too (`mnist-dcgan`), and follow the principal directions.", "Latent"),
    Lesson("conditional", "Conditional GANs: ask for a digit", "mnist-cgan", _COND,
           "On **Latent**, pick the class to draw; on **Samples**, each position of the grid cycles through "
           "the digits 0-9 with its own noise.",
           "Fix the seed on **Latent** and change only the class: the style stays, the digit changes.", "Latent",
           Check("conditional", "the classifier reads the asked-for digit in >= 80%", seeds=1,
                 params={"acc_min": 0.8, "eval_every": 500})),
    Lesson("tutorials", "What the tutorial articles teach, and what they get wrong", "mnist-keras",
           _TUTORIALS + "\n" + TUTORIAL_BUGS + "\n\n" + GNN_NOTE,
           "On **Samples**, the Keras generator's digits: recognisable but noisy (one hidden layer of 128).",
           "Start `mnist-mlp` (article 000's bigger MLP) and `mnist-dcgan`, and compare them on **Compare**.",
           "Samples"),
]
_BY_ID = {lesson.id: lesson for lesson in LESSONS}


def get_lesson(lesson_id: str) -> Lesson:
    try:
        return _BY_ID[lesson_id]
    except KeyError:
        raise KeyError(f"unknown lesson {lesson_id!r}; lessons: {', '.join(_BY_ID)}") from None
