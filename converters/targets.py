"""The target registry: one row per deployable target.

Adding a target is adding a row. Every other part of the product (convert, check,
bench, profile) looks targets up here instead of branching on names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_isp._names import lookup


@dataclass(frozen=True)
class Target:
    name: str
    # "onnx" | "tflite" | "openvino" | "vela" (INT8 TFLite + Vela output) | "rknn" (ONNX
    # compiled by rknn-toolkit2) | "litert-aot" (INT8 TFLite + LiteRT NPU AOT compilation)
    format: str
    precision: str           # "fp32" | "fp16" | "int8"
    runtime: str             # runner that executes it on the host (edge_isp.runtimes)
    support_table: str       # op-support table the checker uses (profiles/ops/*.toml)
    summary: str
    # Model input/output element types of the artifact (int8 / uint8 for integer I/O).
    io_dtype: str = "float32"
    # Verification threshold: PSNR (dB) of the artifact's RGB output vs PyTorch.
    min_psnr_db: float = 100.0
    # Accelerator / delegate the target is meant for, for the report and the device harness.
    delegate: str = "cpu"
    # Default minimum Android API level the support check assumes.
    default_api_level: int | None = None
    # Exact graph rewrites applied by default for this accelerator (converters/fit.py);
    # recorded in every manifest, overridable with --fit key=value.
    fit: dict[str, object] = field(default_factory=dict)
    # Vendor compiler configuration: Vela's --accelerator-config, RKNN's target_platform
    # (default; --soc/--platform overrides), the LiteRT vendor plugin's SoC model.
    accelerator_config: str | None = None
    # The SoCs --soc/--platform may choose (empty: the target takes no --soc).
    accelerator_choices: tuple[str, ...] = ()

    @property
    def quantized(self) -> bool:
        return self.precision == "int8"


# Per-precision default thresholds: the goals are FP32 >= 100 dB, FP16 >= 60 dB,
# INT8 >= 40 dB; defaults sit a little below so a healthy model passes with margin and
# a broken conversion (layout error ~40 dB for FP32, InstanceNorm-in-INT8 ~30 dB) fails.
MIN_PSNR_DB = {"fp32": 90.0, "fp16": 55.0, "int8": 30.0}

# PixelShuffle as DEPTH_TO_SPACE (not a 6-D TRANSPOSE) and no all-zero MIRROR_PADs: both
# exact, both needed for NNAPI and the GPU delegate to take the ISP models whole.
DELEGATE_FIT = {"pixel_shuffle": "dcr", "drop_noop_pads": True}
# NNAPI below feature level 7 has no MIRROR_PAD: reflect pads as slices + concatenation (exact).
NNAPI_FIT = {**DELEGATE_FIT, "reflect_pad_as_slices": True}
# Quantised SPLIT needs NNAPI API 30; STRIDED_SLICE runs from API 28.
NNAPI_INT8_FIT = {**NNAPI_FIT, "split_as_slice": True}
# Half-pixel RESIZE_BILINEAR needs API 30: targets whose default level is API 29 take the
# nearest-neighbour + fixed-filter form (exact up to float rounding).
# align_corners=true (PyNET's upsamplers) needs API 30 too: per-axis row lookups instead (exact).
NNAPI_FP16_FIT = {**NNAPI_FIT, "resize_as_nearest_conv": True, "resize_align_corners_as_gather": True}
NNAPI_UINT8_FIT = {**NNAPI_INT8_FIT, "resize_as_nearest_conv": True}
# The NNAPI delegate takes a float RSQRT between DEQUANTIZE/QUANTIZE from API 30 (quantized
# RSQRT only from feature level 7); vendor NPU compilers may want integer-only graphs.
NNAPI_INT8_DELEGATE_FIT = {**NNAPI_INT8_FIT, "rsqrt_in_float": True}


_TARGETS: dict[str, Target] = {}


def _add(t: Target) -> None:
    _TARGETS[t.name] = t


_add(Target("onnx-fp32", "onnx", "fp32", "onnxruntime", "onnxruntime-cpu",
            "ONNX (opset fixed) for ONNX Runtime", min_psnr_db=MIN_PSNR_DB["fp32"]))
_add(Target("cpu-fp32", "tflite", "fp32", "litert", "xnnpack",
            "TFLite FP32 for the CPU (XNNPACK)", min_psnr_db=MIN_PSNR_DB["fp32"]))
_add(Target("cpu-int8", "tflite", "int8", "litert", "xnnpack",
            "TFLite full-integer INT8 for the CPU (XNNPACK)", io_dtype="int8",
            min_psnr_db=MIN_PSNR_DB["int8"]))
_add(Target("gpu-fp16", "tflite", "fp16", "litert", "gpu",
            "TFLite with FP16 weights for the GPU delegate", delegate="gpu",
            min_psnr_db=MIN_PSNR_DB["fp16"], fit=DELEGATE_FIT))
_add(Target("nnapi-fp16", "tflite", "fp16", "litert", "nnapi",
            "TFLite with FP16 weights for NNAPI (fp16-relaxed accelerators)", delegate="nnapi",
            min_psnr_db=MIN_PSNR_DB["fp16"], default_api_level=29, fit=NNAPI_FP16_FIT))
_add(Target("nnapi-int8", "tflite", "int8", "litert", "nnapi",
            "TFLite full-integer INT8 for NNAPI NPUs/DSPs", io_dtype="int8", delegate="nnapi",
            min_psnr_db=MIN_PSNR_DB["int8"], default_api_level=30, fit=NNAPI_INT8_DELEGATE_FIT))
_add(Target("nnapi-uint8", "tflite", "int8", "litert", "nnapi",
            "TFLite full-integer with uint8 I/O for NNAPI drivers below feature level 4",
            io_dtype="uint8", delegate="nnapi", min_psnr_db=MIN_PSNR_DB["int8"],
            default_api_level=29, fit=NNAPI_UINT8_FIT))
_add(Target("openvino-fp32", "openvino", "fp32", "openvino", "openvino-cpu",
            "OpenVINO IR FP32 (CPU, f32 inference precision)", min_psnr_db=MIN_PSNR_DB["fp32"]))
_add(Target("openvino-fp16", "openvino", "fp16", "openvino", "openvino-cpu",
            "OpenVINO IR with FP16 weights", min_psnr_db=MIN_PSNR_DB["fp16"]))
_add(Target("openvino-int8", "openvino", "int8", "openvino", "openvino-cpu",
            "OpenVINO IR quantised with NNCF", min_psnr_db=MIN_PSNR_DB["int8"]))


# Arm Ethos-U through Vela (edge-isp toolchain install vela). The bundle's model.tflite is the
# plain INT8 TFLite (verified on the host with LiteRT: the NPU runs the same integer
# arithmetic), model_vela.tflite is Vela's output; placement comes from Vela itself.
# Fit: Vela has no DEPTH_TO_SPACE on any Ethos-U, and on U55/U65 the 6-D pixel-shuffle
# TRANSPOSE falls back to the CPU too; the exact one-hot TRANSPOSE_CONV form ("deconv") runs
# on the NPU (pynet-v2-mobile-nonorm on U65: 174/174 ops, same PSNR as "crd" with its
# transpose on the CPU). drop_noop_pads is exact and removes pads Vela would otherwise run.
ETHOS_U_FIT = {"pixel_shuffle": "deconv", "drop_noop_pads": True}
for _name, _config, _board in (("ethos-u55-int8", "ethos-u55-128", "Alif / Corstone-300"),
                               ("ethos-u65-int8", "ethos-u65-256", "i.MX 93"),
                               ("ethos-u85-int8", "ethos-u85-256", "Corstone-320")):
    _add(Target(_name, "vela", "int8", "litert", "ethos-u",
                f"INT8 TFLite compiled with Arm Vela for {_config} ({_board}); bundle has both files",
                io_dtype="int8", min_psnr_db=MIN_PSNR_DB["int8"], delegate="ethos-u", fit=ETHOS_U_FIT,
                accelerator_config=_config))


# Rockchip RKNN through rknn-toolkit2 (edge-isp toolchain install rknn): the verified ONNX
# compiled for the platform (--platform rk3576 ...), INT8 quantised with the same calibration
# crops (NCHW); verified with rknn-toolkit2's simulator against PyTorch.
RKNN_PLATFORMS = ("rk3588", "rk3576", "rk3566", "rk3568", "rk3562", "rv1106", "rv1103", "rk2118")
for _prec in ("int8", "fp16"):
    _add(Target(f"rknn-rk3588-{_prec}", "rknn", _prec, "rknn-simulator", "rknn",
                f"RKNN {_prec.upper()} for Rockchip NPUs via rknn-toolkit2 (rk3588 default; --platform rk3576 / "
                "rk3566 / rv1106 ...)", min_psnr_db=MIN_PSNR_DB[_prec], delegate="rknpu", accelerator_config="rk3588",
                accelerator_choices=RKNN_PLATFORMS))

# LiteRT NPU ahead-of-time compilation (edge-isp toolchain install litert-aot): the verified
# INT8 TFLite compiled by the vendor's LiteRT compiler plugin for one SoC (--soc). The SoC
# names are the SocModel members of ai_edge_litert.aot.vendors.<vendor>.target in
# ai-edge-litert 2.3.0 ("ALL" left out: one SoC per bundle); tests/test_litert_aot.py checks
# them against the installed toolchain.
LITERT_NPU_SOCS: dict[str, tuple[str, ...]] = {
    "intel": ("LNL", "PTL"),  # Lunar Lake (NPU4000), Panther Lake (NPU5010)
    "qualcomm": ("SA8255", "SA8295", "SM8350", "SM8450", "SM8475", "SM8550", "SM8650", "SM8750", "SM8845",
                 "SM8850"),
    "mediatek": ("MT6853", "MT6877", "MT6878", "MT6879", "MT6886", "MT6893", "MT6895", "MT6897", "MT6983",
                 "MT6985", "MT6989", "MT6991", "MT8171", "MT8188", "MT8189", "MT6993"),
    "google-tensor": ("TENSOR_G3", "TENSOR_G4", "TENSOR_G5", "TENSOR_G6"),
}
for _vendor, _soc, _what in (("intel", "LNL", "Intel Core Ultra NPU (OpenVINO plugin)"),
                             ("qualcomm", "SM8650", "Qualcomm Hexagon HTP (QNN plugin)"),
                             ("mediatek", "MT6989", "MediaTek APU (NeuroPilot plugin)"),
                             ("google-tensor", "TENSOR_G4", "Google Tensor TPU (Edge TPU plugin)")):
    # No vendor publishes a static op table for its LiteRT plugin: the nearest static view is
    # NNAPI's table at the newest API level, shown next to the plugin's placement.
    _add(Target(f"litert-npu-{_vendor}", "litert-aot", "int8", "litert", "nnapi", default_api_level=34,
                summary=f"INT8 TFLite compiled ahead of time by LiteRT for the {_what}; --soc picks the SoC",
                io_dtype="int8", min_psnr_db=MIN_PSNR_DB["int8"], delegate=f"npu-{_vendor}", fit=NNAPI_INT8_FIT,
                accelerator_config=_soc, accelerator_choices=LITERT_NPU_SOCS[_vendor]))


def list_targets() -> list[Target]:
    return sorted(_TARGETS.values(), key=lambda t: t.name)


def get_target(name: str) -> Target:
    return lookup(_TARGETS, name, "target")


def resolve_accelerator(target: Target, soc: str | None) -> str | None:
    """The SoC / platform a vendor-compiler target compiles for (``--soc`` / ``--platform``)."""
    from edge_isp.errors import InputError

    if soc is None:
        return target.accelerator_config
    if not target.accelerator_choices:
        raise InputError(f"--soc/--platform applies to rknn-* and litert-npu-* targets, not {target.name}")
    # Case-insensitive, answered in the target's own spelling (rk3576, SM8750, TENSOR_G4).
    chosen = {c.lower(): c for c in target.accelerator_choices}.get(soc.lower())
    if chosen is None:
        raise InputError(f"{target.name} does not know platform {soc!r}; choose one of "
                         f"{', '.join(target.accelerator_choices)}")
    return chosen
