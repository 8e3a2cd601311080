"""Writes the dashboard as a static site: ``index.html`` and ``style.css``, nothing fetched at view time.

The page is rendered from ``collect.Dashboard`` with Jinja2 templates shipped in ``templates/`` (package
data), with autoescaping on: every value from a record, a commit or a cluster is text, never markup (a
commit message with ``<script>`` in it shows as those characters). The only markup let through unescaped
is the SVG that ``plots.py`` drew from our own figures. Jinja2 is imported inside the functions, so that
``invoke --list`` stays fast. ``build`` is what ``invoke report`` runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import Settings
from . import metrics, plots
from .collect import Dashboard, collect

ASSETS = ("style.css",)


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = metrics.duration
    env.filters["when"] = metrics.readable_time
    env.filters["short"] = lambda digest: (digest or "")[:19]
    env.filters["percent"] = lambda rate: "n/a" if rate is None else f"{rate * 100:.0f}%"
    return env


def render(dashboard: Dashboard) -> str:
    """The page's HTML."""
    from markupsafe import Markup

    def safe(svg: str | None) -> Markup | None:
        # Our own figure, drawn by matplotlib, which escapes the text it writes into the SVG.
        return Markup(svg) if svg else None

    template = _environment().get_template("index.html.j2")
    return str(
        template.render(
            board=dashboard,
            formulas=metrics.FORMULAS,
            stage_plots={v.name: safe(plots.stage_durations(v)) for v in dashboard.envs},
            lead_plot=safe(plots.lead_time_distribution(dashboard.envs)),
        )
    )


def write(dashboard: Dashboard, out: Path) -> Path:
    """``out/index.html`` and its assets; returns the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(render(dashboard), encoding="utf-8")
    templates = resources.files("pipeline.dashboard") / "templates"
    for name in ASSETS:
        (out / name).write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
    return page


def build(
    settings: Settings,
    out: Path,
    env_names: Sequence[str] = (),
    *,
    days: float = 30.0,
    ask_cluster: bool = True,
    now: datetime.datetime | None = None,
) -> Path:
    """`invoke report`: gather the records (and the clusters' state) and write the site to ``out``."""
    dashboard = collect(settings, env_names, days=days, ask_cluster=ask_cluster, now=now)
    return write(dashboard, out)
