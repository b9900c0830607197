"""Every field of an uploaded checkpoint is checked against what it will load into (ganlab.ckpt_check).

Cases are generated from real checkpoints of three kinds of run (2D MLP, DCGAN on digits, conditional DCGAN):
for every tensor of G, D and both optimisers, every counter and the RNG state, a wrong shape, a wrong dtype, a
missing or an extra entry, out-of-range and non-number values. Each must be a refusal with a reason, never a
crash. The one that killed the whole server before (fused Adam state of the wrong shape: SIGSEGV) is among them
and is also shown to crash a real process when loaded unchecked, so the check is what prevents it.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch
from engine_util import tiny

from ganlab.ckpt_check import MAX_UNPACKED
from ganlab.lineage import check_upload
from ganlab.store import StoreError
from ganlab.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
KINDS = {
    "ring8-mlp": tiny(),
    "dcgan": tiny(dataset="mnist5k", model="dcgan", channels=8, noise_dim=8, batch_size=8),
    "cgan": tiny(dataset="mnist5k", model="dcgan", channels=8, noise_dim=8, batch_size=8, conditional=True),
}


def _state(cfg) -> dict:
    t = Trainer(cfg)
    for _ in range(2):
        t.train_step()
    t.snapshot()
    return t.state_dict()


@pytest.fixture(scope="module")
def states() -> dict[str, dict]:
    return {k: _state(cfg) for k, cfg in KINDS.items()}


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _tensor_mutations(t: torch.Tensor) -> dict[str, object]:
    out = {"empty": torch.zeros(0), "one element": torch.zeros(1), "float64": t.double(),
           "a number": 1.0, "a string": "w", "extra dim": t.unsqueeze(0)}
    if t.dim() >= 1 and t.shape[0] > 1:
        out["first dim cut"] = t[: t.shape[0] // 2].clone()
    if t.dim() == 2 and t.shape[0] != t.shape[1]:
        out["transposed"] = t.t().contiguous()
    same = lambda b: isinstance(b, torch.Tensor) and b.shape == t.shape and b.dtype == t.dtype   # noqa: E731
    return {how: b for how, b in out.items() if not same(b)}   # e.g. zeros(1) for a bias of one element


def _cases(kind: str, state: dict) -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = []

    def put(label: str, **fields) -> None:
        cases.append((f"{kind}: {label}", {**state, **fields}))

    for net in ("G", "D"):
        weights = state[net]
        for key, t in weights.items():
            for how, bad in _tensor_mutations(t).items():
                put(f"{net}.{key} {how}", **{net: {**weights, key: bad}})
            put(f"{net}.{key} missing", **{net: {k: v for k, v in weights.items() if k != key}})
        put(f"{net} extra key", **{net: {**weights, "extra.weight": torch.zeros(2)}})
        put(f"{net} not a mapping", **{net: [1, 2]})
    for opt in ("opt_g", "opt_d"):
        o = state[opt]
        for idx, entry in o["state"].items():
            for key, t in entry.items():
                muts = ({"2-element": torch.zeros(2), "negative": torch.tensor(-1.0), "1e30": torch.tensor(1e30),
                         "nan": torch.tensor(float("nan")), "a string": "x"} if key == "step"
                        else _tensor_mutations(t))
                for how, bad in muts.items():
                    put(f"{opt}[{idx}].{key} {how}",
                        **{opt: {**o, "state": {**o["state"], idx: {**entry, key: bad}}}})
            put(f"{opt}[{idx}] missing exp_avg",
                **{opt: {**o, "state": {**o["state"], idx: {k: v for k, v in entry.items() if k != "exp_avg"}}}})
        put(f"{opt} state for a parameter that does not exist", **{opt: {**o, "state": {**o["state"], 999: {}}}})
        put(f"{opt} two groups", **{opt: {**o, "param_groups": o["param_groups"] * 2}})
        put(f"{opt} groups over other params", **{opt: {**o, "param_groups": [{**o["param_groups"][0],
                                                                                 "params": [0]}]}})
        put(f"{opt} lr nan", **{opt: {**o, "param_groups": [{**o["param_groups"][0], "lr": float("nan")}]}})
        put(f"{opt} not a mapping", **{opt: "adam"})
    for value, how in ((torch.tensor([1, 2]), "2-element tensor"), (-5, "negative"), (10**30, "1e30"),
                       (1.5, "fraction"), ("7", "a string"), (float("inf"), "inf")):
        put(f"step {how}", step=value)
        put(f"d_updates {how}", d_updates=value)
    put("rng float", rng=state["rng"].float())
    put("rng garbage bytes", rng=torch.randint(0, 255, (77,), dtype=torch.uint8))
    put("rng a number", rng=3)
    put("fixed_z wrong shape", fixed_z=state["fixed_z"][:, :1].clone())
    put("fixed_z int", fixed_z=state["fixed_z"].long())
    if state.get("fixed_y") is not None:
        put("fixed_y out of range", fixed_y=state["fixed_y"] + 100)
        put("fixed_y negative", fixed_y=state["fixed_y"] - 100)
    put("score_edges wrong length", score_edges=torch.zeros(3))
    put("score_edges nan", score_edges=torch.full((41,), float("nan")))
    return cases


def _all_cases(states):
    return [c for kind, st in states.items() for c in _cases(kind, st)]


def test_every_hostile_field_is_refused_with_a_reason(states) -> None:
    cases = _all_cases(states)
    assert len(cases) > 300
    slow, accepted = [], []
    for label, state in cases:
        data = _saved(state)
        t0 = time.perf_counter()
        try:
            check_upload(data)
            accepted.append(label)
        except StoreError as e:
            msg = str(e)
            assert "\n" not in msg and len(msg) <= 400, (label, msg)
        if time.perf_counter() - t0 > 2.0:
            slow.append(label)
    print(f"\n[ckpt] {len(cases)} hostile checkpoints: {len(cases) - len(accepted)} refused")
    assert accepted == [], f"accepted: {accepted[:10]}"
    assert slow == [], f"took over 2 s: {slow[:5]}"


def test_the_good_checkpoints_still_pass(states) -> None:
    for kind, state in states.items():
        up = check_upload(_saved(state))
        assert up.full and up.step == 2, kind


CRASH = textwrap.dedent("""
    import io, sys, torch
    sys.path[:0] = [{repo!r}, {tests!r}]
    from engine_util import tiny
    from ganlab.trainer import Trainer
    state = torch.load(io.BytesIO(open(sys.argv[1], "rb").read()), weights_only=True)
    t = Trainer(tiny())
    t.load_state_dict(state)   # unchecked
    for _ in range(5):
        t.train_step()
