"""The dashboard's plots, drawn with matplotlib at build time into inline SVG (the page needs no script).

Two plots: each environment's stage durations per release over time (stacked bars, one per record), and
the lead-time distribution (commit to verified release) per environment. matplotlib is imported here
only, inside the functions (its import takes a second; ``invoke --list`` must not pay for it), and through
its object API (``Figure``), never ``pyplot``'s global state. Used by ``site.py`` with ``collect.py``'s
views. Text stays text in the SVG (``svg.fonttype: none``), so the browser draws it and tests can find it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from .collect import EnvView, ordered_stages

# Tableau's colour-blind-friendly palette, one colour per stage in every plot; the stages that verify the
# restored release after a rollback ("rollout (previous)") share their stage's colour, hatched.
COLOURS = {
    "build": "#9c755f", "preflight": "#4e79a7", "bump": "#76b7b2", "apply": "#f28e2b",
    "rollout": "#59a14f", "smoke": "#edc948", "revert": "#e15759", "record": "#b07aa1",
    "noop": "#86bcb6", "fingerprint": "#d4a6c8",
}  # fmt: skip
OTHER_COLOUR = "#bab0ac"
POINT_COLOUR = "#4e79a7"


def _style(stage: str) -> dict[str, Any]:
    base = stage.removesuffix(" (previous)")
    style: dict[str, Any] = {"color": COLOURS.get(base, OTHER_COLOUR)}
    if base != stage:
        style.update(hatch="///", edgecolor="white")
    return style


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _svg(fig: Any) -> str:
    import matplotlib

    out = io.StringIO()
    # Stable element ids (the same history draws the same SVG) and real text.
    with matplotlib.rc_context({"svg.hashsalt": "campus-dashboard", "svg.fonttype": "none"}):
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    # Inline SVG in HTML takes no XML prolog or doctype; the RDF metadata block says nothing to a reader.
    text = re.sub(r"^.*?(?=<svg)", "", text, flags=re.S)
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)


def stage_durations(view: EnvView) -> str | None:
    """Stacked bars of each record's stage times, oldest left; None when no record has stage times."""
    events = [e for e in reversed(view.events) if e.record.stages and e.record.result != "unchanged"]
    if not events:
        return None
    every: dict[str, float] = {}
    for e in events:
        every.update(e.record.stages)
    stages = [name for name, _ in ordered_stages(every)]
    fig = _figure(9.0, 3.4)
    ax = fig.add_subplot()
    positions = range(len(events))
    bottoms = [0.0] * len(events)
    for stage in stages:
        heights = [float(e.record.stages.get(stage, 0.0)) for e in events]
        ax.bar(positions, heights, bottom=bottoms, label=stage, width=0.6, **_style(stage))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    labels = [f"{(e.when.strftime('%m-%d %H:%M') if e.when else '?')}\n{e.record.kind}" for e in events]
    ax.set_xticks(list(positions), labels, fontsize=7)
    for pos, e in zip(positions, events, strict=True):
        if e.style == "bad":
            ax.annotate("✗", (pos, bottoms[pos]), ha="center", va="bottom", color="#c0392b", fontsize=11)
    # A few releases still get bars of a readable width, not one bar across the whole plot.
    ax.set_xlim(-0.75, max(len(events), 6) - 0.25)
    ax.set_ylabel("seconds")
    ax.set_title(f"{view.name}: stage durations per release", fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, reverse=True)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def lead_time_distribution(views: Sequence[EnvView]) -> str | None:
    """Each environment's lead times in minutes, as a box over its points; None without any."""
    data = [(v.name, [s / 60 for s in v.metrics.lead_times_seconds]) for v in views]
    data = [(name, values) for name, values in data if values]
    if not data:
        return None
    fig = _figure(9.0, 1.2 + 0.6 * len(data))
    ax = fig.add_subplot()
    ax.boxplot([values for _, values in data], orientation="horizontal", widths=0.5, showfliers=False)
    for row, (_, values) in enumerate(data, start=1):
        ax.scatter(values, [row] * len(values), color=POINT_COLOUR, zorder=3, s=18)
    ax.set_yticks(range(1, len(data) + 1), [name for name, _ in data])
    ax.set_xlabel("lead time, commit to verified release (minutes)")
    ax.set_title("lead-time distribution", fontsize=10, loc="left")
    ax.set_xlim(left=0)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)
