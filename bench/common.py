"""What every benchmark shares: where results go, the machine they ran on, the results table."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_name() -> str:
    return machine().get("gpu") or f"{os.cpu_count()}-core CPU"


def write_result(name: str, settings: dict, figures: dict, headline: str) -> Path:
    """Write ``results/NAME.json`` and put ``headline`` in NAME's row of ``RESULTS.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine(), "settings": settings, "figures": figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=1))
    _update_table(name, record["date"][:10], machine_name(), headline)
    return path


def _update_table(name: str, date: str, where: str, headline: str) -> None:
    header = ["# Benchmark results", "", "Measured figures, one row per benchmark (latest run); details in "
              "`bench/results/NAME.json` and `NAME.png`.", "", "| benchmark | date | machine | headline |",
              "| --- | --- | --- | --- |"]
    rows = {}
    if TABLE.is_file():
        for line in TABLE.read_text().splitlines():
            if line.startswith("| ") and not line.startswith("| benchmark") and not line.startswith("| ---"):
                rows[line.split("|")[1].strip()] = line
    rows[name] = f"| {name} | {date} | {where} | {headline} |"
    TABLE.write_text("\n".join(header + [rows[k] for k in sorted(rows)]) + "\n")
