"""YAML configuration files (training recipes, robot configurations): read, override, check.

Every problem is an `Evo1Error` naming the file and the dotted field, on one line.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from evo1cli.errors import Evo1Error


def show(value: Any) -> str:
    """A value as an error message quotes it (at most 60 characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; `what` names the file's kind in errors ("recipe", ...)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Evo1Error(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise Evo1Error(f"cannot read the {what} ({err})", path=path) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise Evo1Error(f"not valid YAML{where}", path=path) from None
    return YamlReader(path).mapping(raw, "")


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: Path | None = None) -> dict[str, Any]:
    """`key.path=value` assignments (values parsed as YAML) applied to a copy of `raw`."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise Evo1Error(f"expected key.path=value, got {item!r}", field="--set")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise Evo1Error(f"{'.'.join(parts[: i + 1])} is not a mapping", path=source, field=f"--set {key}")
            node = child
        node[parts[-1]] = value
    return raw


class YamlReader:
    """Typed access to parsed YAML, with errors naming the file and the dotted field."""

    def __init__(self, path: str | Path | None):
        self.path = path

    def error(self, field: str, message: str) -> Evo1Error:
        return Evo1Error(message, path=self.path, field=field or None)

    def mapping(self, data: Any, field: str) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.error(field, f"must be a mapping, got {show(data)}")
        for k in data:
            if not isinstance(k, str):
                raise self.error(f"{field}.{k}" if field else str(k), "keys must be strings")
        return data

    def only(self, data: dict[str, Any], field: str, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for k in data:
            if k not in allowed:
                raise self.error(f"{field}.{k}" if field else k, f"unknown key (expected one of: {', '.join(allowed)})")

    def number(self, value: Any, field: str) -> float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(field, f"must be a finite number, got {show(value)}")
        return float(value)
