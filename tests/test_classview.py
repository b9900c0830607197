"""The Class page's tiles as data (ganlab.classview): headline quality, filtering by state and text (name, id or
owner label), every sort order, the owner labels, and which runs are shown first."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ganlab import classview
from ganlab.classview import Tile


def _tile(id_: str, name: str, state: str, step: int, score: float, owner: str | None = None) -> Tile:
    return Tile(id_, name, state, step, 1000, owner, "", "", "", score, view=None)


TILES = [_tile("20261203-100000-a", "alice ring", "running", 500, 0.5, "aaaa1111"),
         _tile("20261203-100001-b", "bob grid", "finished", 1000, 1.0, "bbbb2222"),
         _tile("20261203-100002-c", "carol ring", "failed", 20, -1.0, None),
         _tile("20261203-100003-d", "dave mnist", "paused", 300, 0.8, "aaaa1111")]


@pytest.mark.parametrize("order,ids", [
    ("newest", ["d", "c", "b", "a"]), ("state", ["a", "d", "c", "b"]), ("step", ["b", "a", "d", "c"]),
    ("name", ["a", "b", "c", "d"]), ("quality", ["b", "d", "a", "c"])])
def test_every_order(order: str, ids: list[str]) -> None:
    assert [t.id[-1] for t in classview.arrange(TILES, order)] == ids


def test_filters_by_state_and_text_and_owner_label() -> None:
    names = {"aaaa1111": "you", "bbbb2222": "student bbbb", "": "lab"}
    assert {t.id[-1] for t in classview.arrange(TILES, states=["running", "paused"])} == {"a", "d"}
    assert {t.id[-1] for t in classview.arrange(TILES, text="RING")} == {"a", "c"}
    assert {t.id[-1] for t in classview.arrange(TILES, text="student bb", owner_names=names)} == {"b"}
    assert {t.id[-1] for t in classview.arrange(TILES, text="100003")} == {"d"}
    assert classview.arrange(TILES, states=["queued"]) == []
    with pytest.raises(ValueError):
        classview.arrange(TILES, "bogus")


def test_owner_labels() -> None:
    assert classview.owner_label(None, "me") == "lab"
    assert classview.owner_label("me", "me") == "you"
    assert classview.owner_label("3f2a9c", "me") == "student 3f2a"


def test_headline_quality() -> None:
    view = lambda q: SimpleNamespace(quality=q)  # noqa: E731
    assert classview.headline(view([])) == ("", -1.0)
    assert classview.headline(view([{"modes_covered": 6, "n_modes": 8}])) == ("6 / 8 modes", 0.75)
    assert classview.headline(view([{"classifier_confidence": 0.834}])) == ("confidence 0.83", 0.834)
    assert classview.headline(view([{"frechet": 3.0}])) == ("", -1.0)


def test_active_runs_are_always_shown_then_the_newest_others() -> None:
    runs = [SimpleNamespace(id=f"r{i}", state="finished") for i in range(50)]
    runs[45].state = "running"
    shown = classview.recent(runs, limit=40)
    assert len(shown) == 40 and shown[0].id == "r45" and shown[1].id == "r0"