""")


def test_the_wrong_shaped_adam_state_really_crashes_a_process_unchecked(states, tmp_path) -> None:
    state = states["ring8-mlp"]
    o = state["opt_d"]
    bad = {**state, "opt_d": {**o, "state": {i: {**e, "exp_avg": torch.zeros(0), "exp_avg_sq": torch.zeros(0)}
                                             for i, e in o["state"].items()}}}
    path = tmp_path / "bad.pt"
    path.write_bytes(_saved(bad))
    with pytest.raises(StoreError, match="exp_avg"):
        check_upload(path.read_bytes())
    script = tmp_path / "crash.py"
    script.write_text(CRASH.format(repo=str(REPO), tests=str(REPO / "tests")))
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, timeout=120)
    assert proc.returncode < 0 or proc.returncode >= 128, "loaded unchecked, this state kills the process"


def _bomb() -> bytes:
    """A 'checkpoint' whose zip entry inflates from a few hundred KB to 256 MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/data/0", b"\0" * (256 * 2**20))
    return out.getvalue()


COST = textwrap.dedent("""
    import json, resource, sys, time
    sys.path[:0] = [{repo!r}]
    import torch
    from ganlab import sandbox
    from ganlab.lineage import check_upload
    from ganlab.store import StoreError
    data = open(sys.argv[1], "rb").read()
    sandbox.call("selftest_echo", 0)   # the pool's first child starts once per process: not the check's cost
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        check_upload(data)
        ok = True
    except StoreError as e:
        ok = str(e)
    print(json.dumps({{"s": time.perf_counter() - t0, "mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                            - base) / 1024, "refused": ok}}))
""")


def test_refusing_a_hostile_file_costs_under_2_s_and_200_mb(states, tmp_path) -> None:
    import json
    state = states["ring8-mlp"]
    huge_layers = {**state, "config": {**state["config"], "g_layers": [4096] * 8, "d_layers": [4096] * 8}}
    payloads = {"zip bomb": _bomb(), "huge layers": _saved(huge_layers)}
    assert len(payloads["zip bomb"]) < 2 * 2**20 < MAX_UNPACKED
    script = tmp_path / "cost.py"
    script.write_text(COST.format(repo=str(REPO)))
    for name, data in payloads.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pt"
        path.write_bytes(data)
        out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\n[ckpt] {name}: refused in {result['s']:.2f} s, +{result['mb']:.0f} MB: {result['refused']}")
        assert result["refused"] is not True, name
        assert result["s"] < 2.0 and result["mb"] < 200, (name, result)
