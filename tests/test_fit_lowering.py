"""Exact lowering fits for NNAPI (issue #22): reflect pads as slices + concatenation, 2x
half-pixel bilinear upsampling as phase images + DEPTH_TO_SPACE. Each is checked on a
small graph and on a registry model: rewritten vs not rewritten in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edge_isp.converters.fit import FitOptions, fitted_export, require_supported  # noqa: E402
from edge_isp.errors import InputError  # noqa: E402


class _Small(torch.nn.Module):
    def __init__(self, pad: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 2 * pad + 1, padding=pad, padding_mode="reflect")

    def forward(self, x):
        y = self.conv(x)
        return torch.nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


def _run(path, name, x):
    return ort.InferenceSession(str(path)).run(None, {name: x})[0]


@pytest.mark.parametrize("pad", [1, 2])
@pytest.mark.parametrize("hw", [(6, 10), (9, 7)])
def test_reflect_pad_and_resize_rewrites_are_exact(tmp_path, pad, hw):
    torch.manual_seed(0)
    model = _Small(pad).eval()
    shape = (1, 4, *hw)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    plain = fitted_export(FitOptions())(model, shape, tmp_path / "a.onnx")
    fitted = fitted_export(FitOptions(reflect_pad_as_slices=True, resize_as_depth_to_space=True))(
        model, shape, tmp_path / "b.onnx")
    assert plain.op_types.get("Pad") and plain.op_types.get("Resize")
    assert "Pad" not in fitted.op_types and "Resize" not in fitted.op_types
    assert fitted.op_types.get("DepthToSpace") == 1
    np.testing.assert_allclose(_run(tmp_path / "b.onnx", fitted.input_name, x),
                               _run(tmp_path / "a.onnx", plain.input_name, x), atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(_run(tmp_path / "b.onnx", fitted.input_name, x), model(torch.from_numpy(x)).numpy(),
                                   atol=1e-5)


def test_reference_pynet_v2_mobile_has_no_mirror_pad_or_resize_after_the_fits(tmp_path):
    from edge_isp.models import create

    model = create("pynet-v2-mobile", seed=0)
    shape = (1, 4, 40, 56)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    plain = fitted_export(FitOptions())(model, shape, tmp_path / "a.onnx")
    fitted = fitted_export(FitOptions(reflect_pad_as_slices=True, resize_as_depth_to_space=True,
                                      drop_noop_pads=True))(model, shape, tmp_path / "b.onnx")
    assert plain.op_types["Pad"] > 20 and plain.op_types["Resize"] == 2
    assert "Pad" not in fitted.op_types and "Resize" not in fitted.op_types
    diff = np.abs(_run(tmp_path / "b.onnx", fitted.input_name, x) - _run(tmp_path / "a.onnx", plain.input_name, x))
    assert diff.max() < 1e-5


def test_nnapi_targets_lower_reflect_pads_by_default_and_tflite_refuses_the_resize_fit():
    from edge_isp.converters import get_target

    for name in ("nnapi-fp16", "nnapi-int8", "nnapi-uint8"):
        assert get_target(name).fit.get("reflect_pad_as_slices") is True
    with pytest.raises(InputError, match="does not reach TFLite yet"):
        require_supported(FitOptions(resize_as_depth_to_space=True), "tflite")
    require_supported(FitOptions(resize_as_depth_to_space=True), "openvino")  # fine there
