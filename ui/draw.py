"""Two canvases (streamlit-drawable-canvas, served by the lab itself): draw your own 2D data and train on it at once,
and draw a digit for D to judge. The conversions are ganlab.drawn's and D's answer ganlab.be_d's; this module
only lays out the canvas, reads its pixels and shows what comes back.

- `draw_data(key)` (the Train page's new-run form, under the upload): a square canvas over the lab's 2D box, in
  strokes or points. DRAW_BUTTON, "Train on my drawing", is a second submit button of the config form (so the
  form's edited values count): its callback turns the drawing into x,y points (`drawn.drawing_points`), keeps
  them as an ordinary CSV upload (`uploads.save_upload`) and hands the form the config to start: the form's own
  settings on that csv when it holds a 2D configuration, else DRAW_PRESET's. The form then shows what started.
- `ask_d_panel(run, shape)` (Be the discriminator): a black 280x280 canvas for a white digit; every stroke shows
  D's score of it (each class's for a conditional run), the drawing as D sees it, and G's closest sample.
"""
from __future__ import annotations

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from ganlab import be_d, drawn
from ganlab.config import get_preset
from ganlab.data_specs import SPECS
from ganlab.dataset import DataError
from ganlab.montage import montage, png_bytes
from ganlab.runs import Run
from ganlab.store import default_runs_dir
from ganlab.uploads import save_upload
from ui.config_form import form_note, form_values, load_form, parse_config, submit
from ui.live import echart

DATA_PX = 320            # the 2D canvas's side, in pixels
DIGIT_PX = 280           # the digit canvas's side (10 canvas pixels per pixel of a 28x28 image)
DRAW_PRESET = "ring8"    # the settings a drawing trains with when the form holds an image configuration
DRAWN_NAME = "my drawing"
MODES = {"strokes": "freedraw", "points": "point"}


@st.cache_resource(show_spinner=False)
def _grid_png(size: int) -> bytes:
    return png_bytes(drawn.box_grid(size))


def draw_data(key: str = "cfg") -> None:
    """The drawing canvas of the new-run form (above it); the form's DRAW_BUTTON trains on what is drawn here."""
    with st.container(border=True, key=f"{key}-draw"):
        st.markdown("**Or draw your own data** in the lab's box, from -4 to 4 on both axes (the darker lines are "
                    "the axes), then press **Train on my drawing** under the form: it trains at once, with the "
                    "form's settings.")
        canvas, side = st.columns([3, 2], gap="medium")
        with side:
            mode = st.segmented_control("Draw with", list(MODES), default="strokes", key=f"{key}._draw_mode",
                                        required=True, help="Strokes: drag to paint lines. Points: click to drop dots.")
            st.caption(f"The ink becomes {drawn.N_POINTS:,} x,y points, kept as a CSV file: an ordinary csv run, "
                       "reproducible and exportable. The canvas's toolbar undoes, redoes and clears.")
        with canvas:
            st_canvas(stroke_width=14, stroke_color="#4f46e5", fill_color="#4f46e5",
                      background_image=_grid_png(DATA_PX), height=DATA_PX, width=DATA_PX,
                      drawing_mode=MODES.get(mode or "strokes", "freedraw"), point_display_radius=5,
                      return_image_data=True, key=f"{key}._canvas")


def _canvas_pixels(canvas_key: str):
    """What the canvas `canvas_key` last sent (its RGBA pixels), or None when nothing was drawn yet. Read from its
    session state and decoded under drawn.MAX_SIDE (CanvasResult.image_data would decode any size it is sent)."""
    state = st.session_state.get(canvas_key) or {}
    return drawn.decode_canvas((state.get("drawing") or {}).get("data"))


def train_on_drawing(key: str) -> None:
    """DRAW_BUTTON's callback: the drawing's points kept as an upload and the config that trains on them handed to
    the form (config_form returns it, the page starts it); an empty canvas or a bad form says so, nothing else."""
    try:
        points = drawn.drawing_points(_canvas_pixels(f"{key}._canvas"))
        _, path, _ = save_upload(default_runs_dir(), "drawing.csv", drawn.points_csv(points))
    except (drawn.DrawingError, DataError) as e:
        form_note(key, "warning", f"Nothing to train on yet: {e}.")
        return
    values = form_values(key)
    if getattr(SPECS.get(values.get("dataset")), "kind", None) == "2d":
        cfg, errors = parse_config({**values, "dataset": "csv", "data_path": str(path)})
        if cfg is None:
            st.session_state[f"{key}._errors"] = errors
            return
    else:
        cfg = get_preset(DRAW_PRESET).config().replace(dataset="csv", data_path=str(path))
        form_note(key, "info", f"The form held an image configuration, so your drawing trains with {DRAW_PRESET}'s "
                               "settings.")
    load_form(cfg, key)   # the form shows what trains: its Start trains the drawing again
    st.session_state[f"{key}._drawn"] = True
    submit(key, cfg)


