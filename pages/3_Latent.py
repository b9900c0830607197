"""Latent explorer: move G's input z by hand, sweep one dimension, interpolate between two seeds and follow
GANSpace-style principal directions. Uses run.generate (a private eval copy of G), never the trainer."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from ganlab import charts, links
from ganlab.latent import interpolate, pca_directions, sample_z, sweep, z_span
from ganlab.viz import extent_of
from ui.classroom import copy_link, fresh_params
from ui.common import registry, run_page
from ui.live import class_names, echart_2d, show_montage

N_GRID, N_ROW, N_PCA = 16, 9, 512
SIDE = 360   # plot side of the smaller 2D views, pixels

run = run_page("Latent explorer")
view = run.view(with_snapshots=False)
cfg, snap = view.cfg, view.latest
if snap is None:
    st.info("This run has no generator snapshot yet: start it on the Train page.")
    st.stop()
dim, span = cfg.noise_dim, z_span(cfg.noise_dist)
K = f"lat.{run.id}."   # widget keys per run: runs differ in noise size and range
st.session_state.setdefault(K + "seed", 0)


def generate(z: np.ndarray, label: int | None) -> np.ndarray:
    y = None if label is None else np.full(len(z), label, dtype=np.int64)
    return run.generate(z, y)


def on_grid(v: float) -> float:
    """A slider value on the slider's 0.05 grid and inside its range."""
    return float(np.clip(round(v * 20) / 20, -span, span))


def base_z(seed: int) -> np.ndarray:
    return sample_z(N_GRID, dim, seed, cfg.noise_dist)


def _reset(new_seed: bool) -> None:   # button callback: runs before the sliders are drawn
    if new_seed:
        st.session_state[K + "seed"] = int(np.random.default_rng().integers(0, 100_000))
    z0 = base_z(st.session_state[K + "seed"])[0]
    for d in range(dim):
        st.session_state[f"{K}z{d}"] = on_grid(z0[d])


def apply_link(link: dict[str, str], n_classes: int) -> None:
    """A link's seed, moved dimensions with their values, and class, set before the widgets draw."""
    seed_ = links.read_int(link.get("seed"), 0, 2**31 - 1)
    if seed_ is not None:
        st.session_state[K + "seed"] = seed_
    moved = links.read_names(link.get("dims"), [str(d) for d in range(dim)])
    values = links.read_floats(link.get("z"), span, max_len=8)
    if moved is not None and len(moved) <= 8:
        st.session_state[K + "dims"] = [int(d) for d in moved]
        if values is not None and len(values) == len(moved):
            for d, v in zip(moved, values):
                st.session_state[f"{K}z{d}"] = on_grid(v)
    label_ = links.read_int(link.get("class"), 0, n_classes - 1) if n_classes else None
    if label_ is not None:
        st.session_state[K + "class"] = label_


names = class_names(view)
apply_link(fresh_params(), len(names))
st.session_state.setdefault(K + "dims", list(range(min(4, dim))))
c = st.columns([2, 2, 4, 2, 2], vertical_alignment="bottom")
seed = c[0].number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K + "seed",
                         on_change=_reset, args=(False,), help="The same seed gives the same z everywhere")
label = c[1].selectbox("Class", range(len(names)), format_func=lambda i: names[i], key=K + "class") if names else None
dims = c[2].multiselect("Dimensions to move", range(dim), max_selections=8, key=K + "dims")
c[3].button("Randomise", on_click=_reset, args=(True,), icon=":material/casino:")
c[4].button("Reset", on_click=_reset, args=(False,), icon=":material/restart_alt:")

zs = base_z(seed)
z = zs[0].copy()
scols = st.columns(max(1, len(dims)))
for col, d in zip(scols, dims):
    st.session_state.setdefault(f"{K}z{d}", on_grid(z[d]))
    z[d] = col.slider(f"z[{d}]", -span, span, step=0.05, key=f"{K}z{d}")
batch = zs.copy()
batch[:, dims] = z[dims]   # the 16 samples share the dimensions you move; the others differ
batch[0] = z

try:
    t0 = time.perf_counter()
    out = generate(batch, label)
    ms = (time.perf_counter() - t0) * 1000
