"""The measured plan of a global-context model, cached on disk across runs.

Measuring a plan costs probe runs (9-18 s for the default model here) that every process /
verify / convert would repeat; the plan depends only on the architecture, so it is kept in
the user's cache folder keyed by the module tree, the modules' source and edge-isp's version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from edge_isp._atomic import write_text_atomic
from edge_isp.errors import EdgeIspError


def cache_file(model: nn.Module, multiple: int) -> Path | None:
    """Where the plan of this architecture is cached: a digest of the module tree (every layer's
    configuration), the source of the modules' code, edge-isp's version and ``multiple``."""
    from edge_isp import __version__
    from edge_isp._resources import cache_dir

    digest = hashlib.sha256(f"{__version__}|{multiple}|{model!r}".encode())
    for module_name in sorted({type(m).__module__ for m in model.modules()}):
        try:
            digest.update(inspect.getsource(sys.modules[module_name]).encode())
        except (KeyError, OSError, TypeError):
            return None                  # code we cannot read: measure every time
    return cache_dir("global-plans", f"{type(model).__name__}-{digest.hexdigest()[:20]}.json")


def read(path: Path | None) -> dict[str, Any] | None:
    """A cached plan's fields (GlobalPlan's), checked one by one; anything unexpected is
    ignored (the plan is measured again)."""
    if path is None or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        order, strides, halos = tuple(d["order"]), tuple(tuple(s) for s in d["strides"]), tuple(d["halos"])
        values = [*order, *[v for s in strides for v in s], *halos, d["output_halo"], d["align"], d["output_scale"]]
        if not all(type(v) is int and v >= 0 for v in values) or not (len(order) == len(strides) == len(halos)) \
                or any(len(s) != 2 for s in strides) or d["align"] < 1 or d["output_scale"] < 1:
            return None
        return {"order": order, "strides": strides, "halos": halos, "output_halo": d["output_halo"],
                "align": d["align"], "output_scale": d["output_scale"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(path: Path | None, fields: dict[str, Any]) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(fields))
    except (OSError, EdgeIspError):
        pass                             # a read-only home: the plan is measured next time too