def drawn_run_name(key: str = "cfg") -> str | None:
    """The name for the run the form returned: the typed one, else DRAWN_NAME when it trains a drawing."""
    drawing = st.session_state.pop(f"{key}._drawn", False)
    return st.session_state.get(f"{key}.name") or (DRAWN_NAME if drawing else None)


DRAW_BUTTON = ("Train on my drawing", ":material/draw:", train_on_drawing)


def ask_d_panel(run: Run, shape: tuple[int, ...]) -> None:
    """Draw a digit, ask D: D's score of the drawing and G's closest sample, for a run of (1, H, W) images."""
    st.subheader("Draw a digit, ask D")
    if len(shape) != 3 or shape[0] != 1:
        st.info("Drawing works on single-channel image runs (digits): this run's images have colour.")
        return
    size = shape[1:]
    # keyed: an unkeyed block remounts when an element above it comes or goes, and the canvas would lose the
    # drawing (docs/architecture.md, section 6)
    pad, answer_col, closest_col = st.container(key="bed-draw-box").columns([3, 3, 3], gap="medium")
    with pad:
        st_canvas(stroke_width=22, stroke_color="#ffffff", background_color="#000000", height=DIGIT_PX,
                  width=DIGIT_PX, drawing_mode="freedraw", return_image_data=True, key=f"bed-draw-{run.id}")
        st.caption(f"White on black, big and centred, as MNIST's digits are. D sees it at {size[1]}x{size[0]}.")
    try:
        image = drawn.digit_image(_canvas_pixels(f"bed-draw-{run.id}"), size)
    except drawn.DrawingError:   # nothing drawn yet (or a picture the browser should not have sent)
        answer_col.info("Draw a digit on the black square: D scores it, and G's closest sample appears beside it.",
                        icon=":material/gesture:")
        return
    try:
        answer = be_d.ask(run.store, run.cfg, image)
    except be_d.RoundError as e:
        answer_col.warning(str(e), icon=":material/block:")
        return
    with answer_col:
        _show_scores(answer, SPECS[run.cfg.dataset].class_names if run.cfg.dataset in SPECS else ())
        st.image(montage(image[None], nrow=1, pad=0, scale=4), caption="What D sees", output_format="PNG")
    with closest_col:
        st.metric("Distance to G's closest sample", f"{answer.distance:.2f}",
                  help=f"Pixel-space (L2) distance to the nearest of {be_d.SAMPLES} samples of G at step "
                       f"{answer.g_step:,} (fixed noise): small means G can draw something like yours.")
        label = "" if answer.closest_class is None else f", drawn as class {answer.closest_class}"
        st.image(montage(answer.closest[None], nrow=1, pad=0, scale=4), output_format="PNG",
                 caption=f"G's closest sample{label}")


def _show_scores(answer: be_d.Answer, names) -> None:
    """D's score as a number (the highest and a bar per class for a conditional D) and what D says by it."""
    scores, boundary = answer.scores, answer.boundary
    best = int(scores.argmax())
    says = "" if boundary is None else ("D says real" if scores[best] > boundary else "D says fake")
    rule = (f"D says real above {boundary:g}." if boundary is not None else
            "A critic's scores have no fixed middle: compare with its scores of real images.")
    conditional = len(scores) > 1
    names = [str(n) for n in (names if len(names) >= len(scores) else range(len(scores)))][:len(scores)]
    what = f"as {names[best]}: {says}" if conditional and says else (f"as {names[best]}" if conditional else says)
    st.metric("D's highest score" if conditional else "D's score", f"{scores[best]:.3f}", delta=what or None,
              delta_color="off", delta_arrow="off", help=f"D at step {answer.d_step:,}. {rule}")
    if conditional:
        echart(be_d.class_chart(scores, names, boundary), "bed-draw-classes", height=220)
