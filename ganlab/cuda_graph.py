"""One whole training step (D updates, G update, statistics) captured as a CUDA graph and replayed.

A small GAN on a GPU is limited by Python and kernel launches, not arithmetic: a step is a few hundred small
kernels, each a few microseconds of GPU work behind more microseconds of Python. Replaying the captured step
launches them all at once: on an H100 the same trainer ran ring8 9-13x and the MNIST MLP and DCGAN 5-7x faster
than eagerly (bench graph_speedup_*). The trainer runs its first steps eagerly (the first step never waits for
a capture), then captures on a later step; the capture itself costs about one eager step and runs no kernels.
Anything the graph cannot hold falls back to eager with the reason in `Trainer.graph_note`.

What a captured step bakes in (`graph_key`): the D steps, the loss and its switches. A live edit of one of them
drops the graph and the next steps run eagerly until it is captured again. Learning rates are tensors that the
fused, capturable Adam reads on the device, so lr decay and live lr edits need no new capture. Random numbers
come from the run's own generator, registered with the graph (each replay advances its offset), so batches,
noise and dropout masks stay fresh on every replay.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable

import torch

Trainer = Any   # a ganlab.trainer.Trainer (not imported: the trainer imports this module)
WARMUP_STEPS = 5   # eager steps before a capture: optimiser state, cuBLAS/cuDNN handles and autotuning exist
# Runs on one GPU take turns launching work: a capture in one thread while another thread ran cuBLAS failed on an
# H100 (CUBLAS_STATUS_EXECUTION_FAILED, then a hung run). Launching is microseconds per replayed step, so
# turns cost little; the GPU still overlaps the queued work.
_CUDA_LOCK = threading.RLock()


def device_lock(device: torch.device) -> contextlib.AbstractContextManager:
    """Hold while a thread launches CUDA work for a run (every run thread does; CPU runs need no lock)."""
    return _CUDA_LOCK if device.type == "cuda" else contextlib.nullcontext()


def graph_key(trainer: Trainer) -> tuple[Any, ...]:
    """The config values a captured step depends on (besides the learning rates)."""
    c = trainer.cfg
    return (c.d_steps, c.loss, c.label_smoothing, c.instance_noise, c.r1_gamma, c.gp_lambda, c.bf16)


def why_not(trainer: Trainer) -> str | None:
    """None when the trainer's step can be captured; else why it runs eagerly, in words."""
    c = trainer.cfg
    if trainer.device.type != "cuda":
        return "eager (CUDA graphs need a CUDA GPU)"
    if not c.cuda_graph:
        return "eager (cuda_graph is off)"
    if c.g_opt != "adam" or c.d_opt != "adam":
        return "eager (CUDA graphs need Adam for G and D)"
    if not all(o.defaults.get("capturable") for o in (trainer.opt_g, trainer.opt_d)):
        return "eager (this torch has no capturable fused Adam)"
    if c.instance_noise > 0:
        return "eager (instance noise changes every step)"
    if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return "eager (this torch cannot give a CUDA graph the run's own random generator)"
    return None


class StepGraph:
    """A captured `step()`; `replay()` runs it again. `stats` are the graph's output tensors of the statistics,
    overwritten by every replay (read them before the next one)."""

    def __init__(self, trainer: Trainer, step: Callable[[], None]):
        self.key = graph_key(trainer)
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(trainer.gen)
        # The docs' recipe: warm up on a side stream so lazily made state (autograd's stream bookkeeping,
        # cuBLAS workspaces) exists outside the capture. The caller counts this one as a real step.
        side = torch.cuda.Stream(trainer.device)
        side.wait_stream(torch.cuda.current_stream(trainer.device))
        with torch.cuda.stream(side):
            step()
        torch.cuda.current_stream(trainer.device).wait_stream(side)
        warm = dict(trainer._stats)   # the warm-up step's statistics, kept for the caller
        trainer._stats.clear()
        try:
            # thread_local: other runs and the quality worker may launch kernels from their threads meanwhile.
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                step()
            self.stats = dict(trainer._stats)
        finally:
            trainer._stats.clear()
            trainer._stats.update(warm)

    def replay(self) -> None:
        self.graph.replay()
