"""LiteRT NPU ahead-of-time compilation: the vendor plugins' own placement and compiled models.

``ai-edge-litert`` runs in its own environment (``edge-isp toolchain install litert-aot``,
worker ``edge_isp/toolchain_litert_aot_worker.py``). Its ``apply_plugin_main`` loads a
vendor's compiler plugin (Intel OpenVINO, Qualcomm QNN, MediaTek NeuroPilot, Google Tensor):

- ``--cmd=partition`` moves the ops the plugin claims into dispatch subgraphs; the ops left
  in the main subgraph are the ones it rejected. Plugins give no reason per op.
- ``aot_compile`` then compiles each partition with the vendor's compiler library, which is
  not on PyPI: the ``ai-edge-litert-sdk-*`` add-ons download it from the vendor.

Placement is reported per operator of the *input* INT8 TFLite (the one verified on the host)
as a ``CheckReport``, like ``edge-isp check``. The Intel plugin partitions offline (only its
NPU compiler is downloaded), so ``check`` answers for Intel even where ``convert`` cannot.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.converters.check import CheckReport, OpResult, Partition
from edge_isp.converters.targets import Target, get_target, resolve_accelerator
from edge_isp.converters.tflite_reader import read_tflite
from edge_isp.errors import ConversionError, InputError, MissingDependencyError

TOOLCHAIN = "litert-aot"
DISPATCH_OP = "CUSTOM:DISPATCH_OP"
DEFAULT_TIMEOUT_S = 600.0
SAME_ARITHMETIC_NOTE = ("the NPU runs the integer model verified on the host (model.tflite); LiteRT's AOT step "
                        "hands its partitions to the vendor compiler, so the host verification covers the graph, "
                        "not the vendor compiler's numerics")


@dataclass(frozen=True)
class VendorSdk:
    """What a vendor's LiteRT plugin needs beyond PyPI, and how a user provides it."""

    title: str               # "Qualcomm"
    sdk: str                 # the vendor SDK's name
    addon: str               # edge-isp toolchain add-on (an ai-edge-litert-sdk-* shim)
    package: str             # the shim's PyPI name
    manual: str              # how to provide the libraries without the add-on


VENDORS: dict[str, VendorSdk] = {
    "intel": VendorSdk(
        "Intel", "the OpenVINO 2026.3.1 NPU compiler (libopenvino_intel_npu_compiler.so + "
        "libopenvino_intel_npu_compiler_loader.so, not in the openvino wheel)", "intel", "ai-edge-litert-sdk-intel",
        "or copy both files from an OpenVINO 2026.3.1 toolkit archive (runtime/lib/intel64) into {openvino_libs}"),
    "qualcomm": VendorSdk(
        "Qualcomm", "the Qualcomm AI Runtime SDK (QAIRT 2.50: libQnnHtp.so, libQnnSystem.so ...)", "qualcomm",
        "ai-edge-litert-sdk-qualcomm",
        "or put the QAIRT SDK's lib/x86_64-linux-clang folder on LD_LIBRARY_PATH"),
    "mediatek": VendorSdk(
        "MediaTek", "the MediaTek NeuroPilot SDK (NeuronAdapter: libneuron_sys_util.mtk.so, libneuron_adapter.so)",
        "mediatek", "ai-edge-litert-sdk-mediatek",
        "or put the NeuroPilot SDK's host/lib folder (v8_0_10/host/lib; v9_0_3/host/lib for MT6993) on "
        "LD_LIBRARY_PATH"),
    "google-tensor": VendorSdk(
        "Google Tensor", "the Google Tensor ML SDK compiler (liblitert_plugin_compiler.so)", "google-tensor",
        "ai-edge-litert-sdk-google-tensor",
        "or set GOOGLE_TENSOR_COMPILER_LIB to the folder holding liblitert_plugin_compiler.so (or "
        "GOOGLE_TENSOR_SDK_BETA to a local SDK tarball while installing the add-on)"),
}


# ----------------------------------------------------------------------------- results

@dataclass
class AotPlacement:
    index: int
    op: str
    output: str
    target: str                      # "NPU" | "CPU"
    partition: int | None = None     # dispatch subgraph index for NPU ops

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "output": self.output, "target": self.target,
                "partition": self.partition}


