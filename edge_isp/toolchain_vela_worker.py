"""Worker run by the isolated ``vela`` toolchain's own Python (never imported by edge-isp).

Protocol (``edge_isp.toolchains``): one JSON request on stdin, one JSON response on stdout.

Request  ``{"schema": "edge-isp/toolchain-request@1", "op": "version"}``
         ``{"schema": ..., "op": "compile", "model": PATH, "accelerator_config": "ethos-u65-256",
           "output_dir": DIR, "extra_args": [...]}``
Response ``{"schema": "edge-isp/toolchain-response@1", "ok": bool, "error": str | None, ...}``;
compile adds ``returncode``, ``stdout``, ``stderr``, ``vela_tflite``, ``per_layer_csv``
(text), ``summary_csv`` (text), ``summary_file``. Parsing is done on the edge-isp side.

Only the standard library and the toolchain's own packages are used here.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

# A sibling file, importable because this script's folder is first on sys.path.
from toolchain_worker_protocol import serve  # noqa: E402


def _version() -> str:
    return metadata.version("ethos-u-vela")


def _compile(req: dict) -> dict:
    model = Path(req["model"])
    out = Path(req["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    args = [str(model), "--accelerator-config", str(req["accelerator_config"]), "--output-dir", str(out),
            "--show-cpu-operations", "--verbose-performance", *[str(a) for a in req.get("extra_args", [])]]
    proc = subprocess.run([sys.executable, "-m", "ethosu.vela", *args], capture_output=True, text=True)
    stem = model.stem
    vela_tflite = out / f"{stem}_vela.tflite"
    per_layer = out / f"{stem}_per-layer.csv"
    summaries = sorted(out.glob(f"{stem}_summary_*.csv"))
    resp = {"ok": proc.returncode == 0 and vela_tflite.is_file(), "returncode": proc.returncode,
            "stdout": proc.stdout, "stderr": proc.stderr, "args": args,
            "vela_tflite": str(vela_tflite) if vela_tflite.is_file() else None,
            "per_layer_csv": per_layer.read_text() if per_layer.is_file() else None,
            "summary_file": summaries[0].name if summaries else None,
            "summary_csv": summaries[0].read_text() if summaries else None,
            "version": _version()}
    if not resp["ok"]:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        resp["error"] = f"vela exited with {proc.returncode}: " + " | ".join(tail)
    return resp


def main() -> int:
    return serve({"version": lambda req: {"ok": True, "version": _version()}, "compile": _compile})


if __name__ == "__main__":
    sys.exit(main())
