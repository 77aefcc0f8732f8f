"""Worker run by the isolated ``rknn`` toolchain's own Python (never imported by edge-isp).

Protocol (``edge_isp.toolchains``): one JSON request on stdin, one JSON response on stdout.

Request  ``{"schema": "edge-isp/toolchain-request@1", "op": "version"}``
         ``{"schema": ..., "op": "build", "model": ONNX, "output_dir": DIR, "platform": "rk3588",
           "quantize": true, "dataset": LIST_FILE | null, "inputs": [NPY, ...],
           "quantized_dtype": "w8a8", "quantized_algorithm": "normal", "optimization_level": 3}``
Response ``{"schema": "edge-isp/toolchain-response@1", "ok": bool, "error": str | None, ...}``;
build adds ``version``, ``rknn`` (path of the exported model), ``outputs`` (one .npy path per
input: the simulator's first output, NCHW), ``log`` (rknn-toolkit2's verbose log text, with
the "Network Layer Information Table") and ``stage`` (the step that failed, if one did).
Parsing is done on the edge-isp side.

rknn-toolkit2 prints its log (and the C++ compiler prints) straight to the process's stdout
and stderr, so during the work both file descriptors point at a log file; the JSON response
goes to the original stdout at the end and cannot be corrupted.

Only the standard library and the toolchain's own packages are used here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

# A sibling file, importable because this script's folder is first on sys.path.
from toolchain_worker_protocol import serve  # noqa: E402


def _version() -> str:
    return metadata.version("rknn-toolkit2")


def _log_file() -> Path:
    fd, name = tempfile.mkstemp(prefix="rknn-", suffix=".log")
    os.close(fd)
    return Path(name)


@contextmanager
def _captured(log_path: Path):
    """Point fds 1 and 2 (Python's and C's prints) at ``log_path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _importable() -> bool:
    """Import rknn.api (torch, onnx, cv2 ...) so a broken install fails at install time."""
    log = _log_file()
    try:
        with _captured(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import rknn.api  # noqa: F401
    finally:
        log.unlink(missing_ok=True)
    return True


def _check(ret: int, stage: str) -> None:
    if ret != 0:
        raise RuntimeError(f"rknn-toolkit2 {stage} returned {ret}")


def _build(req: dict, state: dict) -> dict:
    import numpy as np
    from rknn.api import RKNN

    out = Path(req["output_dir"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # RKNN puts the parent of the working directory on sys.path and may drop files in it.
    os.chdir(out)
    rknn = RKNN(verbose=True)
    try:
        state["stage"] = "config"
        # The ONNX input is already [0,1] float: no mean / std folding on the NPU side.
        _check(rknn.config(mean_values=[[0.0] * 4], std_values=[[1.0] * 4],
                           target_platform=req["platform"],
                           quantized_dtype=req.get("quantized_dtype", "w8a8"),
                           quantized_algorithm=req.get("quantized_algorithm", "normal"),
                           optimization_level=int(req.get("optimization_level", 3))), "config")
        state["stage"] = "load_onnx"
        _check(rknn.load_onnx(model=req["model"]), "load_onnx")
        state["stage"] = "build"
        quantize = bool(req.get("quantize", True))
        _check(rknn.build(do_quantization=quantize, dataset=req.get("dataset") if quantize else None), "build")
        state["stage"] = "export_rknn"
        rknn_path = out / "model.rknn"
        _check(rknn.export_rknn(str(rknn_path)), "export_rknn")
        outputs = []
        if req.get("inputs"):
            state["stage"] = "init_runtime"
            _check(rknn.init_runtime(), "init_runtime (simulator)")
            state["stage"] = "inference"
            for i, name in enumerate(req["inputs"]):
                x = np.load(name)
                res = rknn.inference(inputs=[x], data_format=["nchw"])
                if not res:
                    raise RuntimeError(f"the simulator returned no output for {name}")
                path = out / f"output_{i}.npy"
                np.save(path, np.asarray(res[0], dtype=np.float32))
                outputs.append(str(path))
        state["stage"] = None
        return {"ok": True, "rknn": str(rknn_path), "outputs": outputs}
    finally:
        rknn.release()


def _run_build(req: dict) -> dict:
    log_path = _log_file()
    state: dict = {"stage": "import"}
    try:
        with _captured(log_path), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation noise
            try:
                resp = _build(req, state)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported with the log (RKNN may exit())
                resp = {"ok": False, "error": f"{state['stage']}: {type(exc).__name__}: {exc}"}
        resp["log"] = log_path.read_text(errors="replace")
    finally:
        log_path.unlink(missing_ok=True)
    if not resp["ok"]:
        tail = [ln for ln in resp["log"].splitlines() if ln.startswith("E ")][-3:]
        if tail:
            resp["error"] += " | " + " | ".join(tail)
    resp["stage"] = state["stage"]
    resp["version"] = _version()
    return resp


def main() -> int:
    return serve({"version": lambda req: {"ok": True, "version": _version(), "importable": _importable()},
                  "build": _run_build})


if __name__ == "__main__":
    sys.exit(main())
