"""Worker run by the isolated ``litert-aot`` toolchain's own Python (never imported by edge-isp).

Protocol (``edge_isp.toolchains``): one JSON request on stdin, one JSON response on stdout.

Request  ``{"schema": "edge-isp/toolchain-request@1", "op": "version"}``
         ``{"schema": ..., "op": "socs"}``
         ``{"schema": ..., "op": "compile", "model": PATH, "vendor": "qualcomm", "soc": "SM8650",
           "output_dir": DIR}``
         ``{"schema": ..., "op": "partition", "model": PATH, "vendor": "intel", "soc": "LNL",
           "output_dir": DIR}``
         ``{"schema": ..., "op": "probe", "vendor": "mediatek", "soc": "MT6989"}``
Response ``{"schema": "edge-isp/toolchain-response@1", "ok": bool, "error": str | None, ...}``.

``compile`` runs ``aot_compile(..., keep_going=True)`` and answers ok even when the vendor
backend failed: ``backends[i].ok`` / ``error`` / ``missing_libraries`` say what happened
(the caller decides what a failure means). ``partition`` runs ``apply_plugin_main
--cmd=partition``: the plugin moves the ops it claims into dispatch subgraphs, so the ops
left in the main subgraph are the ones it rejected (plugins give no reasons); it too answers
ok with ``partitioned: false`` when the plugin could not run. ``probe`` partitions a one-op
model to learn whether a vendor's libraries are present before a long conversion.

Native libraries print to file descriptor 1, so fd 1 points at stderr while working and the
JSON response goes to the saved stdout. Only the standard library and ai_edge_litert are used.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# A sibling file, importable because this script's folder is first on sys.path.
from toolchain_worker_protocol import serve  # noqa: E402

# edge-isp's vendor key -> (module under ai_edge_litert.aot.vendors, SDK shim module)
VENDORS = {
    "intel": ("intel_openvino", "ai_edge_litert_sdk_intel"),
    "qualcomm": ("qualcomm", "ai_edge_litert_sdk_qualcomm"),
    "mediatek": ("mediatek", "ai_edge_litert_sdk_mediatek"),
    "google-tensor": ("google_tensor", "ai_edge_litert_sdk_google_tensor"),
    "samsung": ("samsung", None),
}
PARTITION_LINE = re.compile(r"Partitioned subgraph<(\d+)>, selected (\d+) ops, from a total of (\d+) ops\. "
                            r"resulted in (\d+) partitions\.")
_ERROR_FILE = re.compile(r"See (\S+\.error) for details")
_MISSING = (re.compile(r"([\w.+-]+\.so[\w.]*): cannot open shared object file"),
            re.compile(r"(lib[\w.+-]+\.so[\w.]*) not found"),
            re.compile(r'Cannot load library "[^"]*?([\w.+-]+\.so[\w.]*)"'))
_NOISE = ("npu_registry.cc", "gpu_registry.cc", "accelerator_registry.cc", "cpu_registry.cc", "environment.cc")


# ----------------------------------------------------------------------------- vendors

def _vendor(key: str) -> tuple[Any, Any]:
    """(target module, backend class) of a vendor key."""
    if key not in VENDORS:
        raise ValueError(f"unknown vendor {key!r} ({' | '.join(VENDORS)})")
    mod = VENDORS[key][0]
    target = importlib.import_module(f"ai_edge_litert.aot.vendors.{mod}.target")
    from ai_edge_litert.aot import prepare_for_npu

    backend = prepare_for_npu.resolve_backend({"backend_id": target.Target.backend_id()})
    return target, backend


def _soc_models(target: Any) -> dict[str, str]:
    """SoC enum member name -> the value the plugin is given (ALL left out: one SoC per build)."""
    return {m.name: m.value for m in target.SocModel if m.name != "ALL"}


def _resolve_soc(target: Any, soc: str) -> Any:
    for m in target.SocModel:
        if m.name != "ALL" and soc.upper() in (m.name.upper(), m.value.upper()):
            return m
    raise ValueError(f"unknown SoC {soc!r} for {target.Target.backend_id()}; known: {', '.join(_soc_models(target))}")


def _backend(key: str, soc: str) -> tuple[Any, Any]:
    """(vendor Target, backend instance) for one SoC, as aot_compile builds them."""
    from ai_edge_litert.aot.core import aot_types

    target_mod, backend_cls = _vendor(key)
    tgt = target_mod.Target(_resolve_soc(target_mod, soc))
    return tgt, backend_cls.create(aot_types.CompilationConfig(target=tgt).to_dict())


def _sdk_shim(key: str) -> dict[str, Any]:
    """Is the vendor SDK shim installed, and did its install-time vendor download land files?"""
    name = VENDORS[key][1]
    if name is None:
        return {"package": None, "installed": False, "sdk_path": None}
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return {"package": name, "installed": False, "sdk_path": None}
    try:
        path = mod.get_sdk_path()
    except Exception:  # noqa: BLE001 - the shims raise NotImplementedError off Linux x86
        path = None
    return {"package": name, "installed": True, "sdk_path": str(path) if path else None}


# ----------------------------------------------------------------------------- apply_plugin_main

def _captured_invocation(backend: Any, model: Path) -> dict[str, Any]:
    """What the vendor backend would pass to apply_plugin_main: captured, not run.

    The backends hold the vendor-specific library discovery (plugin dir, SDK shim paths,
    OpenVINO libs, MediaTek SDK version); reusing them keeps ``partition`` identical to
    what ``aot_compile`` runs.
    """
    from ai_edge_litert.aot.core import aot_types, apply_plugin

    captured: dict[str, Any] = {}

    class Capture(apply_plugin.ApplyPlugin):  # dispatches like ApplyPlugin in the backends
        def __call__(self, input_model, output_model, soc_manufacturer, soc_model,  # type: ignore[override]
                     sdk_libs_path=None, **kwargs):
            captured.update(soc_manufacturer=str(soc_manufacturer), soc_model=str(soc_model),
                            sdk_libs_path=sdk_libs_path, flags=kwargs)

    dummy = aot_types.Model.create_from_path(model)
    backend.call_component(dummy, dummy, Capture())
    return captured


def _plugin_command(key: str, soc: str, cmd: str, model: Path | None, out: Path | None) -> tuple[list[str], dict]:
    from ai_edge_litert.aot.core import apply_plugin, common

    _, backend = _backend(key, soc)
    c = _captured_invocation(backend, model or Path("unused.tflite"))
    args = [str(common.get_resource(apply_plugin._BINARY)), f"--cmd={cmd}",
            f"--soc_manufacturer={c['soc_manufacturer']}", f"--soc_model={c['soc_model']}", "--err=--"]
    if model is not None:
        args.append(f"--model={model}")
    args.append(f"--o={out}" if out is not None else "--o=--")
    args += [f"--{k}={v}" for k, v in c["flags"].items()]
    env = os.environ.copy()
    lib_path = common.construct_ld_library_path()
    if c["sdk_libs_path"]:
        lib_path = f"{c['sdk_libs_path']}{os.pathsep}{lib_path}" if lib_path else str(c["sdk_libs_path"])
    if lib_path:
        env["LD_LIBRARY_PATH"] = lib_path
    return args, env


def _run_plugin(key: str, soc: str, cmd: str, model: Path | None = None, out: Path | None = None,
                timeout: float = 600.0) -> tuple[int, str, list[str]]:
    args, env = _plugin_command(key, soc, cmd, model, out)
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          timeout=timeout)
    return proc.returncode, proc.stdout, args


def _errors(log: str) -> list[str]:
    """The lines of a plugin log that say what went wrong (deduplicated, in order)."""
    keep: list[str] = []
    for line in log.splitlines():
        s = line.strip().lstrip("└").strip()
        if not s or any(n in s for n in _NOISE):
            continue
        if ("ERROR" in s or "Failed" in s or "cannot open" in s or "not found" in s or "Cannot load" in s) \
                and s not in keep:
            keep.append(s)
    return keep


def _missing_libraries(log: str) -> list[str]:
    found: list[str] = []
    for rx in _MISSING:
        for m in rx.finditer(log):
            if m.group(1) not in found:
                found.append(m.group(1))
    return found


def _stats(log: str) -> list[dict[str, Any]]:
    return [{"subgraph": int(m[1]), "selected": int(m[2]), "total": int(m[3]), "partitions": int(m[4]),
             "line": m[0]} for m in PARTITION_LINE.finditer(log)]


def _plugin_info(key: str, soc: str) -> dict[str, Any]:
    """Does the vendor plugin load here (its vendor libraries found), and which SoCs does it name?"""
    rc, log, _ = _run_plugin(key, soc, "info", timeout=120.0)
    m = re.search(r'< LiteRtCompilerPlugin > "([^"]*)" \| (.*)', log)
    return {"loaded": m is not None, "socs": re.findall(r'"([^"]*)"', m[2]) if m else [],
            "returncode": rc, "errors": _errors(log)[-6:], "missing_libraries": _missing_libraries(log)}


# ----------------------------------------------------------------------------- model structure

def _ops_by_subgraph(path: Path) -> list[list[dict[str, Any]]]:
    """Per subgraph, each op's name and output tensor names (read with LiteRT's own schema)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for oc in model.operatorCodes or []:
        code = max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))
        if oc.customCode:
            codes.append(f"CUSTOM:{oc.customCode.decode('utf-8', 'replace')}")
        else:
            codes.append(names.get(code, f"BUILTIN_{code}"))
    result = []
    for sg in model.subgraphs or []:
        tensors = sg.tensors or []
        ops = []
        for op in sg.operators or []:
            outs = [tensors[i].name.decode("utf-8", "replace") if tensors[i].name else f"t{i}"
                    for i in (op.outputs if op.outputs is not None else []) if i >= 0]
            ops.append({"op": codes[op.opcodeIndex], "outputs": outs})
        result.append(ops)
    return result


