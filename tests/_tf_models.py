"""Small TFLite models made with TensorFlow in the tests (no files shipped)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def int8_tflite(fn, shape, path: Path, int8_only: bool = True) -> Path:
    """``fn`` (a TF function of one NHWC float input) quantised to INT8 on random calibration data.

    ``int8_only``: full-integer with int8 I/O; otherwise float fallback kernels are allowed
    (for ops with no int8 kernel) and the I/O stays float.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    f = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    rng = np.random.default_rng(0)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(4))
    conv.target_spec.supported_ops = ([tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if int8_only else
                                      [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
    if int8_only:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return path
