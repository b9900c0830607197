"""Quality measures computed for a run at each snapshot (filled in by the metrics work)."""
from __future__ import annotations


def default_quality_fn(run, snap):
    return None
