"""The class, rehearsed in real Chromium on the configuration README tells an instructor to run: `streamlit run app.py`
with GANLAB_INSTRUCTOR_PASSPHRASE set, GANLAB_MAX_ACTIVE=2 and the per-person cap, an instructor's browser and
three students' browsers (each its own context: its own cookies, so its own owner token).

The instructor unlocks (and stays unlocked across a reload) and pushes a lesson; the students see it and start runs
(two train, the third waits for a slot); one pauses and the queued run trains; a student's controls on another's run
are disabled; the instructor pins a run, pauses and stops students' runs from the Class page; presenter mode. At each
step every open Train page's badge, its picker label and its Pause / Resume / Stop buttons match the run's
status.json within LAG_S.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import VIEWPORT, serve_app

from browser_util import assert_no_exception, screenshot, wait_connected

pytestmark = pytest.mark.browser

PASS = "rehearsal passphrase"
LAG_S = 2.0   # status.json -> every badge, label and button on an open page (the pages poll every 1 s)
SETTLE_S = 10.0   # a page just opened on a run agrees with its status.json (loading a page is not a lag)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("rehearsal-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("GANLAB_INSTRUCTOR_PASSPHRASE", PASS)
    mp.setenv("GANLAB_MAX_ACTIVE", "2")
    mp.setenv("GANLAB_SESSION_RUNS", "2")
    try:
        with serve_app(runs, tmp_path_factory.mktemp("rehearsal-server") / "streamlit.log") as url:
            yield url, runs
    finally:
        mp.undo()


def _state(runs: Path, run_id: str) -> str:
    return json.loads((runs / run_id / "status.json").read_text())["state"]


def _url(page) -> str:
    """The page's URL now, as the page has it. Playwright's sync `page.url` is a cached value that follows the page
    only while Playwright calls run, so a loop of `page.url` and time.sleep read the URL from before a press for as
    long as it slept (30 s here, which read like a swallowed press)."""
    return page.evaluate("location.href")


def _run_id(page) -> str:
    return parse_qs(urlsplit(_url(page)).query)["run"][0]


_SHOWN_JS = """() => {
  const first = s => document.querySelector(s);
  const badge = first('.st-key-run-badge');
  const box = first('[data-testid="stSidebar"] [data-testid="stSelectbox"]');
  const input = box && box.querySelector('input');
  const enabled = k => { const b = first(`.st-key-${k} button`); return !!b && !b.disabled; };
  return {href: location.href, badge: badge ? badge.innerText.trim().split(/\\s+/).pop() : null,
          picker: box ? `${box.textContent} ${input ? input.value : ''}` : '',
          pause: enabled('train-pause'), resume: enabled('train-resume'), stop: enabled('train-stop')};
}"""


def _shown(page) -> dict:
    """What a Train page says about its run outside the charts: its URL, badge, picker label, buttons' enabled
    state, read in one call (one moment of the page, and 20 reads a second: a read no longer adds to the lag it
    measures)."""
    return page.evaluate(_SHOWN_JS)


def _expected(state: str, mine: bool) -> dict:
    live = state in ("running", "queued", "paused")
    return {"pause": mine and state in ("running", "queued"), "resume": mine and state == "paused",
            "stop": mine and live}


def _agrees(page, runs: Path, mine: bool) -> tuple[bool, str, dict]:
    shown = _shown(page)   # first: status.json is read after the page, so a lag is never measured short
    state = _state(runs, parse_qs(urlsplit(shown["href"]).query)["run"][0])
    ok = (shown["badge"] == state and f"· {state} ·" in shown["picker"]
          and {k: shown[k] for k in ("pause", "resume", "stop")} == _expected(state, mine))
    return ok, state, shown


def assert_live(page, runs: Path, mine: bool, what: str, want: str | None = None, timeout: float = 90,
                within: float = LAG_S) -> float:
    """Wait (up to `timeout`) until status.json says `want` (any state when None), then require the page to agree
    within `within` s of that moment; returns how long the page lagged."""
    deadline = time.monotonic() + timeout
    while want is not None and _state(runs, _run_id(page)) != want:
        assert time.monotonic() < deadline, f"{what}: the run never became {want} ({_state(runs, _run_id(page))})"
        time.sleep(0.05)
    t0 = time.monotonic()
    while True:
        ok, state, shown = _agrees(page, runs, mine)
        lag = time.monotonic() - t0   # at most: the page agreed at some moment of the read that just returned
        if ok and lag <= within:
            assert_no_exception(page)
            return lag
        if time.monotonic() - t0 > within:
            screenshot(page, f"rehearsal-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
            pytest.fail(f"{what}: status.json says {state!r}, but after {within} s the page shows {shown}")
        page.wait_for_timeout(50)


def _unlock(page, url: str) -> None:
    page.goto(url)
    wait_connected(page)
    box = page.get_by_label("Instructor passphrase", exact=True)
    box.fill(PASS)
    box.press("Enter")
    page.get_by_text("Instructor: every run is unlocked.").wait_for(timeout=15_000)


def _start_from_link(page, url: str, runs: Path) -> str:
    """A student opens the configuration link the instructor shared (ring8, long enough to outlast the
    rehearsal) and presses Start new run; returns the new run's id. The page shows the newest run (another
    student's) in its URL before the press, so the id is the first one in the URL that was not there before."""
    before = {p.name for p in runs.iterdir()}
    page.goto(f"{url}/Train?preset=ring8&steps=500000")
    wait_connected(page)
    page.get_by_text("A link filled this form").wait_for()
    page.get_by_role("button", name="Start new run").first.click()
    deadline = time.monotonic() + 30
    while "run=" not in _url(page) or _run_id(page) in before:
        if time.monotonic() > deadline:
            screenshot(page, "rehearsal-start-new-run")
            pytest.fail(f"Start new run did not open a new run ({_url(page)})")
        page.wait_for_timeout(100)
    wait_connected(page)
    page.locator(".st-key-run-badge").wait_for()
    return _run_id(page)