@dataclass
class PartitionResult:
    model: Path
    vendor: str
    soc: str
    version: str
    placement: list[AotPlacement]
    claimed: int                     # the plugin's own "selected X ops"
    total: int                       # "from a total of Y ops"
    partitions: int                  # "resulted in Z partitions"
    line: str                        # the log line itself
    unmatched: list[int] = field(default_factory=list)   # input ops not found in the partitioned model

    @property
    def npu_ops(self) -> int:
        return sum(1 for p in self.placement if p.target == "NPU")

    def claim_text(self) -> str:
        return (f"the LiteRT {VENDORS[self.vendor].title} plugin would claim {self.claimed} of {self.total} ops "
                f"in {self.partitions} partition(s)")

    def to_dict(self) -> dict[str, Any]:
        return {"compiler": f"ai-edge-litert {self.version} ({VENDORS[self.vendor].title} plugin)",
                "vendor": self.vendor, "soc": self.soc, "claimed_ops": self.claimed, "total_ops": self.total,
                "partitions": self.partitions, "log_line": self.line,
                "placement": [p.to_dict() for p in self.placement], "unmatched_ops": self.unmatched}


@dataclass
class CompileResult:
    vendor: str
    soc: str
    ok: bool
    compiled: Path | None
    stats: list[dict[str, Any]]
    report: str                      # aot_compile's compilation_report()
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    missing_libraries: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- toolchain calls

def vendor_of(target: Target) -> str:
    vendor = target.name.removeprefix("litert-npu-")
    if target.format != "litert-aot" or vendor not in VENDORS:
        raise InputError(f"{target.name} is not a LiteRT NPU target (litert-npu-{' | litert-npu-'.join(VENDORS)})")
    return vendor


