"""Shared pieces of the command modules: consoles, JSON output, small parsers."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from edge_isp.errors import InputError

out = Console()
err = Console(stderr=True)

JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def print_json(data: Any) -> None:
    # Plain print: rich would re-wrap long strings and break the JSON for tools.
    print(json.dumps(data, indent=2, default=str))


def parse_hw(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{what} {text!r} is not HxW (for example 544x960)") from None
    return h, w


def parse_options(pairs: list[str], what: str = "option") -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (ints, bools)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"{what} {pair!r} is not key=value (for example level=1)")
        key, value = pair.split("=", 1)
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result
