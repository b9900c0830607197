"""Running work on untrusted files in a child process, so that a hostile file can crash only the child.

A checkpoint or data file from outside (an upload, a damaged file in a run directory) can make torch corrupt
memory (stride-0 Adam moments: SIGSEGV; a bad storage: `munmap_chunk(): invalid pointer`), or make a parser spend
minutes of CPU. Whoever parses it shares its fate, so the web server and the CLI never do: they call
`call(task, *args, what=..., error=...)`, and a pooled child process (`python -m ganlab.sandbox`) runs the task
under limits and sends back plain data.

- Tasks are named in `TASKS` ("module:function" strings, resolved in the child: the parent never imports what
  the child runs, and a name outside the table is refused).
- Limits: address space (RLIMIT_AS: what importing torch reserved plus GANLAB_SANDBOX_MEM_MB, default 2048),
  CPU seconds per call (RLIMIT_CPU, raised to the call's budget each call; past it the kernel kills the child
  with SIGXCPU), and a wall-clock limit the parent enforces by killing the child.
- A child killed by a signal, a MemoryError, a limit or a timeout becomes `error(reason)`: one line such as
  "The checkpoint check crashed its sandbox process (SIGSEGV): the file is refused." An exception the task
  raises comes back as its one-line message (ganlab's own errors are worded for people; others get their type).
- The reply is unpickled with only plain types allowed (dict, list, tuple, str, bytes, numbers, None, and numpy
  arrays of numbers) and then checked again (`check_plain`); strings come back valid UTF-8.
- The pool keeps SPARES children started ahead (a fresh interpreter that imports torch costs 1-3 s here), reuses
  a child across calls (so a child's caches, such as be_d's networks, stay warm; a refusal is an exception and
  leaves the child clean), and replaces one that died or ran out of memory. `retire=True` ends the child after
  its call (a reused child costs ~0.5 ms a call, a fresh one 2-3 s of start-up on this machine). Children a burst
  started beyond the spares end after IDLE_S idle (not after a number of calls: the next call would wait 2-3 s
  for a fresh child, and a check of 1,558 files stalled three times).
"""
from __future__ import annotations

import atexit
import io
import math
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

TASKS = {
    "check_checkpoint": "ganlab.ckpt_load:check_task",
    "check_data": "ganlab.uploads:check_task",
    "slowmo_start": "ganlab.slowmo_box:start_task",
    "slowmo_step": "ganlab.slowmo_box:step_task",
    "be_d_round": "ganlab.be_d:round_task",
    "be_d_ask": "ganlab.be_d:ask_task",
    "generate": "ganlab.weights:generate_task",
    # tests and health checks: what a crash, a hang and a hog look like from the parent
    "selftest_echo": "ganlab.sandbox:_echo",
    "selftest_signal": "ganlab.sandbox:_signal",
    "selftest_sleep": "ganlab.sandbox:_sleep",
    "selftest_spin": "ganlab.sandbox:_spin",
    "selftest_alloc": "ganlab.sandbox:_alloc",
}
SPARES = 1                   # idle children kept ready
MAX_CHILDREN = 4             # children at once; a call waits (within its wall limit) for one to free
IDLE_S = 60.0                # an idle child beyond the SPARES ends after this (each holds torch: ~500 MB resident)
BOOT_S = 90.0                # a child's start (it imports torch) may take this long on a loaded machine
MAX_REPLY = 256 * 2**20      # bytes a reply may have
_HEADER = struct.Struct("<Q")


class SandboxError(RuntimeError):
    """The default refusal, when the caller names no error class of its own."""


def mem_budget() -> int:
    """Bytes of address space a child may add to what importing torch reserved (GANLAB_SANDBOX_MEM_MB)."""
    try:
        return max(256, int(os.environ.get("GANLAB_SANDBOX_MEM_MB", "2048"))) * 2**20
    except ValueError:
        return 2048 * 2**20


def one_line(text: str, limit: int = 300) -> str:
    """The first line of `text`, at most `limit` characters, as valid UTF-8 (a lone surrogate becomes \\ud800)."""
    first = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    first = first.encode("utf-8", "backslashreplace").decode("utf-8")
    return first if len(first) <= limit else first[: limit - 3] + "..."


