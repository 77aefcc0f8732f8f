"""Worker run by the isolated ``litert-torch`` toolchain's own Python (never imported by edge-isp).

Protocol (``edge_isp.toolchains``): one JSON request on stdin, one JSON response on stdout.

Request  ``{"schema": "edge-isp/toolchain-request@1", "op": "version"}``
         ``{"schema": ..., "op": "convert", "program": PATH (torch.export archive),
           "inputs": {"bayer": [1, 4, h, w], ...} (the program's keyword inputs), "output": PATH,
           "precision": "fp32" | "fp16" | "int8", "calibration": NPZ (int8: name -> (N, ...) arrays),
           "per_channel": bool, "float_ops": ["RSQRT", ...] (int8: TFLite op types left in float)}``
Response ``{"schema": "edge-isp/toolchain-response@1", "ok": bool, "error": str | None, ...}``;
convert adds ``output``, ``seconds`` and ``version``.

The program was exported by edge-isp with the same torch version; here it is only loaded
and handed to ``litert_torch.convert`` with zero sample inputs of its shapes (the shapes
fix the TFLite tensors; the values do not matter). Keyword inputs and dict outputs become
the TFLite signature's names. fp16 casts the weights to float16 (DEQUANTIZE before use,
as TFLite's float16 models do); int8 is full-integer static quantisation by ai-edge-quantizer
(int8 weights and activations, int8 I/O) calibrated on the samples given.
"""

from __future__ import annotations

import os
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
    precision = req.get("precision", "fp32")
    float_path = out if precision == "fp32" else out.with_name(out.stem + "_float32.tflite")
    model.export(str(float_path))
    seconds = {"convert": round(time.perf_counter() - t0, 2)}
    if precision != "fp32":
        t1 = time.perf_counter()
        _quantise(float_path, out, precision, req)
        seconds["quantise"] = round(time.perf_counter() - t1, 2)
    return {"ok": out.is_file(), "output": str(out), "seconds": seconds, "version": _version(),
            "quantizer_version": metadata.version("ai-edge-quantizer") if precision != "fp32" else None,
            **({} if out.is_file() else {"error": "litert-torch wrote no model"})}


def _quantise(float_path: Path, out: Path, precision: str, req: dict) -> None:
    import numpy as np
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe_manager

    recipe = recipe_manager.RecipeManager()
    every = qtyping.TFLOperationName.ALL_SUPPORTED
    if precision == "fp16":
        # Only the weights of the weight-carrying ops (as TFLite's own float16 models): cast
        # everywhere, ADD/MUL constants would become float16 inputs, which NNAPI below API 30
        # and most delegates refuse.
        for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D_TRANSPOSE", "FULLY_CONNECTED"):
            recipe.add_weight_only_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                          num_bits=16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif precision == "int8":
        granularity = (qtyping.QuantGranularity.CHANNELWISE if req.get("per_channel", True)
                       else qtyping.QuantGranularity.TENSORWISE)
        recipe.add_static_config(regex=".*", operation_name=every, activation_num_bits=8, weight_num_bits=8,
                                 weight_granularity=granularity)
        for op in req.get("float_ops", []):    # left in float32 between DEQUANTIZE / QUANTIZE
            recipe.add_quantization_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                           algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    else:
        raise ValueError(f"precision {precision!r} (fp32 | fp16 | int8)")
    q = quantizer.Quantizer(str(float_path))
    q.load_quantization_recipe(recipe.get_quantization_recipe())
    result = None
    if precision == "int8":
        data = np.load(req["calibration"])
        n = min(len(data[k]) for k in data.files)
        samples = [{k: data[k][i:i + 1].astype(np.float32) for k in data.files} for i in range(n)]
        # The profiler-based calibrator keeps min/max in C++; the default one keeps every
        # intermediate tensor in Python (measured on PyNET at 448x448, 8 samples: 2.9 GB and
        # 47 s instead of 18.8 GB and 146 s, same model to the hundredth of a dB).
        from ai_edge_quantizer import calibrator

        result = q.calibrate({"serving_default": samples}, num_threads=os.cpu_count() or 1,
                             mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
    q.quantize(result).export_model(str(out), overwrite=True)


def main() -> int:
    return serve({"version": lambda req: {"ok": True, "version": _version()}, "convert": _convert})


if __name__ == "__main__":
    sys.exit(main())
