"""The lessons, as data: `Lesson` and `Check` records read from ganlab/lessons.toml, where the content lives.

Each lesson pairs a preset with the idea it shows (markdown with LaTeX math), what to watch on which page, what
to try next, and the check that the preset still shows it. ganlab/lessons.py runs the checks (`python -m ganlab
lessons --check`) and pages/5_Learn.py lays the lessons out. To add a lesson: one [[lesson]] table in
lessons.toml; a damaged file fails at import with the lesson and the field named.
"""
from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import TrainConfig, get_preset


@dataclass(frozen=True)
class Check:
    """The phenomenon a lesson's preset must show, judged on one headless run per seed.

    kind: coverage (>= min_modes modes covered, default all, and >= hq_min high-quality samples), collapse
    (<= max_modes covered, >= hq_min high quality; with hop_every, G left >= left_min modes it had covered),
    curve (a G of 1-d noise: its fakes reach >= min_modes modes with <= hq_max high quality), vanishing
    (median G gradient norm over `window` steps at least `ratio` times below
    the same run with loss=nonsaturating), overpowering (diagnose() names an overpowering D or vanishing
    gradients), images (classifier confidence >= conf_min with `classes` digits drawn), conditional (the
    classifier reads the asked-for digit in >= acc_min of the samples), xy_game (ganlab.games: simultaneous steps
    on x*y spiral out, alternating ones stay bounded, a penalty on D settles them), remedy (the lesson's run
    against the same seed with `base` applied: D(G(z)) and G's gradient rise by stated factors, the diagnosis
    goes), checkerboard (G at initialisation: the Nyquist share of its images against a resize-convolution G's).
    Image kinds are judged at the end. ganlab.checks holds one function per kind.
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
    figure: str = ""                # a figure of ganlab.games.FIGURES the Learn page draws with the text

    def config(self, **extra: Any) -> TrainConfig:
        """The validated config this lesson trains: preset, then `changes`, then `extra` (seed, steps...)."""
        return get_preset(self.preset).config(**{**self.changes, **extra})


# --- reading the book -----------------------------------------------------------------------------------
BOOK = Path(__file__).with_name("lessons.toml")


def _record(cls: type, table: Any, where: str, **nested: Any) -> Any:
    """`cls(**table)`, refusing unknown or missing fields and wrong types by name (a typo in the book is loud)."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {type(table).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(table) - set(known))
    missing = sorted(n for n, f in known.items()
                     if n not in table and f.default is MISSING and f.default_factory is MISSING)
    if unknown or missing:
        raise ValueError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    for name, value in table.items():
        if known[name].type == "str" and not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be text")
    return cls(**{**table, **nested})


def load_book(path: Path = BOOK) -> list[Lesson]:
    """The lessons of a book file, in order; ValueError naming the lesson and field when it is damaged."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("lesson", [])
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    lessons = []
    for i, table in enumerate(tables):
        where = f"{path.name} lesson {i + 1} ({table.get('id', '?') if isinstance(table, dict) else '?'})"
        check = table.get("check") if isinstance(table, dict) else None
        nested = {"check": None if check is None else _record(Check, check, where + " check")}
        lessons.append(_record(Lesson, table, where, **nested))
    ids = [lesson.id for lesson in lessons]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: lesson ids must be unique, got {ids}")
    return lessons


LESSONS: list[Lesson] = load_book()
_BY_ID = {lesson.id: lesson for lesson in LESSONS}


def get_lesson(lesson_id: str) -> Lesson:
    try:
        return _BY_ID[lesson_id]
    except KeyError:
        raise KeyError(f"unknown lesson {lesson_id!r}; lessons: {', '.join(_BY_ID)}") from None