# --- plain data ---------------------------------------------------------------------------------------------
_NUMPY_GLOBALS = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy._core.numeric", "_frombuffer"),
                  ("numpy.core.numeric", "_frombuffer")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def check_plain(value: Any, depth: int = 0) -> None:
    """ValueError unless `value` is plain data (see the module docstring)."""
    if depth > 40:
        raise ValueError("nested too deep")
    if value is None or isinstance(value, (bool, int, bytes)):
        return
    if isinstance(value, float):
        return
    if isinstance(value, str):
        value.encode("utf-8")   # raises for a lone surrogate
        return
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf" or value.dtype.hasobject:
            raise ValueError(f"an array of {value.dtype}")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            check_plain(v, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"a key of type {type(k).__name__}")
            check_plain(k, depth + 1)
            check_plain(v, depth + 1)
        return
    raise ValueError(f"a {type(value).__name__}")


def plain(value: Any, depth: int = 0) -> Any:
    """`value` with numpy scalars as Python numbers and tensors as numpy arrays (the child's side)."""
    if depth > 40:
        raise ValueError("nested too deep")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, depth + 1) for v in value)
    if type(value).__module__ == "torch" and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


# --- the parent's side ----------------------------------------------------------------------------------------
def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class _Child:
    """One child process and its pipes."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               "MALLOC_ARENA_MAX": "2",     # glibc reserves 64 MB of address space per arena otherwise
               "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        self.proc = subprocess.Popen([sys.executable, "-m", "ganlab.sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, start_new_session=True)
        self.ready = False
        self.idle_since = time.monotonic()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        self.proc.stdin.flush()

    def _read(self, n: int, deadline: float) -> bytes:
        fd, out = self.proc.stdout.fileno(), bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def receive(self, deadline: float) -> Any:
        (n,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        if n > MAX_REPLY:
            raise ValueError(f"a reply of {n:,} bytes")
        value = _PlainUnpickler(io.BytesIO(self._read(n, deadline))).load()
        check_plain(value)
        return value

    def wait_ready(self, deadline: float) -> None:
        if not self.ready:
            if self.receive(deadline) != ("ready",):
                raise ValueError("it did not start")
            self.ready = True


class Pool:
    """Up to MAX_CHILDREN children, SPARES of them kept idle and ready (thread-safe). A burst of calls starts
    more; those end once idle for `idle_s`."""

    def __init__(self, spares: int = SPARES, max_children: int = MAX_CHILDREN, idle_s: float = IDLE_S) -> None:
        self.spares, self.idle_s = spares, idle_s
        self._trim_timer: threading.Timer | None = None   # at most one pending trim, however many calls a burst made
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._slots = threading.BoundedSemaphore(max_children)
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start spare children now, in the background (a server calls this at start-up)."""
        with self._lock:
            while len(self._idle) < self.spares:
                child = _Child()
                self._all.add(child)
                self._idle.append(child)

    def _take(self) -> _Child:
        with self._lock:
            if self._idle:
                return self._idle.pop()   # the most recently used: its caches are the warmest
            child = _Child()
            self._all.add(child)
            return child

    def _give_back(self, child: _Child) -> None:
        child.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(child)
            self._schedule_trim(self.idle_s)

    def _schedule_trim(self, delay: float) -> None:
        """(Under the lock.) A trim in `delay` s while idle children beyond the spares remain and none is pending."""
        if len(self._idle) > self.spares and self._trim_timer is None:
            self._trim_timer = threading.Timer(delay, self.trim)
            self._trim_timer.daemon = True
            self._trim_timer.start()

    def trim(self) -> None:
        """End the idle children beyond the spares that have been idle for idle_s (the least recently used), and
        come back for the rest when the oldest of them is due."""
        now = time.monotonic()
        with self._lock:
            self._trim_timer = None
            extra = self._idle[:max(0, len(self._idle) - self.spares)]
            old = [c for c in extra if now - c.idle_since >= self.idle_s]
            self._idle = [c for c in self._idle if c not in old]
            self._all.difference_update(old)
            left = [c.idle_since for c in extra if c not in old]
            self._schedule_trim(max(0.05, min(left) + self.idle_s - now) if left else self.idle_s)
        for child in old:
            child.kill()

    def _drop(self, child: _Child) -> None:
        child.kill()
        with self._lock:
            self._all.discard(child)

    def close(self) -> None:
        with self._lock:
            children, self._idle = list(self._all), []
            self._all.clear()
        for child in children:
            child.kill()

    def call(self, task: str, *args: Any, what: str = "The sandboxed task", error: Callable[[str], Exception]
             = SandboxError, wall_s: float = 30.0, cpu_s: float | None = None, retire: bool = False,
             **kwargs: Any) -> Any:
        """`TASKS[task](*args, **kwargs)` in a child; its plain-data result, or `error(one-line reason)`."""
        if task not in TASKS:
            raise ValueError(f"no sandbox task {task!r}")
        if not self._slots.acquire(timeout=wall_s):
            raise error(f"{what} found the sandbox busy for {wall_s:.0f} s: try again in a moment.")
        try:
            child = self._take()
            try:
                child.wait_ready(time.monotonic() + BOOT_S)
            except (TimeoutError, EOFError, ValueError, OSError, pickle.UnpicklingError):
                self._drop(child)
                raise error(f"{what} could not start its sandbox process: try again in a moment.") from None
            cpu = max(1, math.ceil(cpu_s if cpu_s is not None else wall_s))
            deadline = time.monotonic() + wall_s   # from when the child is ready: its start is not the task's
            try:
                child.send((task, args, kwargs, cpu))
                reply = child.receive(deadline)
            except TimeoutError:
                self._drop(child)
                raise error(f"{what} took longer than {wall_s:g} s in its sandbox process, which was "
                            "stopped: refused.") from None
            except (EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
                code = child.proc.poll()
                if code is None:
                    try:
                        code = child.proc.wait(2)
                    except subprocess.TimeoutExpired:
                        code = None
                self._drop(child)
                raise error(self._death(what, code, e, cpu)) from None
            if retire or reply[0] == "err" and reply[1] == "memory":   # an exception leaves a child clean
                self._drop(child)
            else:
                self._give_back(child)
        finally:
            self._slots.release()
            threading.Thread(target=self.warm, daemon=True).start()
        if reply[0] == "ok":
            return reply[1]
        kind, message = reply[1], one_line(reply[2])
        if kind == "memory":
            raise error(f"{what} ran out of its sandbox's memory ({mem_budget() // 2**20:,} MB): refused.")
        raise error(message or f"{what} failed.")

    @staticmethod
    def _death(what: str, code: int | None, e: BaseException, cpu: int) -> str:
        if code is not None and code < 0:
            if -code == signal.SIGXCPU:
                return f"{what} used more than its {cpu} s of CPU in its sandbox process, which was stopped: refused."
            return f"{what} crashed its sandbox process ({_signal_name(code)}): refused."
        if code is not None:
            return f"{what} ended its sandbox process (exit code {code}): refused."
        return f"{what} sent a reply that is not plain data ({one_line(str(e), 120) or type(e).__name__}): refused."


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Pool()
            atexit.register(_POOL.close)
        return _POOL


def call(task: str, *args: Any, **kwargs: Any) -> Any:
    """`Pool.call` on the process-wide pool."""
    return pool().call(task, *args, **kwargs)


# --- the child's side -----------------------------------------------------------------------------------------
def _vm_size() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _read_frame(f) -> Any:
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    return pickle.loads(f.read(_HEADER.unpack(head)[0]))   # from the parent, which is ours


def _serve() -> None:
    # No PR_SET_PDEATHSIG: it fires when the parent *thread* ends (a Streamlit script thread), not the process. A
    # child whose parent died reads EOF and leaves; one in a task first runs out of its CPU limit.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)   # a print in a task must not corrupt the replies
    import importlib

    import torch
    torch.set_num_threads(1)
    for name in ("ganlab.ckpt_check", "ganlab.trainer"):   # what most tasks need, imported before the first call
        importlib.import_module(name)
    base = _vm_size()
    if base:
        limit = base + mem_budget()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def reply(obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()

    reply(("ready",))
    while True:
        request = _read_frame(sys.stdin.buffer)
        if request is None:
            return
        task, args, kwargs, cpu = request
        used = resource.getrusage(resource.RUSAGE_SELF)
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(used.ru_utime + used.ru_stime) + cpu,
                                                 resource.RLIM_INFINITY))
        try:
            module, name = TASKS[task].split(":")
            result = ("ok", plain(getattr(importlib.import_module(module), name)(*args, **kwargs)))
            check_plain(result)
        except MemoryError:
            result = ("err", "memory", "")
        except Exception as e:  # noqa: BLE001 - every failure of a task goes back as its one line
            text = one_line(str(e)) or type(e).__name__
            worded = type(e).__module__.startswith("ganlab.") or type(e) is ValueError
            result = ("err", "raised", text if worded else f"{type(e).__name__}: {text}")
        try:
            reply(result)
        except MemoryError:
            reply(("err", "memory", ""))


# test-only tasks
def _echo(value: Any) -> Any:
    return value


def _signal(sig: int) -> None:
    os.kill(os.getpid(), sig)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _spin(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def _alloc(megabytes: int) -> int:
    return len(bytearray(megabytes * 2**20))


if __name__ == "__main__":
    _serve()
