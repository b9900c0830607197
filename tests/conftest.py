"""Shared pytest fixtures: a real Streamlit server, headless Chromium pages, and AppTest cache hygiene.

Browser tests (marked `browser`, or any test using `browser_page`) run last, against one session-wide
`streamlit run` subprocess on a free port whose run directory (GANLAB_RUNS_DIR) is a temp dir. The app
file defaults to app.py at the repository root; GANLAB_APP points the harness at another script.

Missing Chromium, Playwright or app file skips browser tests with a visible reason, except under CI=true,
where a skip would hide a broken job and is reported as a failure instead.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from browser_util import REPO_ROOT, screenshot

CHROMIUM = Path("/usr/bin/chromium")  # Debian package `chromium`; never `playwright install`
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests often run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no update checks or field trials: the machine may be offline
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 6_000

_SERVER_LOG = pytest.StashKey[Path]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_BROWSER_ERRORS = pytest.StashKey[list[str]]()


def in_ci() -> bool:
    """True when the environment says we run in CI (CI=true, as GitHub Actions and GitLab set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip with `reason` locally; fail under CI, where a silently skipped browser test hides breakage."""
    if in_ci():
        pytest.fail(f"{reason} (skips count as failures when CI=true)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------- collection and reporting hooks


SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def _slow_tests() -> set[str]:
    lines = SLOW_LIST.read_text().splitlines() if SLOW_LIST.exists() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tag every test that opens a browser, so `-m "not browser"` is reliable, and run them last:
    # unit tests report in seconds, and the server (which imports torch) starts only when needed.
    # Tests listed in slow_tests.txt (and every browser test) are `slow`: `make test-fast` leaves them out.
    slow = _slow_tests()
    for item in items:
        if "browser_page" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        if item.nodeid.split("[")[0] in slow or item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)  # stable sort


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    if report.failed:
        fixtures = getattr(item, "fixturenames", ())
        log_path = item.config.stash.get(_SERVER_LOG, None)
        if "streamlit_server" in fixtures and log_path is not None and log_path.exists():
            report.sections.append(("streamlit server log (tail)", _tail(log_path)))
        errors = item.stash.get(_BROWSER_ERRORS, [])
        if errors:
            report.sections.append(("browser console errors", "\n".join(errors[-50:])))
    return report


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    text = path.read_text(errors="replace")
    return text if len(text) <= chars else "...\n" + text[-chars:]


# ---------------------------------------------------------------- Streamlit server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base_url: str) -> bool:
    # An empty ProxyHandler: an http_proxy in the environment must not intercept loopback requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The server runs in its own session, so signalling the group also reaches anything it spawned.
    for sig, wait_s in ((signal.SIGTERM, SERVER_STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory the test server reads (GANLAB_RUNS_DIR); tests may write runs into it."""
    return tmp_path_factory.mktemp("runs")


@contextmanager
def serve_app(runs_dir: Path, log_path: Path) -> Iterator[str]:
    """A `streamlit run $GANLAB_APP` (default app.py) server on a free port over `runs_dir`; yields its URL."""
    app = Path(os.environ.get("GANLAB_APP", "app.py"))
    if not app.is_absolute():
        app = REPO_ROOT / app
    if not app.is_file():
        skip_or_fail(f"no Streamlit app at {app} (GANLAB_APP selects another script)")

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GANLAB_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not _healthy(base_url):
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited with code {proc.returncode} before serving; log:\n"
                                f"{_tail(log_path)}", pytrace=False)
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit not healthy at {base_url} after {SERVER_START_TIMEOUT_S:.0f} s; "
                                f"log:\n{_tail(log_path)}", pytrace=False)
                time.sleep(0.2)
            yield base_url
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def streamlit_server(
    runs_dir: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[str]:
    """The session's server over `runs_dir`; yields its base URL."""
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    pytestconfig.stash[_SERVER_LOG] = log_path
    with serve_app(runs_dir, log_path) as url:
        yield url


@pytest.fixture(scope="session")
def server_log(streamlit_server: str, pytestconfig: pytest.Config) -> Path:
    """The log file of the session's server (stdout and stderr of `streamlit run`)."""
    return pytestconfig.stash[_SERVER_LOG]


@pytest.fixture(scope="session")
def second_server(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another server process on the same runs directory (the stateless web tier: any server, any run)."""
    with serve_app(runs_dir, tmp_path_factory.mktemp("server2") / "streamlit.log") as url:
        yield url


# ---------------------------------------------------------------- Chromium via Playwright


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One headless system Chromium for the session (a Playwright `Browser`)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found: install the Debian package 'chromium' (make test tries to)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"playwright is not importable ({exc}): pip install -r requirements-test.txt")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


@pytest.fixture
def browser_page(chromium_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page (1400x900) per test; screenshot saved if the test fails."""
    context = chromium_browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    request.node.stash[_BROWSER_ERRORS] = errors
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    try:
        yield page
    finally:
        call = request.node.stash.get(_REPORTS, {}).get("call")
        if call is not None and call.failed:
            name = "FAILED-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
            try:
                screenshot(page, name, full_page=True)
            except Exception as exc:  # the page may be the thing that broke; keep the original failure
                errors.append(f"(failure screenshot not saved: {exc})")
        context.close()


# ---------------------------------------------------------------- AppTest


@pytest.fixture
def clean_cache() -> Iterator[None]:
    """Clear Streamlit's caches around an AppTest test: st.cache_resource is shared by all AppTest instances."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_cache: None):
    """A fresh run registry on an empty runs directory, which the pages find through GANLAB_RUNS_DIR."""
    from ganlab.quality import wait_idle
    from ganlab.registry import get_registry

    runs = tmp_path / "runs"
    monkeypatch.setenv("GANLAB_RUNS_DIR", str(runs))
    reg = get_registry(runs)
    yield reg
    reg.shutdown(timeout=10)
    wait_idle(timeout=60)   # image runs queue quality measures on a worker thread; let it finish first