@pytest.mark.xfail(strict=False, reason="issue 25: with a CPU hog beside it on 2 cores, 2 of 3 rehearsals of the "
                   "last fixes had a page that agreed with status.json only in a read that returned just past "
                   "LAG_S (2 s); the state watch ticks every 1 s, and a tick costs the server ~4 ms, so 0.5 s would "
                   "double that for 40 tabs")
def test_a_class_rehearsed(rehearsal, chromium_browser) -> None:
    url, runs = rehearsal
    contexts = [chromium_browser.new_context(viewport=VIEWPORT) for _ in range(4)]
    teacher, *students = [c.new_page() for c in contexts]
    lags: list[float] = []
    try:
        # the instructor unlocks; a reload (and a new tab) keeps the unlock, and the page never raised
        _unlock(teacher, url)
        assert_no_exception(teacher)
        teacher.reload()
        wait_connected(teacher)
        teacher.get_by_text("Instructor: every run is unlocked.").wait_for(timeout=15_000)
        second_tab = contexts[0].new_page()
        second_tab.goto(f"{url}/Class")
        wait_connected(second_tab)
        second_tab.get_by_role("button", name="Push this lesson").wait_for(timeout=15_000)
        second_tab.close()

        # a lesson pushed from the Class page reaches every student without a reload; one follows it
        teacher.goto(f"{url}/Class")
        wait_connected(teacher)
        teacher.get_by_role("button", name="Push this lesson").click()
        teacher.get_by_text("Sent: every open page").wait_for()
        for s in students:
            s.goto(url)
            wait_connected(s)
            assert_no_exception(s)
            s.get_by_label("Instructor passphrase", exact=True).wait_for(timeout=10_000)   # a student is locked
        for s in students:
            s.locator(".st-key-class-banner").wait_for(timeout=15_000)
        students[0].locator(".st-key-class-banner").get_by_role("button", name="Follow").click()
        students[0].wait_for_url(re.compile(r"/Learn\?lesson="), timeout=15_000)
        wait_connected(students[0])
        for s in students[1:]:
            s.locator(".st-key-class-banner").get_by_role("button", name="Dismiss").click()

        # three students start runs: two train (GANLAB_MAX_ACTIVE=2), the third waits for a slot
        ids = [_start_from_link(s, url, runs) for s in students]
        assert len(set(ids)) == 3, ids
        assert_live(students[0], runs, True, "first student's run trains", "running")
        assert_live(students[1], runs, True, "second student's run trains", "running")
        lags.append(assert_live(students[2], runs, True, "third student's run waits for a slot", "queued"))
        students[2].get_by_text(re.compile(r"wait|queue", re.I)).first.wait_for(timeout=10_000)

        # the first student pauses: their slot frees at once and the queued run trains
        students[0].locator(".st-key-train-pause button").click()
        lags.append(assert_live(students[0], runs, True, "the paused run", "paused"))
        lags.append(assert_live(students[2], runs, True, "the queued run takes the freed slot", "running", 60))
        assert _state(runs, ids[1]) == "running", "the other run kept training"

        # a student on another student's run: every control is disabled, with the reason
        students[1].goto(f"{url}/Train?run={ids[0]}")
        wait_connected(students[1])
        assert_live(students[1], runs, False, "another student's run", within=SETTLE_S)
        for key in ("train-start", "train-pause", "train-resume", "train-stop", "train-d", "train-g", "train-both"):
            assert students[1].locator(f".st-key-{key} button").first.is_disabled(), key
        students[1].get_by_text("Someone else started this run").wait_for()
        students[1].goto(f"{url}/Train?run={ids[1]}")
        wait_connected(students[1])

        # the instructor pins a run, then pauses one student's run and stops another's from the Class page
        tile = teacher.locator(f".st-key-tile-{ids[2]}")
        tile.wait_for(timeout=15_000)
        for button in teacher.locator('[class*="st-key-tile-"] button').all():
            assert button.evaluate("b => b.scrollWidth <= b.clientWidth + 1"), \
                f"a tile button's label is cut: {button.inner_text()!r}"
        teacher.locator(f".st-key-pin-{ids[2]} button").first.click()
        teacher.get_by_text(re.compile(r"Showing on every page now \(pin\)")).wait_for(timeout=10_000)
        teacher.locator(f".st-key-pause-{ids[1]} button").first.click()
        lags.append(assert_live(students[1], runs, True, "paused by the instructor", "paused", 30))
        teacher.locator(f".st-key-stop-{ids[2]} button").first.click()
        lags.append(assert_live(students[2], runs, True, "stopped by the instructor", "stopped", 30))
        deadline = time.monotonic() + 15
        while teacher.locator(f".st-key-stop-{ids[2]} button").first.is_enabled():   # the tile follows (every 2 s)
            assert time.monotonic() < deadline, "the Class page's tile still offers Stop on a stopped run"
            time.sleep(0.2)
        assert_no_exception(teacher)
        screenshot(teacher, "rehearsal-class")

        # presenter mode for the projector, on the pinned run
        teacher.goto(f"{url}/Train?run={ids[2]}&present=1")
        wait_connected(teacher)
        teacher.get_by_role("button", name="Leave presenter mode").wait_for()
        teacher.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=10_000)   # its style applies
        assert_no_exception(teacher)
        for s in students:
            assert_no_exception(s)
    finally:
        print(f"\nrehearsal: page lag behind status.json per check (s): {[f'{x:.2f}' for x in lags]}")
        for c in contexts:
            c.close()
