"""The config form's hardware switches follow the machine: on a server without CUDA the 'CUDA graphs' checkbox is
disabled and its help says why (AppTest of the Train page; CI has no GPU, so the CPU case is checked for real)."""
from __future__ import annotations

import torch
from apptest_util import open_page


def test_cuda_graphs_is_disabled_without_a_cuda_gpu(lab) -> None:
    at = open_page("pages/1_Train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    box = at.checkbox(key="cfg.cuda_graph")
    if torch.cuda.is_available():
        assert not box.disabled
    else:
        assert box.disabled and "no CUDA GPU" in box.help, (box.disabled, box.help)
