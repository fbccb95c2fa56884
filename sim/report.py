"""Result tables, plots (matplotlib, Agg) and an HTML summary of a simulation run.

Writes into one folder per scenario under reports/out/sim/: `result.json` (the record the
compliance run's sim target reads), one CSV per time series, PNG plots, `plots.json` (each plot's
file, title and axis labels) and `summary.html`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from sim.result import SimResult
from sim.sweep import write_csv

DEFAULT_OUT = Path("reports/out/sim")


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _series(rows: list[dict[str, float]], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def plots_for(result: SimResult, curve: list[dict[str, float]] | None) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    s = result.series
    if result.kind == "enrollment_storm" and s.get("queue"):
        rows = s["queue"]
        fig, ax = _figure("Queue length at the DM replicas", "time (minutes)", "requests queued")
        t = [r["t_s"] / 60 for r in rows]
        for key in [k for k in rows[0] if k.startswith("queue_")]:
            ax.plot(t, _series(rows, key), label=f"region {key.removeprefix('queue_')}")
        ax.legend()
        figures["queue_length"] = fig
        fig, ax = _figure("Devices enrolled", "time (minutes)", "devices enrolled")
        ax.plot(t, _series(rows, "enrolled"))
        figures["enrolled"] = fig
    if result.kind == "staged_rollout" and s.get("states"):
        rows = s["states"]
        fig, ax = _figure("Rollout progress", "time (days)", "devices")
        t = [r["t_s"] / 86400 for r in rows]
        for key in ("waiting", "in_progress", "updated", "failed", "cancelled"):
            ax.plot(t, _series(rows, key), label=key.replace("_", " "))
        for wave in s.get("waves", []):
            ax.axvline(float(wave["start_s"]) / 86400, color="grey", linestyle=":", linewidth=1)
        ax.legend()
        figures["rollout_progress"] = fig
    if result.kind in ("call_load", "failover") and s.get("occupancy"):
        rows = s["occupancy"]
        fig, ax = _figure("Relay occupancy and capacity", "time (hours)", "participants")
        t = [r["t_s"] / 3600 for r in rows]
        for key in [k for k in rows[0] if k.startswith("used_")]:
            region = key.removeprefix("used_")
            if max(_series(rows, f"capacity_{region}")) == 0 or max(_series(rows, key)) == 0:
                continue
            (line,) = ax.plot(t, _series(rows, key), label=f"{region} in use")
            ax.plot(
                t,
                _series(rows, f"capacity_{region}"),
                color=line.get_color(),
                linestyle="--",
                label=f"{region} capacity",
            )
        ax.legend(fontsize="small", ncol=2)
        figures["relay_occupancy"] = fig
    if curve:
        fig, ax = _figure("Blocking vs relays", "relays in the region", "blocking probability")
        ax.plot([r["relays"] for r in curve], [r["blocking"] for r in curve], marker="o")
        ax.axhline(0.01, color="grey", linestyle=":", label="1% target")
        ax.legend()
        figures["blocking_vs_relays"] = fig
    if result.kind == "retention_volume" and s.get("volume"):
        rows = s["volume"]
        fig, ax = _figure("Stored volume under retention", "day", "stored (GB)")
        ax.plot(_series(rows, "day"), _series(rows, "stored_gb"))
        figures["retention_volume"] = fig
    return figures


def write_outputs(
    result: SimResult, out: Path = DEFAULT_OUT, curve: list[dict[str, float]] | None = None
) -> Path:
    folder = out / result.scenario
    folder.mkdir(parents=True, exist_ok=True)
    record = result.record()
    if curve:
        record["series"]["blocking_vs_relays"] = curve
    (folder / "result.json").write_text(json.dumps(record, indent=1, default=str))
    tables = []
    for name, rows in record["series"].items():
        if rows and isinstance(rows, list) and isinstance(rows[0], dict):
            tables.append(write_csv(rows, folder / f"{name}.csv").name)
    manifest = []
    for name, fig in plots_for(result, curve).items():
        ax = fig.axes[0]
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        manifest.append(
            {
                "file": path.name,
                "title": ax.get_title(),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
            }
        )
    (folder / "plots.json").write_text(json.dumps(manifest, indent=1))
    (folder / "summary.html").write_text(_html(result, manifest, tables))
    return folder


def _html(result: SimResult, plots: list[dict[str, str]], tables: list[str]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in result.metrics.items()
    )
    images = "".join(
        f'<figure><img src="{p["file"]}" alt="{html.escape(p["title"])}">'
        f"<figcaption>{html.escape(p['title'])}</figcaption></figure>"
        for p in plots
    )
    links = " ".join(f'<a href="{t}">{t}</a>' for t in tables)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(result.scenario)}: simulation</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:left}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(result.scenario)}</h1><p>model: {html.escape(result.kind)}, "
        f"seed {result.seed}</p><h2>Results</h2><table>{rows}</table>"
        f"<h2>Plots</h2>{images}<h2>Tables</h2><p>{links}</p></body></html>"
    )