def _run(request: dict[str, Any], timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    from edge_isp import toolchains

    return toolchains.run(TOOLCHAIN, request, timeout=timeout)


def probe(vendor: str, soc: str) -> dict[str, Any]:
    """Can the vendor's plugin load its libraries here? (partitions a one-op model, ~1 s)"""
    return _run({"op": "probe", "vendor": vendor, "soc": soc}, timeout=120.0)


def partition(model: Path, vendor: str, soc: str, out_dir: Path) -> tuple[PartitionResult | None, dict[str, Any]]:
    """The plugin's partition of ``model``; (None, response) when the plugin could not run."""
    model = Path(model).resolve()
    resp = _run({"op": "partition", "model": str(model), "vendor": vendor, "soc": soc,
                 "output_dir": str(Path(out_dir).resolve())})
    if not resp.get("partitioned"):
        return None, resp
    return partition_from_response(model, vendor, soc, resp), resp


def compile_aot(model: Path, vendor: str, soc: str, out_dir: Path) -> CompileResult:
    """``aot_compile`` of ``model`` for one SoC; a failed vendor backend is a result, not an exception."""
    resp = _run({"op": "compile", "model": str(Path(model).resolve()), "vendor": vendor, "soc": soc,
                 "output_dir": str(Path(out_dir).resolve())})
    backends = resp.get("backends") or []
    if len(backends) != 1:
        raise ConversionError(f"LiteRT aot_compile answered {len(backends)} backends for {vendor} {soc}, expected 1: "
                              f"{resp.get('compilation_report', '')[-300:]}")
    b = backends[0]
    return CompileResult(vendor, soc, bool(b["ok"]), Path(b["output"]) if b.get("output") else None,
                         b.get("partition_stats") or [], resp.get("compilation_report") or "", b.get("error"),
                         b.get("errors") or [], b.get("missing_libraries") or [])


# ----------------------------------------------------------------------------- placement

def partition_from_response(model: Path, vendor: str, soc: str, resp: dict[str, Any]) -> PartitionResult:
    """NPU / CPU per operator of the input model, from which subgraph its output tensor landed in."""
    stats = [s for s in resp.get("stats") or [] if s["subgraph"] == 0]
    if not stats:
        raise ConversionError(f"the LiteRT {vendor} plugin printed no 'Partitioned subgraph<0>' line; "
                              f"its log ends: {' | '.join((resp.get('log_tail') or [])[-3:])}")
    s = stats[0]
    cpu = {name for o in resp.get("main_ops") or [] for name in o["outputs"]}
    npu = {name: sg["index"] for sg in resp.get("dispatch_subgraphs") or [] for o in sg["ops"] for name in o["outputs"]}
    tfl = read_tflite(model)
    placement, unmatched = [], []
    for op in tfl.operators:
        outs = [t.name for t in tfl.op_outputs(op) if t is not None]
        hit = next((npu[n] for n in outs if n in npu), None)
        on_npu = hit is not None and not any(n in cpu for n in outs)
        if hit is None and not any(n in cpu for n in outs):
            unmatched.append(op.index)
        placement.append(AotPlacement(op.index, op.op, outs[0] if outs else "", "NPU" if on_npu else "CPU",
                                      hit if on_npu else None))
    return PartitionResult(model, vendor, soc, str(resp.get("version") or _toolchain_version()), placement,
                           s["selected"], s["total"], s["partitions"], s["line"], unmatched)


def _toolchain_version() -> str:
    from edge_isp import toolchains

    return toolchains.status(TOOLCHAIN).version or "?"


def _partitions(ops: list[OpResult], placement: list[AotPlacement]) -> list[Partition]:
    """One delegated partition per dispatch subgraph; CPU ops grouped in runs between them."""
    groups: dict[tuple[bool, int], list[int]] = {}
    cpu_run = -1
    prev_cpu = False
    for p in placement:
        if p.target == "NPU":
            groups.setdefault((True, int(p.partition or 0)), []).append(p.index)
            prev_cpu = False
        else:
            cpu_run += 0 if prev_cpu else 1
            groups.setdefault((False, cpu_run), []).append(p.index)
            prev_cpu = True
    ordered = sorted(groups.items(), key=lambda kv: kv[1][0])
    result = []
    for i, ((delegated, _), members) in enumerate(ordered):
        result.append(Partition(i, delegated, members))
        for m in members:
            ops[m].partition = i
    return result


def aot_report(result: PartitionResult | dict[str, Any], target: str, model_file: str = "",
               notes: list[str] | None = None) -> CheckReport:
    """The plugin's placement as a ``CheckReport`` (same verdicts and text as ``edge-isp check``)."""
    d = result.to_dict() if isinstance(result, PartitionResult) else result
    if isinstance(result, PartitionResult) and not model_file:
        model_file = str(result.model)
    vendor = VENDORS[d["vendor"]].title
    placement = [AotPlacement(p["index"], p["op"], p["output"], p["target"], p.get("partition"))
                 for p in d["placement"]]
    reason = f"the LiteRT {vendor} plugin did not claim it; plugins give no reason"
    ops = [OpResult(p.index, p.op, 1, p.target == "NPU", None if p.target == "NPU" else reason, output=p.output)
           for p in placement]
    partitions = _partitions(ops, placement)
    origin = (f"placement from the LiteRT {vendor} compiler plugin's partition step (apply_plugin_main "
              f"--cmd=partition, {d['compiler']}) for SoC {d['soc']}: the vendor plugin, not a static table")
    all_notes = [origin, f"plugin log: {d['log_line']}"]
    if d.get("unmatched_ops"):
        all_notes.append(f"{len(d['unmatched_ops'])} ops were not found by output name in the partitioned model "
                         "and are shown on the CPU")
    all_notes += notes or []
    return CheckReport(model_file, "tflite", target, "litert-aot", f"LiteRT {vendor} NPU plugin",
                       None, "-", d["soc"], 0, ops, partitions, notes=all_notes,
                       sources=[f"{d['compiler']} apply_plugin_main --cmd=partition"])


# ----------------------------------------------------------------------------- errors

def missing_sdk_error(target: str, vendor: str, soc: str, resp: dict[str, Any], known: PartitionResult | None = None,
                      openvino_libs: str | None = None, converting: bool = True) -> MissingDependencyError:
    """One line: which vendor library is missing, how to provide it, and what is known anyway."""
    v = VENDORS[vendor]
    missing = ", ".join(resp.get("missing_libraries") or []) or "its vendor library"
    shim = resp.get("sdk_shim") or {}
    parts = [f"{target} ({soc}) needs {v.sdk}, which is not on PyPI: the LiteRT {v.title} plugin cannot load {missing}"]
    if known is not None:
        parts.append(f"the partition step works without it: {known.claim_text()} ('edge-isp check "
                     f"model.tflite --target {target}' on a cpu-int8 bundle's model shows it per op)")
    if shim.get("installed") and not shim.get("sdk_path"):
        parts.append(f"the {v.addon} add-on ({v.package}) is installed but its download from the vendor failed "
                     "(no SDK files); reinstall it where the vendor's site is reachable")
    manual = v.manual.format(openvino_libs=openvino_libs or "the toolchain's site-packages/openvino/libs")
    parts.append(f"provide it with 'edge-isp toolchain install {TOOLCHAIN} --addon {v.addon}' ({v.package}, which "
                 f"downloads the SDK from the vendor at install time and needs that site reachable), {manual}")
    return MissingDependencyError("; ".join(parts) + (". Nothing was written" if converting else ""))


def _compile_error(target: str, result: CompileResult, known: PartitionResult | None) -> ConversionError:
    why = " | ".join(result.errors[-3:]) or result.error or "no reason given"
    extra = f"; {known.claim_text()}" if known else ""
    return ConversionError(f"LiteRT AOT compilation for {target} ({result.soc}) failed: {why}{extra}. "
                           "Nothing was written")


# ----------------------------------------------------------------------------- entry points

def check_with_litert_aot(tflite_file: Path, target_name: str, soc: str | None = None,
                          work: Path | None = None) -> CheckReport:
    """Placement of a bare INT8 TFLite on ``target_name``'s NPU by the vendor plugin (for ``edge-isp check``).

    Only the partition step runs (offline for Intel); the full compile is ``convert``'s job.
    """
    tgt = get_target(target_name)
    vendor = vendor_of(tgt)
    chosen = str(resolve_accelerator(tgt, soc))
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="edge-isp-litert-"))
    try:
        result, resp = partition(Path(tflite_file), vendor, chosen, tmp)
        if result is None:
            raise missing_sdk_error(tgt.name, vendor, chosen, resp, openvino_libs=resp.get("openvino_libs"),
                                    converting=False)
        note = "check ran the partition step only; 'edge-isp convert' also compiles it with the vendor compiler"
        return aot_report(result, tgt.name, str(tflite_file), notes=[note])
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)


