"""The release dashboard (``invoke report``) and the delivery metrics (``invoke history --stats``).

``metrics`` (pure DORA computations over ``history.Record``), ``commits`` (source commits' times and
subjects), ``live`` (each environment's pin in git and its cluster's workloads), ``collect`` (the page's
view model), ``plots`` (matplotlib, to inline SVG) and ``site`` (Jinja2 templates in ``templates/``, written
as a static site). Nothing here is imported by the release chain; it only reads what the chain recorded.
"""
