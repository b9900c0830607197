"""Helpers for AppTest tests: the ECharts options a page sent, as the browser receives them."""
from __future__ import annotations

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest


def echarts(at: AppTest) -> list[dict]:
    """Each st.echarts_chart's option, with its Arrow datasets decoded back into `dataset[i].source` tables
    (read series points with ganlab.charts.series_rows)."""
    options = []
    for el in at.get("echarts_chart"):
        option = json.loads(el.proto.spec)
        tables = {d.name: pa.ipc.open_stream(d.data.data).read_all() for d in el.proto.datasets}
        entries = option.get("dataset", [])
        for entry in entries if isinstance(entries, list) else [entries]:
            source = entry.get("source")
            if isinstance(source, dict) and source.get("name") in tables:
                entry["source"] = tables[source["name"]]
        options.append(option)
    return options


def open_page(path: str, run_id: str | None = None, timeout: float = 60) -> AppTest:
    """An AppTest of the page file `path` (relative to the repository) with ?run=`run_id`, not yet run."""
    from pathlib import Path
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / path), default_timeout=timeout)
    if run_id is not None:
        at.query_params["run"] = run_id
    return at