def vendor_check(model_file: Path, fmt: str, target: str, npu: dict[str, Any] | None,
                 platform: str | None) -> tuple[CheckReport, Path]:
    """For ``check_bundle``: the bundle's placement (``npu``) or the partition step run again
    for ``platform`` (default: the target's SoC), and the file the static table reads."""
    report = aot_report(npu, target, str(model_file)) if npu else check_with_litert_aot(model_file, target, soc=platform)
    return report, model_file


def build(ctx: Any) -> Any:
    """The ``litert-aot`` format entry: the INT8 TFLite exactly as for cpu-int8 (verified on the
    host), compiled by the vendor plugin.

    Fails before the (slow) TFLite build when the vendor plugin cannot load at all; when only
    the compiler is missing (Intel), the error says what the partition step found.
    """
    from edge_isp.converters import tflite_build

    tgt = ctx.target
    vendor = vendor_of(tgt)
    soc = str(ctx.accelerator)          # resolved by the pipeline (--soc or the target's default)
    pre = probe(vendor, soc)
    if not pre.get("can_partition"):
        raise missing_sdk_error(tgt.name, vendor, soc, pre)
    built = tflite_build.build(ctx)
    out = ctx.work / "litert_aot"
    known, _ = partition(built.main, vendor, soc, out / "partition")
    result = compile_aot(built.main, vendor, soc, out / "compile")
    if not result.ok:
        if result.missing_libraries:
            raise missing_sdk_error(tgt.name, vendor, soc, {**pre, "missing_libraries": result.missing_libraries},
                                    known, pre.get("openvino_libs"))
        raise _compile_error(tgt.name, result, known)
    if result.compiled is None or not result.compiled.is_file():
        raise ConversionError(f"LiteRT AOT compilation for {tgt.name} ({soc}) reported success but wrote no model")
    compiled = ctx.work / f"model_{vendor.replace('-', '_')}_{soc}.tflite"
    shutil.copy2(result.compiled, compiled)
    if known is None:
        raise ConversionError(f"the LiteRT {VENDORS[vendor].title} plugin compiled the model but its partition "
                              "step failed; cannot report placement")
    report = aot_report(known, tgt.name, "model.tflite", notes=[SAME_ARITHMETIC_NOTE])
    npu = {**known.to_dict(), "compiled_file": compiled.name, "verified_artifact": "model.tflite",
           "compilation_report": result.report, "partition_stats": result.stats,
           "placement_summary": report.summary_line(), "note": SAME_ARITHMETIC_NOTE}
    return dataclasses.replace(built, extra=[*built.extra, compiled], support=report, npu=npu)
