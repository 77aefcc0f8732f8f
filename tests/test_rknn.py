"""Rockchip RKNN targets: rknn-toolkit2 in its own toolchain env, its placement, estimates and bundles.

Everything here runs the real rknn-toolkit2 from the isolated toolchain (compiler and host
simulator); the session fixture installs it into a temp folder when it is not installed
already. Conversions are cached per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_isp import toolchains
from edge_isp.errors import InputError

MODEL = "pynet-v2-mobile"   # InstanceNorm, PixelShuffle, attention, bilinear resize: ISP-like, small
MOSAIC = (64, 96)

# A real excerpt of rknn-toolkit2 2.5.0's verbose log (rk3566, INT8): a conv -> InstanceNorm ->
# LeakyReLU -> conv -> PixelShuffle -> Sigmoid net exported by torch's TorchScript exporter.
# rk3566 puts the transposes RKNN wraps around the InstanceNorm on the CPU.
REAL_LOG_RK3566 = """\
D fuse_ops results:
D     convert_in_to_exnorm: remove node = ['/n/InstanceNormalization'], add node = ['/c1/Conv_output_0_tp', '/c1/Conv_output_0_tp_rs', '/n/InstanceNormalization#1', '/n/InstanceNormalization#1_rs', '/n/InstanceNormalization#1_rs_tp']
D     convert_depth2space_to_deconv2d: remove node = ['/ps/DepthToSpace'], add node = ['/ps/DepthToSpace_2deconv']
D     fuse_transpose_reshape: remove node = ['/c1/Conv_output_0_tp'], add node = ['/c1/Conv_output_0_tp']
D     fuse_reshape_transpose: remove node = ['/n/InstanceNormalization#1_rs_tp'], add node = ['/n/InstanceNormalization#1_rs_tp']
D     swap_transpose_leakyrelu: remove node = ['/n/InstanceNormalization#1_rs_tp', '/LeakyRelu'], add node = ['/LeakyRelu', '/n/InstanceNormalization#1_rs_tp']
D     swap_reshape_leakyrelu: remove node = ['/n/InstanceNormalization#1_rs', '/LeakyRelu'], add node = ['/LeakyRelu', '/n/InstanceNormalization#1_rs']
D fuse_ops done.
D RKNN: [13:46:57.526] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [13:46:57.526]                                                         Network Layer Information Table
D RKNN: [13:46:57.526] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [13:46:57.526] ID   OpType             DataType Target InputShape                               OutputShape            Cycles(DDR/NPU/Total)    RW(KB)       FullName
D RKNN: [13:46:57.526] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [13:46:57.526] 0    InputOperator      INT8     CPU    \\                                        (1,4,32,48)            0/0/0                    0            InputOperator:raw
D RKNN: [13:46:57.526] 1    Conv               INT8     NPU    (1,4,32,48),(16,4,3,3),(16)              (1,16,32,48)           4870/13824/13824         7            Conv:/c1/Conv
D RKNN: [13:46:57.526] 2    Transpose          INT8     CPU    (1,16,32,48)                             (32,48,1,16)           0/0/0                    24           Transpose:/c1/Conv_output_0_tp
D RKNN: [13:46:57.526] 3    Reshape            INT8     CPU    (32,48,1,16),(4)                         (1,1536,1,16)          0/0/0                    24           Reshape:/c1/Conv_output_0_tp_rs
D RKNN: [13:46:57.526] 4    exNorm             INT8     NPU    (1,1536,1,16),(1,1536,1,1),...           (1,1536,1,16)          0/0/0                    30           exNorm:/n/InstanceNormalization#1
D RKNN: [13:46:57.526] 5    LeakyRelu          INT8     NPU    (1,1536,1,16)                            (1,1536,1,16)          0/0/0                    24           LeakyRelu:/LeakyRelu
D RKNN: [13:46:57.526] 6    Reshape            INT8     CPU    (1,1536,1,16),(4)                        (32,48,1,16)           0/0/0                    24           Reshape:/n/InstanceNormalization#1_rs
D RKNN: [13:46:57.526] 7    Transpose          INT8     CPU    (32,48,1,16)                             (1,16,32,48)           0/0/0                    24           Transpose:/n/InstanceNormalization#1_rs_tp
D RKNN: [13:46:57.526] 8    Conv               INT8     NPU    (1,16,32,48),(12,16,3,3),(12)            (1,12,32,48)           7763/13824/13824         25           Conv:/c2/Conv
D RKNN: [13:46:57.526] 9    ConvTransposeSigmoid INT8     NPU    (1,12,32,48),(12,3,2,2),(3)              (1,3,64,96)            18749/24576/24576        24           ConvTranspose:/ps/DepthToSpace_2deconv
D RKNN: [13:46:57.526] 10   OutputOperator     INT8     NPU    (1,3,64,96)                              \\                      0/0/0                    96           OutputOperator:rgb
D RKNN: [13:46:57.526] --------------------------------------------------------------------------------------------------------------------------------------------------------------------------
D RKNN: [13:46:57.528] ----------------------------------------
D RKNN: [13:46:57.528] Total Internal Memory Size: 240KB
D RKNN: [13:46:57.528] Total Weight Memory Size: 3.5KB
D RKNN: [13:46:57.528] ----------------------------------------
"""

# The ONNX graph that log was compiled from (node, op, inputs, outputs), as the exporter wrote it.
REAL_LOG_GRAPH = [
    ("/c1/Conv", "Conv", ["raw", "c1.weight", "c1.bias"], ["/c1/Conv_output_0"]),
    ("/n/InstanceNormalization", "InstanceNormalization", ["/c1/Conv_output_0", "n.weight", "n.bias"],
     ["/n/InstanceNormalization_output_0"]),
    ("/LeakyRelu", "LeakyRelu", ["/n/InstanceNormalization_output_0"], ["/LeakyRelu_output_0"]),
    ("/c2/Conv", "Conv", ["/LeakyRelu_output_0", "c2.weight", "c2.bias"], ["/c2/Conv_output_0"]),
    ("/ps/DepthToSpace", "DepthToSpace", ["/c2/Conv_output_0"], ["/ps/DepthToSpace_output_0"]),
    ("/Sigmoid", "Sigmoid", ["/ps/DepthToSpace_output_0"], ["rgb"]),
]


@pytest.fixture(scope="session")
def rknn_env(toolchain_env) -> Path:
    """The rknn toolchain (installed into a session temp folder when it is not installed)."""
    path = toolchain_env("rknn")
    assert toolchains.status("rknn").version == "2.5.0"
    return path


@pytest.fixture(scope="module")
def norm_onnx(tmp_path_factory) -> Path:
    """conv -> InstanceNorm -> LeakyReLU -> conv at packed 16x24, exported by edge-isp (dynamo, opset 20)."""
    torch = pytest.importorskip("torch")
    from edge_isp.converters.onnx_export import export_onnx

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(4, 16, 3, padding=1)
            self.norm = torch.nn.InstanceNorm2d(16, affine=True)
            self.c2 = torch.nn.Conv2d(16, 12, 3, padding=1)
            self.shuffle = torch.nn.PixelShuffle(2)

        def forward(self, x):
            y = torch.nn.functional.leaky_relu(self.norm(self.c1(x)), 0.2)
            return self.shuffle(self.c2(y))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("norm") / "norm.onnx"
    export_onnx(Net().eval(), (1, 4, 16, 24), path)
    return path


def _convert(tmp_path_factory, precision: str):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    out = tmp_path_factory.mktemp(f"rknn-{precision}") / "bundle"
    return convert(ConvertOptions(model=MODEL, target=f"rknn-rk3588-{precision}", input_size=MOSAIC,
                                  calib_samples=4, verify_samples=2, output=out))


@pytest.fixture(scope="module")
def int8_bundle(rknn_env, tmp_path_factory):
    return _convert(tmp_path_factory, "int8")


@pytest.fixture(scope="module")
def fp16_bundle(rknn_env, tmp_path_factory):
    return _convert(tmp_path_factory, "fp16")


# ----------------------------------------------------------------------------- parsing (no toolchain)

def test_parsers_read_a_real_layer_table():
    from edge_isp.converters import rknn

    layers = rknn.parse_layer_table(REAL_LOG_RK3566)
    assert [la.id for la in layers] == list(range(11))
    assert [la.op for la in layers][:2] == ["InputOperator", "Conv"]
    assert layers[9].op == "ConvTransposeSigmoid" and layers[9].full_name == "ConvTranspose:/ps/DepthToSpace_2deconv"
    assert layers[9].name == "/ps/DepthToSpace_2deconv"
    assert (layers[9].cycles_ddr, layers[9].cycles_npu, layers[9].cycles_total) == (18749, 24576, 24576)
    assert layers[4].input_shapes == "(1,1536,1,16),(1,1536,1,1),..." and layers[4].output_shape == "(1,1536,1,16)"
    assert [la.id for la in layers if la.target == "CPU"] == [0, 2, 3, 6, 7]
    assert layers[0].io and layers[10].io and not layers[1].io
    rewrites = rknn.parse_rewrites(REAL_LOG_RK3566)
    assert [rw.rule for rw in rewrites][:2] == ["convert_in_to_exnorm", "convert_depth2space_to_deconv2d"]
    assert rewrites[0].removed == ("/n/InstanceNormalization",) and len(rewrites[0].added) == 5
    assert rknn.parse_memory(REAL_LOG_RK3566) == {"internal_bytes": 240 * 1024, "weight_bytes": int(3.5 * 1024)}
    est = rknn.estimates_from_layers(layers, rknn.parse_memory(REAL_LOG_RK3566), "rk3566")
    assert est["estimate"] is True and est["source"] == rknn.ESTIMATE_SOURCE
    assert est["cycles_total"] == 13824 + 13824 + 24576 and est["layers_cpu"] == 4 and est["layers_npu"] == 5
    assert est["cpu_time_not_included"] is True and est["total_memory_bytes"] == 240 * 1024 + int(3.5 * 1024)


def test_placement_traces_layers_back_to_onnx_nodes():
    from edge_isp.converters import rknn

    nodes = [rknn.OnnxNode(i, n, op, tuple(ins), tuple(outs)) for i, (n, op, ins, outs) in enumerate(REAL_LOG_GRAPH)]
    placement = rknn.place_nodes(nodes, rknn.parse_layer_table(REAL_LOG_RK3566), rknn.parse_rewrites(REAL_LOG_RK3566))
    by = {p.name: p for p in placement}
    # The InstanceNorm became exNorm (NPU) wrapped in Transpose/Reshape layers that rk3566 runs on the CPU.
    norm = by["/n/InstanceNormalization"]
    assert norm.target == "CPU" and norm.how == "layers" and norm.layers == [2, 3, 4, 6, 7]
    assert norm.reason.startswith("RKNN placed part of it on the CPU (Reshape, Transpose")
    assert "gives no reason" in norm.reason and "(4 of 5 on the CPU)" in norm.note
    assert by["/c1/Conv"].target == "NPU" and by["/c1/Conv"].layers == [1]
    assert by["/LeakyRelu"].layers == [5]           # swapped around by RKNN, still its own layer
    assert by["/ps/DepthToSpace"].layers == [9]     # convert_depth2space_to_deconv2d
    sig = by["/Sigmoid"]                            # fused into ConvTransposeSigmoid
    assert sig.how == "fused" and sig.target == "NPU" and sig.layers == [9] and "/ps/DepthToSpace" in sig.note
    report = rknn.rknn_report({"compiler": "rknn-toolkit2 2.5.0", "platform": "rk3566",
                               "placement": [p.to_dict() for p in placement]}, "rknn-rk3588-int8", "net.onnx")
    assert report.verdict == "partial" and report.ops_total == 6 and report.ops_on_cpu == 1
    assert report.delegated_partitions == 2
    assert [g["op"] for g in report.rejected_groups()] == ["InstanceNormalization"]


def test_dropped_and_pooled_rewrites():
    from edge_isp.converters import rknn

    rewrites = rknn.parse_rewrites(
        "D     remove_invalid_pad: remove node = ['node_pad_1', 'node_pad_2']\n"
        "D     replace_mul_add_by_bn: remove node = ['node_mul_3', 'node_add_31'], add node = ['node_mul_3_2bn']\n")
    origin, dropped = rknn.trace_origins(rewrites, {"node_pad_1", "node_pad_2", "node_mul_3", "node_add_31"})
    assert dropped == {"node_pad_1": "remove_invalid_pad", "node_pad_2": "remove_invalid_pad"}
    assert origin["node_mul_3_2bn"] == {"node_mul_3", "node_add_31"}


# ----------------------------------------------------------------------------- errors

def test_missing_toolchain_is_one_clear_error(tmp_path, monkeypatch, norm_onnx):
    from edge_isp.converters import rknn

    monkeypatch.setenv("EDGE_ISP_TOOLCHAINS", str(tmp_path / "none"))
    assert not toolchains.status("rknn").installed
    with pytest.raises(toolchains.ToolchainError, match="edge-isp toolchain install rknn"):
        rknn.compile_rknn(norm_onnx, "rk3588", "fp16", tmp_path / "w")


def test_bad_platform_is_an_input_error(norm_onnx, tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert
    from edge_isp.converters import rknn

    with pytest.raises(InputError, match="does not know platform 'rk9999'.*rk3576"):
        convert(ConvertOptions(model=MODEL, target="rknn-rk3588-int8", input_size=MOSAIC, soc="rk9999",
                               output=tmp_path / "never"))
    assert not (tmp_path / "never").exists()
    with pytest.raises(InputError, match="does not know platform"):
        rknn.check_with_rknn(norm_onnx, "rknn-rk3588-fp16", platform="rk9999")
    with pytest.raises(InputError, match="not an RKNN target"):
        rknn.check_with_rknn(norm_onnx, "cpu-int8")


def test_worker_errors_become_clear_errors_and_stdout_stays_json(rknn_env, tmp_path):
    with pytest.raises(toolchains.ToolchainError, match="unknown op 'frobnicate'"):
        toolchains.run("rknn", {"op": "frobnicate"})
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    # RKNN prints its log (and a traceback) on stdout/stderr: the response must still parse.
    with pytest.raises(toolchains.ToolchainError, match="rknn failed on 'build': load_onnx"):
        toolchains.run("rknn", {"op": "build", "model": str(bogus), "output_dir": str(tmp_path / "o"),
                                "platform": "rk3588", "quantize": False, "inputs": []})


# ----------------------------------------------------------------------------- rknn-toolkit2's own answer

@pytest.mark.slow
def test_instance_norm_goes_to_the_cpu_on_rv1106_but_not_on_rk3588(rknn_env, norm_onnx, tmp_path):
    from edge_isp.converters import rknn

    rng = np.random.default_rng(0)
    calib = rng.random((4, 4, 16, 24), dtype=np.float32)
    rk3588 = rknn.compile_rknn(norm_onnx, "rk3588", "int8", tmp_path / "rk3588", calib=calib)
    assert rk3588.version == "2.5.0" and rk3588.opset == 19 and rk3588.rknn.is_file()
    norm = {p.op: p for p in rk3588.placement}["InstanceNormalization"]
    assert norm.target == "NPU" and norm.layers
    assert "convert_in_to_exnorm" in rknn.rewrite_counts(rk3588.rewrites)
    # `edge-isp check norm.onnx --target rknn-rk3588-int8 --platform rv1106`: calibrates on the
    # bundled sample and asks rknn-toolkit2 for rv1106.
    report, rv1106 = rknn.check_with_rknn(norm_onnx, "rknn-rk3588-int8", platform="rv1106")
    assert rv1106.platform == "rv1106"
    norm = {p.op: p for p in rv1106.placement}["InstanceNormalization"]
    assert norm.target == "CPU" and norm.reason and "gives no reason" in norm.reason
    cpu_layers = [la for la in rv1106.layers if la.target == "CPU" and not la.io]
    assert [la.op for la in cpu_layers] == ["exNorm"]
    assert report.verdict == "partial" and [g["op"] for g in report.rejected_groups()] == ["InstanceNormalization"]
    assert report.accelerator == "rv1106" and "rknn-toolkit2 2.5.0" in report.to_text()
    assert rv1106.estimates["cpu_time_not_included"] is True


# ----------------------------------------------------------------------------- convert

@pytest.mark.slow
def test_convert_int8_bundles_rknn_with_simulator_verification(int8_bundle):
    from edge_isp.converters.targets import MIN_PSNR_DB

    res = int8_bundle
    m, folder = res.manifest, res.bundle.path
    assert m["artifact"]["file"] == "model.rknn" and (folder / "model.rknn").is_file()
    assert (folder / "source.onnx").is_file() and (folder / "manifest.json").is_file()
    assert (folder / "model.rknn").stat().st_size > 10_000
    v = m["verification"]
    assert v["passed"] and v["psnr_db"] >= MIN_PSNR_DB["int8"] and v["runtime"] == "rknn-toolkit2 2.5.0 simulator"
    assert m["target"]["accelerator_config"] == "rk3588" and m["quantization"]["weights"] == "int8"
    npu = m["npu"]
    assert npu["compiler"] == "rknn-toolkit2 2.5.0" and npu["platform"] == "rk3588" and npu["onnx_opset"] == 19
    onnx_nodes = sum(m["onnx"]["op_types"].values())
    assert len(npu["placement"]) == onnx_nodes > 0
    assert sum(1 for p in npu["placement"] if p["target"] == "NPU") > 0
    assert sum(1 for p in npu["placement"] if p["how"] == "layers") > onnx_nodes // 2
    assert sum(1 for la in npu["layers"] if la["target"] == "NPU") > 50
    est = npu["estimates"]
    assert est["estimate"] is True and "nothing executed on a board" in est["source"]
    assert est["cycles_total"] > 0 and est["internal_memory_bytes"] > 0 and est["weight_memory_bytes"] > 0
    assert npu["rewrite_counts"].get("convert_in_to_exnorm") == m["onnx"]["op_types"]["InstanceNormalization"]
    assert "simulator" in npu["simulator"]
    sc = m["support_check"]
    assert sc["table"] == "rknn" and sc["counts"]["ops_total"] == onnx_nodes
    assert sc["summary"].startswith(npu["placement_summary"])
    # Rockchip's published op list puts InstanceNormalization on the CPU; the 2.5.0 compiler
    # rewrites it to exNorm on the NPU: the report shows that disagreement next to its verdict.
    assert sc["compared_table"] == "rknn"
    disagree = {g["op"]: g for g in sc["disagreements"]}
    assert disagree["InstanceNormalization"]["compiler"] == "accelerator"
    assert disagree["InstanceNormalization"]["table"] == "CPU"


@pytest.mark.slow
def test_convert_fp16_passes_the_fp16_bar(fp16_bundle):
    from edge_isp.converters.targets import MIN_PSNR_DB

    m = fp16_bundle.manifest
    assert m["verification"]["passed"] and m["verification"]["psnr_db"] >= MIN_PSNR_DB["fp16"]
    assert m["quantization"] == {"weights": "float16", "activations": "float16"}
    assert m["calibration"] is None and m["npu"]["precision"] == "fp16"
    assert all(la["dtype"] == "FLOAT16" for la in m["npu"]["layers"])


@pytest.mark.slow
def test_rknn_bundle_cannot_run_on_the_host_with_one_clear_line(int8_bundle, tmp_path):
    from edge_isp.errors import BundleError
    from edge_isp.runtimes.bundle_runner import open_bundle

    folder = int8_bundle.bundle.path
    with pytest.raises(BundleError, match="rknn-toolkit-lite2; on the host use the bundle's source.onnx"):
        open_bundle(folder)
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "process", "--bundle", str(folder),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "rknn-toolkit-lite2" in proc.stderr and "Traceback" not in proc.stderr
    assert not any((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True
    json.loads((folder / "manifest.json").read_text())   # the bundle is untouched


@pytest.mark.slow
def test_check_shows_rknns_report_for_a_bundle_and_compiles_again_for_another_platform(int8_bundle):
    from edge_isp.converters.check import check_bundle

    folder = int8_bundle.bundle.path
    report = check_bundle(folder)                       # from the manifest: nothing compiled
    assert report.summary_line() == int8_bundle.manifest["support_check"]["summary"]
    assert report.table == "rknn" and report.verdict == "full"
    rv1106 = check_bundle(folder, platform="rv1106")    # source.onnx compiled again for rv1106
    assert rv1106.accelerator == "rv1106" and rv1106.verdict == "partial"
    assert {g["op"] for g in rv1106.rejected_groups()} == {"InstanceNormalization"}
    proc = subprocess.run([sys.executable, "-m", "edge_isp.cli", "check", str(folder / "source.onnx"),
                           "--target", "rknn-rk3588-fp16", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["table"] == "rknn" and d["accelerator"] == "rk3588" and d["counts"]["ops_total"] > 0