except RuntimeError as e:
    st.info(f"Cannot draw samples yet: {e}")
    st.stop()

if cfg.is_2d:
    extent = extent_of(snap)
    left, right = st.columns([3, 2])
    with left:
        echart_2d(charts.latent_2d_chart(snap.real, out[0], extent, others=out[1:]), "lat-2d")
    right.markdown("The diamond is G(your z). The orange dots are 15 other seeds that share the dimensions "
                   "you move: drag a slider and watch which way they all travel. A collapsed G sends many "
                   "different z to the same mode.")
else:
    left, right = st.columns([1, 2])
    with left:
        show_montage(out[:1], caption="G(your z)", target_px=280)
    with right:
        show_montage(out, nrow=4, caption="16 samples sharing the dimensions you move (first: your z)")
cap, share = st.columns([5, 1])
cap.caption(f"generated {N_GRID} samples in {ms:.1f} ms · G from step {snap.step:,}")
with share:
    copy_link("Latent", {"run": run.id, "seed": seed, "dims": ",".join(str(d) for d in dims),
                         "z": ",".join(f"{z[d]:g}" for d in dims), "class": label}, key="lat-link", what="this z")

st.subheader("Sweep one dimension, interpolate between two seeds")
i0, i1, i2 = st.columns(3)
sd = i0.selectbox("Dimension to sweep", range(dim), key=K + "sweep")
values = np.linspace(-span, span, N_ROW)
path = generate(sweep(z, sd, values), label)
seed_b = i1.number_input("Second seed", min_value=0, max_value=2**31 - 1, value=1, step=1, key=K + "seed_b")
mode = i2.radio("Interpolation path", ["linear", "slerp"], horizontal=True, key=K + "mode",
                help="slerp follows the sphere where Gaussian z's live; the straight line cuts through "
                     "unusually short z's near the centre")
interp = generate(interpolate(z, base_z(seed_b)[0], N_ROW, mode), label)
if cfg.is_2d:
    a, b = st.columns(2)
    with a:
        echart_2d(charts.latent_2d_chart(snap.real, out[0], extent, path=path, path_name=f"z[{sd}] sweep",
                                         title="Sweep", side=SIDE), "lat-sweep", side=SIDE)
    with b:
        echart_2d(charts.latent_2d_chart(snap.real, out[0], extent, path=interp, path_name=mode,
                                         title="Interpolation", side=SIDE), "lat-interp", side=SIDE)
else:
    show_montage(path, nrow=N_ROW, target_px=900, caption=f"z[{sd}] from {-span:g} to {span:g}")
    show_montage(interp, nrow=N_ROW, target_px=900, caption=f"{mode} from seed {seed} (your z) to seed {seed_b}")


@st.cache_data(show_spinner="Finding principal directions...", max_entries=16)
def directions(run_id: str, step: int, label: int | None) -> tuple[np.ndarray, np.ndarray]:
    zs = sample_z(N_PCA, dim, 12345, cfg.noise_dist)
    y = None if label is None else np.full(N_PCA, label, dtype=np.int64)
    return pca_directions(zs, registry().get(run_id).generate(zs, y), k=3)


st.subheader("Principal directions (GANSpace-style)")
st.caption(f"PCA of G's outputs for {N_PCA} random z, regressed back onto z (GANSpace uses early "
           "activations; outputs keep the models untouched). Each row moves your z along one direction.")
dirs, explained = directions(run.id, snap.step, label)
steps = np.linspace(-span, span, 7)
pcols = st.columns(len(dirs)) if cfg.is_2d else []
for k, (u, share) in enumerate(zip(dirs, explained)):
    row = generate(z[None] + steps[:, None] * u[None], label)
    title = f"PC{k + 1}: {share:.0%} of variance"
    if cfg.is_2d:
        with pcols[k]:
            echart_2d(charts.latent_2d_chart(snap.real, out[0], extent, path=row, path_name=f"PC{k + 1}",
                                             title=title, side=260), f"lat-pc{k}", side=260)
    else:
        show_montage(row, nrow=len(steps), target_px=700, caption=title)
