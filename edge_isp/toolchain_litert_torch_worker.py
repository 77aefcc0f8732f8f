"""Worker run by the isolated ``litert-torch`` toolchain's own Python (never imported by edge-isp).

Protocol (``edge_isp.toolchains``): one JSON request on stdin, one JSON response on stdout.

Request  ``{"schema": "edge-isp/toolchain-request@1", "op": "version"}``
         ``{"schema": ..., "op": "convert", "program": PATH (torch.export archive),
           "inputs": {"bayer": [1, 4, h, w], ...} (the program's keyword inputs), "output": PATH}``
Response ``{"schema": "edge-isp/toolchain-response@1", "ok": bool, "error": str | None, ...}``;
convert adds ``output``, ``seconds`` and ``version``.

The program was exported by edge-isp with the same torch version; here it is only loaded
and handed to ``litert_torch.convert`` with zero sample inputs of its shapes (the shapes
fix the TFLite tensors; the values do not matter). Keyword inputs and dict outputs become
the TFLite signature's names.
"""

from __future__ import annotations

import sys
import time
from importlib import metadata
from pathlib import Path

from toolchain_worker_protocol import serve  # noqa: E402  (sibling file, see the protocol)


def _version() -> str:
    return metadata.version("litert-torch")


def _convert(req: dict) -> dict:
    import litert_torch
    import torch

    program = torch.export.load(str(req["program"]))
    samples = {str(n): torch.zeros(*[int(d) for d in shape]) for n, shape in req["inputs"].items()}
    out = Path(req["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = litert_torch.convert(program.module(), sample_kwargs=samples)
    model.export(str(out))
    return {"ok": out.is_file(), "output": str(out), "seconds": round(time.perf_counter() - t0, 2),
            "version": _version(), **({} if out.is_file() else {"error": "litert-torch wrote no model"})}


def main() -> int:
    return serve({"version": lambda req: {"ok": True, "version": _version()}, "convert": _convert})


if __name__ == "__main__":
    sys.exit(main())
