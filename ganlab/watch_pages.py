"""The Streamlit server and the headless Chromium pages of the watched-run benchmark (ganlab.bench_watch).

`start_server` runs `streamlit run app.py` from the repository root on a free loopback port (so
.streamlit/config.toml applies) and returns once /_stcore/health answers. `open_pages` opens Train and
Discriminator pages on a run, each in its own browser context (its own Streamlit session), with COUNTER_JS
injected: a wrapped WebSocket that counts the `script_finished` ForwardMsgs (one per page refresh) inside
Chromium, read back with `WatchPage.counters()`. Shared with tests/test_browser_watch.py.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"   # the Debian package; never `playwright install`
# As tests/conftest.py launches it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
EXCEPTION = '[data-testid="stException"]'
# What a page shows once it draws the run: Train's metrics (Step, Epoch, ...), Discriminator's histogram.
PAGES = (("Train", '[data-testid="stMetricValue"]'), ("Discriminator", ".st-key-disc-hist canvas"))

# Counts, inside the page, the ForwardMsgs with a script_finished field (top-level field 6, a varint):
# 0 = a full run finished, 3 = a fragment run finished (1 compile error, 2 interrupted: not refreshes).
# Also counts bursts of frames after >= 300 ms of silence, as a cross-check that needs no protocol knowledge.
COUNTER_JS = """
(() => {
  if (window.__ganlabWatch) return;
  const stats = {finished: [], bursts: [], frames: 0, bytes: 0, last: 0};
  window.__ganlabWatch = stats;
  const finishedStatus = (buf) => {
    const b = new Uint8Array(buf);
    let i = 0;
    const varint = () => {
      let r = 0, s = 1, x;
      do { x = b[i++]; r += (x & 0x7f) * s; s *= 128; } while ((x & 0x80) && i < b.length);
      return r;
    };
    while (i < b.length) {
      const tag = varint(), fieldNo = Math.floor(tag / 8), wire = tag % 8;
      if (wire === 0) { const v = varint(); if (fieldNo === 6) return v; }
      else if (wire === 2) { const n = varint(); i += n; }   // not `i += varint()`: that reads i first
      else if (wire === 1) { i += 8; }
      else if (wire === 5) { i += 4; }
      else { return -1; }
    }
    return -1;
  };
  const Base = window.WebSocket;
  class CountingWebSocket extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        const now = Date.now();
        if (now - stats.last >= 300) stats.bursts.push(now);
        stats.last = now;
        stats.frames += 1;
        if (e.data instanceof ArrayBuffer) {
          stats.bytes += e.data.byteLength;
          const v = finishedStatus(e.data);
          if (v === 0 || v === 3) stats.finished.push(now);
        }
      });
    }
  }
  window.WebSocket = CountingWebSocket;
})();
"""
READ_JS = "() => { const s = window.__ganlabWatch; return s ? {finished: s.finished, bursts: s.bursts, " \
          "frames: s.frames, bytes: s.bytes} : null; }"


# --- the server ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(base_url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through an http_proxy
    try:
        with opener.open(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group (it runs in a session of its own), SIGKILL if it lingers."""
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue


