"""Registry look-ups that fail with a 'did you mean' hint instead of a KeyError."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

from edge_isp.errors import UnknownNameError

V = TypeVar("V")


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lookup(registry: Mapping[str, V], name: str, kind: str, advice: str = "") -> V:
    """``registry[name]``, or an UnknownNameError naming the closest match and the choices."""
    try:
        return registry[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(registry), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        tail = advice or f"Known: {', '.join(sorted(registry))}."
        raise UnknownNameError(f"unknown {kind} {name!r}.{hint} {tail}") from None
