"""Validation of names, labels and keys as apimachinery's validators word it, and the cause format.

A :data:`Cause` is one ``Status.details.causes`` entry. ``validation.py`` builds on these; the messages
are kube-apiserver's, because kubectl shows them as they come.
"""

from __future__ import annotations

import json
import re
from typing import Any

Cause = tuple[str, str, str]  # (reason, field, message) as in Status.details.causes

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

_LABEL_NAMES = {"Namespace", "Service"}


def go_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return (
            "map[string]string{" + ", ".join(f"{json.dumps(k)}:{go_repr(v)}" for k, v in value.items()) + "}"
        )
    return json.dumps(value)


def name_causes(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind in _LABEL_NAMES:
        pattern, what, regex = (
            (_DNS1035_LABEL, "RFC 1035 label", "[a-z]([-a-z0-9]*[a-z0-9])?")
            if kind == "Service"
            else (DNS1123_LABEL, "RFC 1123 label", "[a-z0-9]([-a-z0-9]*[a-z0-9])?")
        )
        if len(name) > 63 or not pattern.match(name):
            return [
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: {json.dumps(name)}: a lowercase {what} must consist of lower case "
                    f"alphanumeric characters or '-', and must start and end with an alphanumeric character "
                    f"(regex used for validation is '{regex}')",
                )
            ]
        return []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [
            (
                "FieldValueInvalid",
                field,
                f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def labels_causes(labels: Any, field: str) -> list[Cause]:
    out: list[Cause] = []
    if labels is None:
        return out
    if not isinstance(labels, dict):
        return [("FieldValueInvalid", field, "Invalid value: must be a map of strings")]
    for key, value in labels.items():
        name = str(key).rsplit("/", 1)[-1]
        prefix = str(key)[: -len(name) - 1] if "/" in str(key) else ""
        if (
            not name
            or len(name) > 63
            or not _QUALIFIED_NAME.match(name)
            or (prefix and not DNS1123_SUBDOMAIN.match(prefix))
        ):
            out.append(
                (
                    "FieldValueInvalid",
                    field,
                    f"Invalid value: {json.dumps(key)}: name part must consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(
                (
                    "FieldValueInvalid",
                    f"{field}",
                    f"Invalid value: {json.dumps(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    return out


def required(value: Any, field: str) -> list[Cause]:
    if value in (None, "", [], {}):
        return [("FieldValueRequired", field, "Required value")]
    return []
