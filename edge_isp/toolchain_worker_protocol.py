"""The worker side of the toolchain protocol, shared by every ``toolchain_*_worker.py``.

Workers run as scripts under a toolchain's own Python (``edge_isp.toolchains``), with this
folder first on ``sys.path``, so they import this file as a plain sibling module
(``from toolchain_worker_protocol import serve``) and never the ``edge_isp`` package, whose
dependencies are not in those environments. Standard library only.

One JSON request on stdin (schema ``edge-isp/toolchain-request@1``, an ``op`` and its
fields), one JSON response on stdout (``edge-isp/toolchain-response@1``, ``ok``, ``error``
and the op's fields). While a handler runs, file descriptor 1 points at stderr: vendor
tools and native libraries print freely without corrupting the answer.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any

REQUEST = "edge-isp/toolchain-request@1"
RESPONSE = "edge-isp/toolchain-response@1"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def handle(request_text: str, handlers: dict[str, Handler]) -> dict[str, Any]:
    """The response for one request; every failure becomes ``{"ok": False, "error": ...}``."""
    try:
        req = json.loads(request_text)
        if req.get("schema") != REQUEST:
            raise ValueError(f"request schema {req.get('schema')!r}, expected {REQUEST!r}")
        op = req.get("op")
        if op not in handlers:
            raise ValueError(f"unknown op {op!r} ({' | '.join(handlers)})")
        resp = handlers[op](req)
    except Exception as exc:  # noqa: BLE001 - everything becomes an error response
        resp = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    resp.setdefault("error", None)
    return {"schema": RESPONSE, **resp}


def serve(handlers: dict[str, Handler]) -> int:
    """Answer the request on stdin with ``handlers`` (op name -> function); returns the exit code."""
    saved_stdout = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)                     # prints of the tools go to stderr, not into the answer
    sys.stdout = sys.stderr
    resp = handle(sys.stdin.read(), handlers)
    # This worker's own peak memory: the caller charges it to the stage that ran it.
    resp["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    with os.fdopen(saved_stdout, "w") as out:
        out.write(json.dumps(resp))
    return 0
