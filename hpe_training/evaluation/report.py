"""Benchmark results to files: ``results.json``, ``results.csv`` and the paper-style plots.

``results.json``: the whole result (:mod:`.benchmark`), per-pair records included, one record
per line.

CSV columns: ``method, protocol, bin_lo_deg, bin_hi_deg, pairs, yaw, pitch, roll, mae,
geodesic_deg`` (degrees; bins empty for whole-protocol rows). Plots:

* ``error_vs_gap.png``: MAE per 5-degree bin of the anchor-query gap (the paper's Fig. 3 kind),
  one line per method;
* ``error_vs_pose_close_anchor.png``: MAE per 10-degree bin of the query's angle from frontal,
  relative with an anchor within 5 degrees vs the absolute method on the same queries.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

SUMMARY_PROTOCOLS = ("full", "easy", "hard", "gap_all", "close_anchor", "predicted_anchor")
BINNED_PROTOCOLS = {"by_gap": "gap", "close_anchor_by_pose": "close_anchor_pose"}
FIELDS = ("method", "protocol", "bin_lo_deg", "bin_hi_deg", "pairs", "yaw", "pitch", "roll", "mae", "geodesic_deg")


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, protocol) and per (method, binned protocol, bin)."""
    rows = []
    for method, report in result["methods"].items():
        for protocol in SUMMARY_PROTOCOLS:
            if protocol in report:
                rows.append({"method": method, "protocol": protocol, "bin_lo_deg": "", "bin_hi_deg": "",
                             **{k: report[protocol].get(k, "") for k in FIELDS[4:]}})
        for key, protocol in BINNED_PROTOCOLS.items():
            for b in report.get(key, []):
                rows.append({"method": method, "protocol": protocol, "bin_lo_deg": b["bin_deg"][0],
                             "bin_hi_deg": b["bin_deg"][1], **{k: b.get(k, "") for k in FIELDS[4:]}})
    return rows


def _plot(result: dict[str, Any], key: str, xlabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, report in result["methods"].items():
        bins = [b for b in report.get(key, []) if b.get("pairs")]
        if bins:
            ax.plot([(b["bin_deg"][0] + b["bin_deg"][1]) / 2 for b in bins], [b["mae"] for b in bins], "o-",
                    label=f"{method} ({sum(b['pairs'] for b in bins)} pairs)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MAE of yaw, pitch, roll (deg)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def dumps_json(value: Any, indent: int = 1, _level: int = 0) -> str:
    """JSON text like ``json.dumps(value, indent=indent)``, except that a list holding no list
    or dict stays on one line (a per-pair record, a bin's bounds), which keeps ``results.json``
    with thousands of per-pair records readable and a fraction of the size."""
    pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {dumps_json(v, indent, _level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple, dict)) for v in value):
        items = [inner + dumps_json(v, indent, _level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def write_report(result: dict[str, Any], out_dir: Path, title: str) -> dict[str, Path]:
    """Write the JSON, the CSV and both plots into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv",
             "gap_plot": out_dir / "error_vs_gap.png", "pose_plot": out_dir / "error_vs_pose_close_anchor.png"}
    paths["json"].write_text(dumps_json(result) + "\n")
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(result))
    _plot(result, "by_gap", "anchor-query rotation gap (deg)", f"{title}: error vs anchor gap", paths["gap_plot"])
    _plot(result, "close_anchor_by_pose", "query angle from frontal (deg)",
          f"{title}: anchor within 5 deg vs absolute", paths["pose_plot"])
    return paths


def summary_table(result: dict[str, Any]) -> str:
    """Markdown table of the whole-protocol rows (for docs and the console)."""
    lines = ["| method | protocol | pairs | yaw | pitch | roll | MAE |", "|---|---|---:|---:|---:|---:|---:|"]
    for row in csv_rows(result):
        if row["bin_lo_deg"] != "":
            continue
        if not row["pairs"]:
            lines.append(f"| {row['method']} | {row['protocol']} | 0 | - | - | - | - |")
            continue
        lines.append(f"| {row['method']} | {row['protocol']} | {row['pairs']} | {row['yaw']:.2f} | "
                     f"{row['pitch']:.2f} | {row['roll']:.2f} | {row['mae']:.2f} |")
    return "\n".join(lines)
