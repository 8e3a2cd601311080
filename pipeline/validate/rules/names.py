"""Lint rule on names (``invalid-name``), and the name syntax other rules share.

The API server rejects an object whose name or labels break Kubernetes' name rules; learning that here is
cheaper than at apply time. The patterns are here once: :mod:`.references` uses :data:`DNS_LABEL` to tell
a Service host from other settings, and :func:`key_words` (the words of a config key) serves it and
:mod:`.secrets`. Uses :mod:`..index`; registered in :mod:`.` (the rules package).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Issue
from ..index import Index, mapping, pod_templates

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def key_words(key: str) -> list[str]:
    """The upper-case words of an environment or config key: ``dbHost`` and ``DB_HOST`` are DB, HOST."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def invalid_names(index: Index) -> Iterator[Issue]:
    """Names and labels the API server would reject; cheaper to learn here than at apply time."""
    for r in index.resources:
        if r.kind in ("Service", "Namespace"):
            pattern, what = (
                (_DNS_1035, "a DNS-1035 label") if r.kind == "Service" else (DNS_LABEL, "a DNS label")
            )
            limit = 63
        else:
            pattern, what, limit = _DNS_SUBDOMAIN, "a DNS subdomain", 253
        if not pattern.match(r.name) or len(r.name) > limit:
            yield Issue(
                r.ref,
                f"{r.ref}: metadata.name {r.name!r} is not {what} (lowercase letters, digits and '-', "
                f"at most {limit} characters); the API server rejects it. Rename it",
            )
        labels = dict(mapping(mapping(r.body.get("metadata")).get("labels")))
        for template in pod_templates(r):
            labels.update(template.labels)
        for key, value in labels.items():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                yield Issue(
                    r.ref,
                    f"{r.ref}: label {key}={value!r} is not a valid label value (at most 63 letters, digits, "
                    "'-', '_' or '.', starting and ending with a letter or digit). Change the value",
                )
