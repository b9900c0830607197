"""Every export of a run by name: the one entry point for the Runs page's downloads and `python -m ganlab export`.

    python -m ganlab export RUN_DIR --what png|gif|csv|json|zip|tensorboard|script|notebook|report --out PATH

The exports themselves live in ganlab.export (pictures, data, zip, TensorBoard), ganlab.export_code (the run as
a PyTorch script or notebook) and ganlab.report (the class report, one HTML page); this module only dispatches,
so none of them imports another's dispatcher (no import cycle). Nothing here imports streamlit.
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import export_code, report
from .cli import EXTRA_COMMANDS, UsageError
from .export import ExportError, config_json, evolution_gif, grid_png, metrics_csv, run_zip, write_tensorboard
from .store import RunStore, slug

WHATS = ("png", "gif", "csv", "json", "zip", "tensorboard", "script", "notebook", "report")


# --- one entry point for the CLI and the page --------------------------------------------------------------
def export_bytes(run_dir: Path | str | RunStore, what: str, step: int | None = None) -> bytes:
    """The export `what` (one of WHATS except tensorboard, which writes a folder) as bytes."""
    makers = {"png": lambda: grid_png(run_dir, step), "gif": lambda: evolution_gif(run_dir),
              "csv": lambda: metrics_csv(run_dir), "json": lambda: config_json(run_dir),
              "zip": lambda: run_zip(run_dir), "script": lambda: export_code.script_py(run_dir),
              "notebook": lambda: export_code.notebook_ipynb(run_dir), "report": lambda: report.report_html(run_dir)}
    if what not in makers:
        raise ExportError(f"what: {what!r} is not one of: {', '.join(makers)} (tensorboard writes a folder)")
    return makers[what]()


def export(run_dir: Path | str, what: str, out: Path | str, step: int | None = None) -> Path:
    """Write export `what` of `run_dir` to `out` (a file; a folder for tensorboard). Returns the path."""
    if what not in WHATS:
        raise ExportError(f"what: {what!r} is not one of: {', '.join(WHATS)}")
    out = Path(out)
    if what == "tensorboard":
        return write_tensorboard(run_dir, out)
    data = export_bytes(run_dir, what, step)
    if out.parent and not out.parent.exists():
        raise ExportError(f"--out: folder {out.parent} does not exist")
    out.write_bytes(data)
    return out


def default_file_name(name: str, what: str, step: int | None = None) -> str:
    """A download file name like 'ring8-step400.png' from a run's display name."""
    base = slug(name)
    return {"png": f"{base}-step{step}.png" if step is not None else f"{base}-grid.png",
            "gif": f"{base}-evolution.gif", "csv": f"{base}-metrics.csv", "json": f"{base}-config.json",
            "zip": f"{base}.zip", "tensorboard": f"{base}-tensorboard", "script": f"train_{base}.py",
            "notebook": f"train_{base}.ipynb", "report": f"{base}-report.html"}[what]


# --- CLI -----------------------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    try:
        path = export(args.run_dir, args.what, args.out, args.step)
    except ExportError as e:
        raise UsageError(str(e)) from None
    print(f"{args.what}: {path}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run: grid PNG, evolution GIF, metrics CSV, config JSON, zip, "
                                      "TensorBoard events, training script or notebook, class report (HTML)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/<run id>)")
    p.add_argument("--what", required=True, choices=WHATS)
    p.add_argument("--out", required=True, metavar="PATH", help="output file (a folder for tensorboard)")
    p.add_argument("--step", type=int, help="png: the snapshot at (or before) this step; default the newest")
    p.set_defaults(func=cmd_export)


EXTRA_COMMANDS["export"] = add_parser