def start_server(runs_dir: Path, log_path: Path, app: Path = REPO_ROOT / "app.py", timeout: float = 60.0,
                 extra_args: Iterable[str] = ()) -> Server:
    """`streamlit run app.py` headless on a free loopback port, showing `runs_dir`; returns once healthy.
    Run from the repository root, so .streamlit/config.toml applies; `extra_args` are more `--section.option=v`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GANLAB_RUNS_DIR": str(runs_dir), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless=true", f"--server.port={port}",
           "--server.address=127.0.0.1", "--server.fileWatcherType=none", "--browser.gatherUsageStats=false",
           *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(proc, base_url, log_path)
    deadline = time.monotonic() + timeout
    while not healthy(base_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            code = proc.poll()
            server.stop()
            why = f"exited with code {code}" if code is not None else f"not healthy in {timeout:.0f} s"
            raise RuntimeError(f"streamlit {why}; log:\n{server.log_tail()}")
        time.sleep(0.2)
    return server


# --- browser pages ---------------------------------------------------------------------------------------------
@dataclass
class WatchPage:
    context: Any
    page: Any
    name: str                      # "Train" or "Discriminator"
    errors: list[str] = field(default_factory=list)
    showing: bool = True           # False: it did not draw the run in time (open_pages(require=False))
    reloads: int = 0               # times its frontend gave up on the websocket and the page was reloaded

    def counters(self) -> dict[str, Any]:
        try:
            return self.page.evaluate(READ_JS) or {}
        except Exception as e:  # noqa: BLE001 - a crashed page reads as no refreshes, with the reason kept
            self.errors.append(f"counter read failed: {e}")
            return {}


def open_pages(browser: Any, base_url: str, run_id: str, n: int, timeout_ms: float = 120_000,
               require: bool = True) -> list[WatchPage]:
    """`n` pages on the run, alternating Train and Discriminator, each in its own context (its own Streamlit
    session); returns once every page is connected and draws the run, all within `timeout_ms`. Raises with the
    app's exception text, or (with `require`) the state of a page that was not drawn in time; without `require`
    a late page is only marked (`WatchPage.showing` False), so a benchmark can measure a server that stalls."""
    pages: list[WatchPage] = []
    try:
        for i in range(n):
            name, _ = PAGES[i % len(PAGES)]
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(COUNTER_JS)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            wp = WatchPage(context, page, name)
            page.on("pageerror", lambda exc, wp=wp: wp.errors.append(f"pageerror: {exc}"))
            pages.append(wp)
            page.goto(f"{base_url}/{name}?run={run_id}", wait_until="commit")
        deadline = time.monotonic() + timeout_ms / 1000
        for wp in pages:
            left_ms = max(2000.0, (deadline - time.monotonic()) * 1000)   # past the deadline: a last look
            try:
                wait_showing(wp, left_ms)
            except TimeoutError:
                if require:
                    raise
                wp.showing = False
    except BaseException:
        close_pages(pages)
        raise
    return pages


GAVE_UP = '[data-testid="stApp"][data-test-connection-state="DISCONNECTED_FOREVER"]'


def wait_showing(wp: WatchPage, timeout_ms: float = 120_000) -> None:
    """Until the page is connected and shows the run's live content (or fail with the exception it shows)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    selector = dict(PAGES)[wp.name]
    page = wp.page
    deadline = time.monotonic() + timeout_ms / 1000
    reloaded = False
    while True:
        left = max(1000.0, (deadline - time.monotonic()) * 1000)
        try:
            page.wait_for_selector(CONNECTED, timeout=left)
            # GAVE_UP is the app's root element: visible whenever it matches, so a give-up at any moment of
            # the wait ends it (the frontend can give up after the content was attached but not yet drawn).
            page.wait_for_selector(f"{selector}, {EXCEPTION}, {GAVE_UP}", state="visible", timeout=left)
        except PlaywrightTimeoutError:
            raise TimeoutError(f"{wp.name} page did not show {selector!r} in {timeout_ms / 1000:.0f} s; "
                               f"{page_state(wp)}") from None
        if not page.locator(GAVE_UP).count():
            break
        if reloaded:
            raise TimeoutError(f"{wp.name} page: its frontend gave up on the websocket again after a reload; "
                               f"{page_state(wp)}")
        # The frontend gave up on its websocket (seen in loaded full-suite runs on 2 cores): reload once, as a
        # student would; a second give-up fails above.
        reloaded = True
        wp.reloads += 1
        page.reload(wait_until="commit")
    boxes = page.locator(EXCEPTION)
    if boxes.count():
        raise RuntimeError(f"{wp.name} page shows an exception:\n{boxes.first.inner_text()[:3000]}")


def page_state(wp: WatchPage) -> str:
    """What a page is doing, for error messages: connection and script state, refreshes, the start of its text."""
    try:
        info = wp.page.evaluate("""() => { const a = document.querySelector('[data-testid="stApp"]');
            const m = document.querySelector('[data-testid="stMain"]') || document.body;
            return {connection: a && a.getAttribute('data-test-connection-state'),
                    script: a && a.getAttribute('data-test-script-state'),
                    text: (m.innerText || '').slice(0, 600)}; }""")
    except Exception as e:  # noqa: BLE001
        return f"(page state unreadable: {e})"
    c = wp.counters()
    return (f"url {wp.page.url}, connection {info['connection']}, script {info['script']}, {wp.reloads} reloads, "
            f"{len(c.get('finished', ()))} runs finished, {c.get('frames', 0)} frames, errors {wp.errors[:3]}; "
            f"text: {info['text']!r}")


def close_pages(pages: Iterable[WatchPage]) -> None:
    for wp in pages:
        try:
            wp.context.close()
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass
