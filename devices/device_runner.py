"""What runs a model on a device, and getting it there: LiteRT's benchmark_model for the
device's ABI (ELF machine checked), or ``litert_runner.py`` (this package's stand-in that
prints benchmark_model's output) on a board's own Python with ai-edge-litert / tflite-runtime
/ OpenVINO. Every value that reaches the device shell is quoted."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp.converters.bundle import file_sha256
from edge_isp.devices.config import cached_binary
from edge_isp.devices.errors import BenchmarkBinaryError
from edge_isp.devices.transport import Progress, quote
from edge_isp.errors import InputError

RUNNER_SCRIPT = Path(__file__).with_name("litert_runner.py")

# ELF e_machine values and the ABI names devices report for them.
_ELF_MACHINE = {183: "aarch64", 40: "arm", 62: "x86_64", 3: "x86", 243: "riscv64"}
_ABI_FAMILY = {"arm64-v8a": "aarch64", "aarch64": "aarch64", "arm64": "aarch64", "armeabi-v7a": "arm",
               "armeabi": "arm", "armv7l": "arm", "armv8l": "arm", "x86_64": "x86_64", "amd64": "x86_64",
               "x86": "x86", "i686": "x86", "riscv64": "riscv64"}


def abi_family(abi: str) -> str:
    return _ABI_FAMILY.get(abi.strip().lower(), abi.strip().lower())


def binary_abi(path: Path) -> str:
    """The ABI family of a local executable: ELF e_machine, or 'script' for #! files."""
    head = Path(path).read_bytes()[:20]
    if head.startswith(b"#!"):
        return "script"
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise BenchmarkBinaryError(f"{path} is neither an ELF executable nor a script; pass LiteRT's benchmark_model")
    little = head[5] == 1
    machine = int.from_bytes(head[18:20], "little" if little else "big")
    return _ELF_MACHINE.get(machine, f"elf-machine-{machine}")


@dataclass(frozen=True)
class Runner:
    """What runs the model on the device, and why that one (reported with every result)."""

    runtime: str             # benchmark_model | python-litert | python-tflite-runtime | python-openvino
    prefix: str              # the device command the benchmark flags are appended to
    source: str              # --benchmark-binary | remembered | --python | default
    path: str                # the local benchmark_model, or the board's Python command
    family: str = ""         # the device's ABI family (where a binary is remembered)

    def label(self, runtime: str | None = None) -> str:
        return f"{runtime or self.runtime} ({self.path}, {self.source})"


def _python_command(py: str) -> str:
    """The board's Python as shell words, each quoted: options allowed, shell syntax not."""
    try:
        words = shlex.split(py)
    except ValueError as exc:
        raise InputError(f"--python {py!r} cannot be split into words ({exc})") from exc
    if not words:
        raise InputError("--python is empty; name the Python on the board, e.g. python3")
    return shlex.join(words)


def push_if_changed(t: Any, local: Path, remote: str, progress: Progress | None, sha: str | None = None) -> bool:
    """Push ``local`` unless the device already holds it (size and a .sha256 beside it match)."""
    sha = sha or file_sha256(local)
    st = t.stat(remote)
    if st is not None and st.size == local.stat().st_size:
        res = t.run(f"cat {quote(remote + '.sha256')} 2>/dev/null")
        if res.ok and res.stdout.strip() == sha:
            return False
    t.push(local, remote, progress=progress)
    t.check(f"printf '%s\\n' {quote(sha)} > {quote(remote + '.sha256')}")
    return True

def choose_binary(opts: Any, family: str) -> tuple[Path | None, str]:
    """(benchmark_model, why) or (None, why python): an explicit flag beats the remembered binary."""
    if opts.runner == "auto" and opts.benchmark_binary is not None and opts.python is not None:
        raise InputError("--benchmark-binary and --python name two different runners; pass one of them, "
                         "or pick with --runner benchmark_model|python")
    if opts.runner == "python" or (opts.runner == "auto" and opts.python is not None):
        return None, "--python" if opts.python is not None else "default"
    if opts.benchmark_binary is not None:
        if not Path(opts.benchmark_binary).is_file():
            raise BenchmarkBinaryError(f"benchmark binary {opts.benchmark_binary} does not exist")
        return Path(opts.benchmark_binary), "--benchmark-binary"
    remembered = cached_binary(family)
    if remembered is not None and remembered.is_file():
        return remembered, "remembered"
    return None, "default"

def setup_runner(dev: Any, workdir: str, opts: Any, progress: Progress | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> Runner:
    """Put the runner on the device: a benchmark_model for its ABI, or this package's Python
    stand-in for the board's own LiteRT / OpenVINO."""
    info = dev.info
    family = abi_family(info.abi)
    binary, source = choose_binary(opts, family)
    if binary is not None:
        return _setup_binary(dev, workdir, binary, source, family, progress, log)
    if opts.runner == "benchmark_model" or (info.os == "android" and opts.runner == "auto"
                                                  and source == "default"):
        raise BenchmarkBinaryError(
            f"no benchmark_model for {family} known yet: download LiteRT's benchmark_model for "
            f"{'android_' if info.os == 'android' else 'linux_'}{family} and pass it once with "
            "--benchmark-binary PATH (edge-isp remembers it per ABI once it has run)")
    return _setup_python(dev, workdir, opts, source)

def _setup_binary(dev: Any, workdir: str, binary: Path, source: str, family: str, progress: Progress | None,
                  log: Callable[[str], None]) -> Runner:
    info, t = dev.info, dev.transport
    kind = binary_abi(binary)
    if kind not in ("script", family):
        raise BenchmarkBinaryError(
            f"{binary} ({source}) is built for {kind} but {info.label} is {info.abi or 'unknown'} ({family}); "
            f"download LiteRT's benchmark_model for {'android_' if info.os == 'android' else 'linux_'}"
            f"{'aarch64' if family == 'aarch64' else family}")
    if kind == "script":
        log(f"{binary} is a script, not an ELF binary: ABI not checked")
    remote = f"{workdir}/benchmark_model"
    if push_if_changed(t, binary, remote, progress):
        log(f"pushed {binary.name} to {remote}")
    t.check(f"chmod 755 {quote(remote)}")
    # exec: the backgrounded job's pid is the benchmark's own (its VmHWM is sampled)
    prefix = (f"cd {quote(workdir)} && export LD_LIBRARY_PATH={quote(workdir)} && "
              "exec ./benchmark_model")
    return Runner("benchmark_model", prefix, source, str(binary.resolve()), family)

def _setup_python(dev: Any, workdir: str, opts: Any, source: str) -> Runner:
    info, t = dev.info, dev.transport
    py = _python_command(opts.python or "python3")
    probe = t.run(f"{py} -c 'import ai_edge_litert' 2>/dev/null && echo litert || "
                       f"{{ {py} -c 'import tflite_runtime' 2>/dev/null && echo tflite-runtime; }} || "
                       f"{{ {py} -c 'import openvino' 2>/dev/null && echo openvino; }}")
    engine = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else ""
    if not engine:
        raise BenchmarkBinaryError(
            f"{info.label} has neither a known benchmark_model nor {py} with ai-edge-litert / tflite-runtime / "
            "openvino; pass --benchmark-binary (LiteRT linux_aarch64 build) or 'pip install ai-edge-litert' there")
    remote = f"{workdir}/litert_runner.py"
    push_if_changed(t, RUNNER_SCRIPT, remote, None)
    return Runner(f"python-{engine}", f"cd {quote(workdir)} && exec {py} {quote(remote)}", source, py)


__all__ = ["RUNNER_SCRIPT", "Runner", "abi_family", "binary_abi", "choose_binary", "push_if_changed", "setup_runner"]
