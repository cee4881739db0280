"""A benchmark's files: `eval_info.json`, a bar chart of per-task success and an HTML page linking all."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from evo1cli.fileio import atomic_write_bytes, atomic_write_text

JSON_FILE, CHART_FILE, HTML_FILE = "eval_info.json", "success.png", "report.html"


def write_report(info: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / JSON_FILE, json.dumps(info, indent=2) + "\n")
    atomic_write_bytes(out / CHART_FILE, success_chart(info))
    atomic_write_text(out / HTML_FILE, html_page(info, out))
    return {"json": out / JSON_FILE, "chart": out / CHART_FILE, "html": out / HTML_FILE}


def success_chart(info: dict[str, Any]) -> bytes:
    """PNG: one bar per task (coloured by level), the overall means as lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(info["tasks"])
    rates = [100 * info["tasks"][t]["success_rate"] for t in tasks]
    levels = [info["tasks"][t]["level"] or "-" for t in tasks]
    palette = {"easy": "#4c9f70", "medium": "#e0a030", "hard": "#d9603b", "very_hard": "#8e44ad", "-": "#5477a8"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(tasks) + 2), 4.2), dpi=110)
    ax.bar(range(len(tasks)), rates, color=[palette.get(level, "#5477a8") for level in levels])
    ax.set_xticks(range(len(tasks)), [t.removesuffix("-v3") for t in tasks], rotation=75, ha="right", fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("success (%)")
    overall = info["overall"]
    ax.axhline(100 * overall["mean_over_tasks"], color="black", lw=1, ls="--", label="mean over tasks")
    if "mean_over_levels" in overall:
        ax.axhline(100 * overall["mean_over_levels"], color="grey", lw=1, ls=":", label="mean over levels")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{info['suite']}: {info['policy']}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def html_page(info: dict[str, Any], out: Path) -> str:
    esc = html.escape
    overall = info["overall"]
    rows = []
    videos: dict[str, list[str]] = {}
    for episode in info["episodes"]:
        if episode.get("video"):
            videos.setdefault(episode["task"], []).append(os.path.relpath(episode["video"], out))
    for task, t in info["tasks"].items():
        clips = " ".join(
            f'<video src="{esc(v)}" width="160" controls muted preload="metadata"></video>'
            for v in videos.get(task, [])
        )
        rows.append(
            f"<tr><td>{esc(task)}</td><td>{esc(str(t['level'] or ''))}</td><td>{t['successes']}/{t['episodes']}</td>"
            f"<td>{100 * t['success_rate']:.0f} %</td><td>{t['mean_steps']:.0f}</td><td>{clips}</td></tr>"
        )
    levels = "".join(
        f"<li>{esc(k)}: {100 * v['success_rate']:.1f} % ({v['tasks']} tasks)</li>" for k, v in info["levels"].items()
    )
    headline = (
        f"<p>Mean over levels (the authors' headline): <b>{100 * overall['mean_over_levels']:.1f} %</b></p>"
        if "mean_over_levels" in overall
        else ""
    )
    protocol = esc(json.dumps(info["protocol"], indent=2))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>evo1 bench {esc(info["suite"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>{esc(info["suite"])}: {esc(info["policy"])}</h1>
<p>Mean over tasks: <b>{100 * overall["mean_over_tasks"]:.1f} %</b>
({overall["successes"]}/{overall["episodes"]} episodes, {info["seconds"]:.0f} s)</p>{headline}
<ul>{levels}</ul>
<img src="{CHART_FILE}" alt="success per task"><h2>Tasks</h2>
<table><tr><th>task</th><th>level</th><th>solved</th><th>rate</th><th>mean steps</th><th>videos</th></tr>
{"".join(rows)}</table>
<h2>Protocol</h2><pre>{protocol}</pre><p><a href="{JSON_FILE}">{JSON_FILE}</a></p></body></html>
"""
