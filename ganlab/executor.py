"""Where workers (ganlab.worker) run: a process per run (the app's default), a Ray actor per run, or a thread.

Every backend has the same small interface, `start(store, offset=, paused=, max_active=, launch=)`,
`start_group(stores, offsets=, ...)` (one worker for a seed group: ganlab.ensemble_worker) and `shutdown()`;
commands never go through it: they are lines in the run's commands.jsonl (ganlab.control), read by the worker
whichever backend runs it, and the state comes back through the run directory.

- `process`: `python -m ganlab.worker RUN_DIR` spawned (never forked) in a session of its own, output in
  `<run>/worker.log`. A reaper thread waits for it: a worker that dies by a signal (a segfault, the OOM
  killer, kill -9) is marked failed with the signal and the step named; the last checkpoint stays.
- `ray`: an actor per run on the Ray cluster at GANLAB_RAY_ADDRESS (`ray start --head` on one machine,
  `ray start --address=...` on the others; run directories on storage every node sees), with
  GANLAB_RAY_GPUS_PER_RUN of a GPU each (e.g. 0.25: four small runs share one GPU). Ray places and
  schedules the actors; an actor that dies is marked failed the same way.
- `thread`: the worker in a daemon thread of this process (the CLI's `train`, and engine tests).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Protocol

from . import control
from .disk import file_size
from .slots import parked
from .states import RunState
from .store import RunStore

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_LOG = 1 << 20   # worker.log is started afresh past 1 MB
BACKENDS = ("process", "ray", "thread")
_SIGNAL_HINT = {
    "SIGSEGV": "a crash inside native code", "SIGBUS": "a crash inside native code",
    "SIGABRT": "a crash inside native code", "SIGILL": "a crash inside native code",
    "SIGKILL": "killed from outside, often by the out-of-memory killer",
    "SIGTERM": "terminated from outside",
}


class Executor(Protocol):
    name: str

    def start(self, store: RunStore, *, offset: int, paused: bool, max_active: int, launch: str) -> None: ...

    def start_group(self, stores: list[RunStore], *, offsets: list[int], paused: bool, max_active: int,
                    launch: str) -> None: ...

    def launching(self, run_id: str) -> bool: ...

    def shutdown(self, timeout: float = 10.0) -> None: ...


def worker_died(store: RunStore, how: str, launch: str) -> None:
    """Record that the worker of `launch` ended without ending its run (a crash, a kill). Nothing is written
    when another worker has taken the run since, or the worker did end it."""
    try:
        status = store.read_status()
    except OSError:
        return
    state = RunState.parse(status.get("state"), RunState.INTERRUPTED)
    if status.get("launch", launch) != launch or not (state.live or state is RunState.INTERRUPTED) or parked(status):
        return   # a parked run's checkpoint and status were written: a crash on the way out loses nothing
    step = _last_step(store, status)
    ckpt = store.checkpoint_steps()
    kept = f"the last checkpoint (step {ckpt[-1]}) is kept: Resume continues from it" if ckpt else \
        "it had no checkpoint yet: Start trains it from the beginning"
    try:
        store.update_status(state=RunState.FAILED.value, step=step,
                            message=f"the worker process {how} at step {step}; {kept}")
    except OSError:
        pass   # the run directory was deleted meanwhile


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = _SIGNAL_HINT.get(name)
        return f"was killed by {name}" + (f" ({hint})" if hint else "")
    return f"exited with code {returncode}"


def _last_step(store: RunStore, status: dict[str, Any]) -> int:
    step = status.get("step") if isinstance(status.get("step"), int) else 0
    last = store.last_row()
    return max(step, last["step"]) if last is not None and isinstance(last.get("step"), int) else step


class ProcessExecutor:
    name = "process"

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, store: RunStore, *, offset: int, paused: bool, max_active: int, launch: str) -> None:
        log_path = store.path / "worker.log"
        mode = "wb" if file_size(log_path) > MAX_LOG else "ab"
        cmd = [sys.executable, "-m", "ganlab.worker", str(store.path), "--offset", str(offset),
               "--max-active", str(max_active), "--launch", launch] + (["--paused"] if paused else [])
        self._spawn([store], cmd, log_path, mode, launch)

    def start_group(self, stores: list[RunStore], *, offsets: list[int], paused: bool, max_active: int,
                    launch: str) -> None:
        """One `python -m ganlab.ensemble_worker` for the seed group; its log is the first member's."""
        log_path = stores[0].path / "worker.log"
        mode = "wb" if file_size(log_path) > MAX_LOG else "ab"
        cmd = [sys.executable, "-m", "ganlab.ensemble_worker", *(str(s.path) for s in stores),
               "--offsets", ",".join(str(o) for o in offsets), "--max-active", str(max_active),
               "--launch", launch] + (["--paused"] if paused else [])
        self._spawn(stores, cmd, log_path, mode, launch)

    def _spawn(self, stores: list[RunStore], cmd: list[str], log_path: Path, mode: str, launch: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        with open(log_path, mode) as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(REPO_ROOT), start_new_session=True)
        with self._lock:
            for store in stores:
                self._procs[store.run_id] = proc
        threading.Thread(target=self._reap, args=(stores, proc, launch), name=f"ganlab-reap-{stores[0].run_id}",
                         daemon=True).start()

    def _reap(self, stores: list[RunStore], proc: subprocess.Popen, launch: str) -> None:
        code = proc.wait()
        with self._lock:
            for store in stores:
                if self._procs.get(store.run_id) is proc:
                    del self._procs[store.run_id]
        if code != 0:
            for store in stores:   # a seed group's crash ends every member
                worker_died(store, describe_exit(code), launch)

    def launching(self, run_id: str) -> bool:
        with self._lock:
            proc = self._procs.get(run_id)
        return proc is not None and proc.poll() is None

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {k: p.pid for k, p in self._procs.items() if p.poll() is None}

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the workers this process started (each saves a checkpoint), then kill any that hang."""
        import time
        with self._lock:   # a seed group's process is listed once per member: stop it once
            procs = {id(p): p for p in self._procs.values() if p.poll() is None}
        for proc in procs.values():
            try:
                control.send(Path(proc.args[3]), "stop")
            except OSError:
                proc.kill()
        deadline = time.monotonic() + timeout
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def _serve(worker: Any, stores: list[RunStore], launch: str) -> None:
    """A thread worker's body: as a worker process's reaper does, a worker that raises or returns with its run
    still live leaves a message saying so (not the bare 'the process training this run ended')."""
    try:
        if worker.serve() == "":
            return   # another worker has the run
    except BaseException as e:  # noqa: BLE001 - the thread ends here; the run says why
        traceback.print_exc()
        how = f"raised {type(e).__name__}: {e}"
    else:
        how = "returned without ending the run"
    for store in stores:
        worker_died(store, how, launch)


class ThreadExecutor:
    name = "thread"

    def __init__(self, quality_fn: Any = "default") -> None:
        self.quality_fn = quality_fn
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, store: RunStore, *, offset: int, paused: bool, max_active: int, launch: str) -> None:
        from .worker import Worker
        worker = Worker(store.path, offset=offset, paused=paused, max_active=max_active, launch=launch,
                        quality_fn=self.quality_fn)
        thread = threading.Thread(target=_serve, args=(worker, [store], launch), name=f"ganlab-run-{store.run_id}",
                                  daemon=True)
        with self._lock:
            self._threads[store.run_id] = (thread, store.path)
        thread.start()

    def start_group(self, stores: list[RunStore], *, offsets: list[int], paused: bool, max_active: int,
                    launch: str) -> None:
        from .ensemble_worker import GroupWorker
        worker = GroupWorker([s.path for s in stores], offsets=offsets, paused=paused, max_active=max_active,
                             launch=launch, quality_fn=self.quality_fn)
        thread = threading.Thread(target=_serve, args=(worker, stores, launch), name=f"ganlab-group-{stores[0].run_id}",
                                  daemon=True)
        with self._lock:
            for store in stores:
                self._threads[store.run_id] = (thread, store.path)
        thread.start()

    def launching(self, run_id: str) -> bool:
        with self._lock:
            thread, _ = self._threads.get(run_id, (None, None))
        return thread is not None and thread.is_alive()

    def join(self, run_id: str, timeout: float | None = None) -> None:
        with self._lock:
            thread, _ = self._threads.get(run_id, (None, None))
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        import time
        with self._lock:   # a seed group's thread is listed once per member: stop it once
            threads = list({id(t[0]): t for t in self._threads.values() if t[0].is_alive()}.values())
        for _, path in threads:
            try:
                control.send(path, "stop")
            except OSError:
                pass   # the run directory is gone; its worker fails by itself
        deadline = time.monotonic() + timeout
        for thread, _ in threads:
            thread.join(max(0.1, deadline - time.monotonic()))


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        address = address or os.environ.get("GANLAB_RAY_ADDRESS") or None
        if address and address.split(":")[0] in ("127.0.0.1", "localhost"):
            # A cluster on loopback (tests, one machine): Ray would otherwise swap 127.0.0.1 for the
            # machine's network address. Read by Ray at import.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install ray") from None
        self.ray = ray
        self.address = address
        self.gpus = float(os.environ.get("GANLAB_RAY_GPUS_PER_RUN", "0") or 0)
        self._refs: dict[str, Any] = {}
        self._lock = threading.Lock()
        if not ray.is_initialized():
            # Every node imports ganlab from the same path (README: the cluster recipe).
            env = {"PYTHONPATH": str(REPO_ROOT), "GANLAB_WORKER": "ray"}
            ray.init(address=self.address, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env})
        self._actor = ray.remote(_RunActor)

    def start(self, store: RunStore, *, offset: int, paused: bool, max_active: int, launch: str) -> None:
        actor = self._actor.options(num_cpus=1, num_gpus=self.gpus, max_restarts=0).remote()
        ref = actor.serve.remote(str(store.path), offset, paused, max_active, launch)
        self._follow([store], actor, ref, launch)

    def start_group(self, stores: list[RunStore], *, offsets: list[int], paused: bool, max_active: int,
                    launch: str) -> None:
        actor = self._actor.options(num_cpus=1, num_gpus=self.gpus, max_restarts=0).remote()
        ref = actor.serve_group.remote([str(s.path) for s in stores], offsets, paused, max_active, launch)
        self._follow(stores, actor, ref, launch)

    def _follow(self, stores: list[RunStore], actor: Any, ref: Any, launch: str) -> None:
        with self._lock:
            for store in stores:
                self._refs[store.run_id] = (actor, ref, store.path)
        threading.Thread(target=self._watch, args=(stores, actor, ref, launch), daemon=True,
                         name=f"ganlab-ray-{stores[0].run_id}").start()

    def _watch(self, stores: list[RunStore], actor: Any, ref: Any, launch: str) -> None:
        try:
            self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - RayActorError and kin: the actor's process died
            text = str(e)
            name = next((s for s in _SIGNAL_HINT if s in text), None)
            how = f"was killed by {name} ({_SIGNAL_HINT[name]})" if name else \
                f"died ({type(e).__name__}: {text.strip().splitlines()[0][:200] if text.strip() else ''})"
            for store in stores:
                worker_died(store, how, launch)
        finally:
            with self._lock:
                for store in stores:
                    if self._refs.get(store.run_id, (None, None, None))[1] is ref:
                        del self._refs[store.run_id]
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def launching(self, run_id: str) -> bool:
        with self._lock:
            entry = self._refs.get(run_id)
        if entry is None:
            return False
        ready, _ = self.ray.wait([entry[1]], timeout=0)
        return not ready

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:   # a seed group's actor is listed once per member: stop it once
            entries = list({id(e[1]): e for e in self._refs.values()}.values())
        for _, _, path in entries:
            try:
                control.send(path, "stop")
            except OSError:
                pass
        if entries:
            self.ray.wait([ref for _, ref, _ in entries], num_returns=len(entries), timeout=timeout)


class _RunActor:
    """One run's worker inside a Ray actor process."""

    def serve(self, run_dir: str, offset: int, paused: bool, max_active: int, launch: str) -> str:
        from ganlab.worker import Worker
        worker = Worker(run_dir, offset=offset, paused=paused, max_active=max_active, launch=launch)
        worker.wait_quality = True
        return worker.serve()

    def serve_group(self, run_dirs: list[str], offsets: list[int], paused: bool, max_active: int,
                    launch: str) -> str:
        from ganlab.ensemble_worker import GroupWorker
        worker = GroupWorker(run_dirs, offsets=offsets, paused=paused, max_active=max_active, launch=launch)
        worker.wait_quality = True
        return worker.serve()

    def pid(self) -> int:
        return os.getpid()


_EXECUTORS: dict[str, Any] = {}
_LOCK = threading.Lock()


def backend_name(name: str | None = None) -> str:
    """The backend asked for: `name`, else GANLAB_EXECUTOR, else ray when GANLAB_RAY_ADDRESS is set, else process."""
    name = name or os.environ.get("GANLAB_EXECUTOR") or ("ray" if os.environ.get("GANLAB_RAY_ADDRESS") else "process")
    if name not in BACKENDS:
        raise ValueError(f"unknown executor {name!r} (one of {', '.join(BACKENDS)})")
    return name


def get_executor(name: str | None = None) -> Any:
    """The process-wide executor of a backend."""
    name = backend_name(name)
    with _LOCK:
        if name not in _EXECUTORS:
            _EXECUTORS[name] = {"process": ProcessExecutor, "thread": ThreadExecutor, "ray": RayExecutor}[name]()
        return _EXECUTORS[name]


def shutdown_all(timeout: float = 10.0) -> None:
    with _LOCK:
        executors = list(_EXECUTORS.values())
    for ex in executors:
        ex.shutdown(timeout)
