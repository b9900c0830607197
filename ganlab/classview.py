"""The instructor's view of the class, as data: one tile per run (state, step, owner, top diagnosis, headline
quality), and the sorting and filtering the Class page offers. No streamlit: pages/8_Class.py lays it out.

A tile is built from what a run already keeps in memory (ganlab.runs.Run caches its directory incrementally),
so 40 tiles refresh in well under a second; the picture is the newest snapshot, drawn by ganlab.export.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .diagnose import diagnose
from .runs import Run, RunView
from .states import ACTIVE

ORDERS = ("newest", "state", "step", "name", "quality")
STATE_RANK = {"running": 0, "queued": 1, "paused": 2, "failed": 3, "diverged": 4, "interrupted": 5,
              "finished": 6, "stopped": 7, "created": 8}


@dataclass
class Tile:
    id: str
    name: str
    state: str
    step: int
    steps: int
    owner: str | None
    diagnosis: str            # the top diagnosis's title, "" when all looks fine
    severity: str             # "error", "warning" or ""
    quality: str              # the headline measure as text ("8 / 8 modes", "confidence 0.83"), "" if none
    score: float              # the same measure as a number for sorting (higher is better), -1 if none
    view: RunView


def headline(view: RunView) -> tuple[str, float]:
    """The one quality number a tile shows: mode coverage for 2D runs, classifier confidence for images."""
    if not view.quality:
        return "", -1.0
    q = view.quality[-1]
    if isinstance(q.get("modes_covered"), (int, float)) and isinstance(q.get("n_modes"), (int, float)):
        n = max(1.0, float(q["n_modes"]))
        return f"{q['modes_covered']:.0f} / {q['n_modes']:.0f} modes", float(q["modes_covered"]) / n
    if isinstance(q.get("classifier_confidence"), (int, float)):
        return f"confidence {q['classifier_confidence']:.2f}", float(q["classifier_confidence"])
    return "", -1.0


def tile(run: Run) -> Tile:
    view = run.view(with_snapshots=False)
    found = diagnose(view.history, view.quality, view.cfg.loss, view.cfg.is_2d, cfg=view.cfg)
    text, score = headline(view)
    top = found[0] if found else None
    return Tile(run.id, view.name, view.state, view.step, view.cfg.steps, run.owner,
                top.title if top else "", top.severity if top else "", text, score, view)


def recent(runs: Iterable[Run], limit: int = 40) -> list[Run]:
    """Every active run, then the newest others, up to `limit` (the list is newest first already)."""
    runs = list(runs)
    active = [r for r in runs if r.state in ACTIVE]
    others = [r for r in runs if r.state not in ACTIVE]
    return (active + others)[:max(limit, len(active))]


def arrange(tiles: list[Tile], order: str = "newest", states: Iterable[str] = (), text: str = "",
            owner_names: dict[str, str] | None = None) -> list[Tile]:
    """Filter by state (none given = all) and by a text in the name, id or owner's label; then sort."""
    wanted, needle = set(states), text.strip().lower()
    names = owner_names or {}
    kept = [t for t in tiles if (not wanted or t.state in wanted)
            and (not needle or needle in t.name.lower() or needle in t.id.lower()
                 or needle in names.get(t.owner or "", "").lower())]
    keys = {"newest": lambda t: t.id, "state": lambda t: (-STATE_RANK.get(t.state, 9), t.id),
            "step": lambda t: (t.step, t.id), "name": lambda t: t.name.lower(), "quality": lambda t: (t.score, t.id)}
    if order not in keys:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    return sorted(kept, key=keys[order], reverse=order != "name")


def owner_label(owner: str | None, me: str) -> str:
    """How a tile names its owner: you, the lab (CLI or older runs), or a short stable id per student."""
    if owner is None:
        return "lab"
    return "you" if owner == me else f"student {owner[:4]}"