# ----------------------------------------------------------------------------- ops

def _openvino_libs() -> str | None:
    """Where OpenVINO's NPU plugin looks for the NPU compiler libraries (Intel)."""
    import importlib.util

    spec = importlib.util.find_spec("openvino")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "libs")


def _version() -> dict[str, Any]:
    def v(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"version": v("ai-edge-litert"), "openvino": v("openvino")}


def _socs(req: dict) -> dict:
    vendors = {}
    for key in (req.get("vendors") or VENDORS):
        target, _ = _vendor(key)
        socs = _soc_models(target)
        entry = {"manufacturer": next(iter(target.SocManufacturer)).value, "backend_id": target.Target.backend_id(),
                 "socs": list(socs), "soc_values": socs, "sdk_shim": _sdk_shim(key)}
        if req.get("probe", True):
            entry["plugin"] = _plugin_info(key, next(iter(socs)))
        vendors[key] = entry
    return {"ok": True, "vendors": vendors}


def _compile(req: dict) -> dict:
    from ai_edge_litert.aot import aot_compile as aot_lib

    model = Path(req["model"])
    out = Path(req["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    tgt, _ = _backend(req["vendor"], str(req["soc"]))
    result = aot_lib.aot_compile(str(model), output_dir=str(out), target=tgt, keep_going=True)
    backends = []
    for backend, compiled in result.models_with_backend:
        stats = compiled.partition_stats.subgraph_stats if compiled.partition_stats else []
        backends.append({"target": backend.target_id, "ok": True, "error": None, "errors": [],
                         "missing_libraries": [], "output": str(compiled.path),
                         "partition_stats": [{"subgraph": s.subgraph_index, "selected": s.num_ops_offloaded,
                                              "total": s.num_total_ops, "partitions": s.num_partitions_offloaded}
                                             for s in stats]})
    for backend, error in result.failed_backends:
        log = ""
        m = _ERROR_FILE.search(error)
        if m and Path(m[1]).is_file():  # apply_plugin writes the tool's log to a temp file
            log = Path(m[1]).read_text(errors="replace")
            Path(m[1]).unlink(missing_ok=True)
        backends.append({"target": backend.target_id, "ok": False, "error": error, "errors": _errors(log)[-8:],
                         "missing_libraries": _missing_libraries(log), "output": None,
                         "partition_stats": _stats(log), "log_tail": log.splitlines()[-40:]})
    # A failed backend leaves an empty <model>_<target>_<component>.tflite behind.
    for f in out.glob("*.tflite"):
        if f.stat().st_size == 0:
            f.unlink()
    return {"ok": True, "backends": backends, "compilation_report": result.compilation_report(),
            "soc_model": str(tgt.soc_model.value)}


def _partition(req: dict) -> dict:
    model = Path(req["model"])
    out = Path(req["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    part = out / f"{model.stem}_{req['vendor']}_{req['soc']}_partitioned.tflite"
    part.unlink(missing_ok=True)
    rc, log, args = _run_plugin(req["vendor"], str(req["soc"]), "partition", model, part)
    resp: dict[str, Any] = {"returncode": rc, "args": args, "stats": _stats(log), "errors": _errors(log)[-8:],
                            "missing_libraries": _missing_libraries(log), "log_tail": log.splitlines()[-40:],
                            "output": None, "version": _version()["version"], "sdk_shim": _sdk_shim(req["vendor"]),
                            "openvino_libs": _openvino_libs()}
    # A plugin that cannot load its vendor libraries is an answer, not a protocol error:
    # ok stays True and ``partitioned`` says whether the tool ran through.
    if rc != 0 or not part.is_file() or part.stat().st_size == 0:
        part.unlink(missing_ok=True)
        return {**resp, "ok": True, "partitioned": False}
    subgraphs = _ops_by_subgraph(part)
    main = subgraphs[0] if subgraphs else []
    resp.update(ok=True, partitioned=True, output=str(part),
                main_ops=[o for o in main if o["op"] != "CUSTOM:DISPATCH_OP"],
                dispatch_ops=sum(1 for o in main if o["op"] == "CUSTOM:DISPATCH_OP"),
                dispatch_subgraphs=[{"index": i, "ops": ops} for i, ops in enumerate(subgraphs) if i > 0])
    return resp


def _tiny_model(path: Path) -> Path:
    """A one-op float ADD model: enough for a plugin to load its vendor libraries and partition."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str) -> Any:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 4], schema.TensorType.FLOAT32, 0
        return t

    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = schema.BuiltinOperator.ADD, 0, 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    sg = schema.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs = [tensor("a"), tensor("b"), tensor("y")], [0, 1], [2]
    sg.operators, sg.name = [op], "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sg], [schema.BufferT()]
    model.description = "edge-isp litert-aot probe"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


def _probe(req: dict) -> dict:
    """Can this vendor's plugin run here at all? (partition of a one-op model; no user model needed)"""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edge-isp-litert-probe-") as tmp:
        model = _tiny_model(Path(tmp) / "probe.tflite")
        resp = _partition({"model": str(model), "vendor": req["vendor"], "soc": req["soc"], "output_dir": tmp})
    return {"ok": True, "can_partition": resp["partitioned"], "errors": resp["errors"],
            "missing_libraries": resp["missing_libraries"], "sdk_shim": resp["sdk_shim"],
            "openvino_libs": resp["openvino_libs"],
            "soc_model": str(_backend(req["vendor"], str(req["soc"]))[0].soc_model.value)}


def main() -> int:
    return serve({"version": lambda req: {"ok": True, **_version()}, "socs": _socs, "probe": _probe,
                  "compile": _compile, "partition": _partition})


if __name__ == "__main__":
    sys.exit(main())
