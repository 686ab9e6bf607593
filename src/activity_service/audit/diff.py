"""Which fields of an activity document changed (pure)."""

from __future__ import annotations

from typing import Any


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before": …, "after": …}}`` for every top-level field that differs."""
    old = before or {}
    keys = list(dict.fromkeys([*old.keys(), *after.keys()]))
    return {
        key: {"before": old.get(key), "after": after.get(key)}
        for key in keys
        if old.get(key) != after.get(key)
    }
