"""Isolated toolchains: vendor compilers that cannot share edge-isp's environment.

Each toolchain is a row (pip requirements + a worker script shipped in this package). It is
installed on request (``edge-isp toolchain install NAME``) into its own venv under
``$EDGE_ISP_TOOLCHAINS`` (default ``~/.cache/edge-isp/toolchains``)/NAME, and called as a
subprocess: the env's Python runs the worker, which reads one JSON request on stdin and
writes one JSON response on stdout (schemas ``edge-isp/toolchain-request@1`` /
``edge-isp/toolchain-response@1``). Missing environments, timeouts, crashes and error
responses all become ``ToolchainError`` with what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp._names import lookup
from edge_isp.errors import EXIT_MISSING_DEPENDENCY, EdgeIspError

REQUEST_SCHEMA = "edge-isp/toolchain-request@1"
RESPONSE_SCHEMA = "edge-isp/toolchain-response@1"
MARKER = "edge-isp-toolchain.json"
INSTALL_TIMEOUT_S = 900.0


class ToolchainError(EdgeIspError):
    """An isolated toolchain is missing, failed, timed out or answered garbage."""

    exit_code = EXIT_MISSING_DEPENDENCY


@dataclass(frozen=True)
class Toolchain:
    name: str
    requirements: tuple[str, ...]   # pip requirement strings, pinned
    package: str                    # distribution whose version is reported
    worker: str                     # file in the edge_isp package run by the env's python
    summary: str
    # Further pip argument lists run in order after ``requirements`` (e.g. a ``--no-deps``
    # install of a package whose own pins would drag in a CUDA torch).
    steps: tuple[tuple[str, ...], ...] = ()
    # Optional add-ons installed on request (``--addon NAME``): name -> pip arguments, e.g.
    # a vendor SDK shim that downloads the vendor's compiler.
    addons: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ToolchainStatus:
    name: str
    installed: bool
    version: str | None
    path: Path
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "installed": self.installed, "version": self.version, "path": str(self.path),
                "summary": self.summary}


_TOOLCHAINS: dict[str, Toolchain] = {}


def _add(t: Toolchain) -> None:
    _TOOLCHAINS[t.name] = t


_add(Toolchain("vela", ("ethos-u-vela==5.2.0",), "ethos-u-vela", "toolchain_vela_worker.py",
               "Arm Vela compiler for Ethos-U55/U65/U85 NPUs (ethos-u-vela)"))

# rknn-toolkit2 pins torch<=2.4.0 (a multi-GB CUDA download): its real requirements are
# installed first with the local CPU torch, then the toolkit itself with --no-deps. It
# imports pkg_resources (setuptools<81); opencv headless provides the same cv2 without libGL.
_add(Toolchain("rknn", ("torch==2.13.0", "numpy==1.26.4", "onnx==1.18.0", "protobuf==4.25.4",
                        "onnxruntime==1.26.0", "scipy==1.17.1", "opencv-python-headless==4.11.0.86",
                        "psutil==7.2.2", "ruamel.yaml==0.19.1", "tqdm==4.70.1", "fast-histogram==0.14",
                        "setuptools<81"),
               "rknn-toolkit2", "toolchain_rknn_worker.py",
               "Rockchip rknn-toolkit2 for RK3588/RK3576/RK3566/RV1106 NPUs (compiler + host simulator)",
               steps=(("--no-deps", "rknn-toolkit2==2.5.0"),)))

# LiteRT NPU ahead-of-time compilation: ai-edge-litert ships apply_plugin_main and the vendor
# compiler plugins; the Intel plugin links libopenvino.so.2631, hence openvino==2026.3.1.
# The vendor compilers themselves are not on PyPI: each add-on is a shim whose build step
# downloads the vendor SDK (fails offline; some fail silently), so it is never cached by pip
# and always rebuilt.
_LITERT_SDK = ("--no-cache-dir", "--force-reinstall", "--no-deps")
_add(Toolchain("litert-aot", ("ai-edge-litert==2.3.0", "openvino==2026.3.1"), "ai-edge-litert",
               "toolchain_litert_aot_worker.py",
               "LiteRT NPU AOT compiler plugins for Intel, Qualcomm, MediaTek, Google Tensor NPUs (ai-edge-litert)",
               addons={"intel": (*_LITERT_SDK, "ai-edge-litert-sdk-intel==2.3.0"),
                       "qualcomm": (*_LITERT_SDK, "ai-edge-litert-sdk-qualcomm==2.3.0"),
                       "mediatek": (*_LITERT_SDK, "ai-edge-litert-sdk-mediatek==2.3.0"),
                       "google-tensor": (*_LITERT_SDK, "ai-edge-litert-sdk-google-tensor==2.3.0")}))


# litert-torch converts PyTorch straight to TFLite (torch.export -> StableHLO -> TFLite), with
# no ONNX layout guessing. It pins ai-edge-litert 2.3 and numpy 2.4, which TensorFlow 2.19
# (onnx2tf's) cannot share: its own env. The program travels as a torch.export archive, so
# the same torch (2.13, CPU) on both sides.
_add(Toolchain("litert-torch", ("torch==2.13.0", "litert-torch==0.10.0"), "litert-torch",
               "toolchain_litert_torch_worker.py",
               "LiteRT-Torch: PyTorch -> TFLite without ONNX (any input size; the route around onnx2tf's layout guess)"))


def get_toolchain(name: str) -> Toolchain:
    return lookup(_TOOLCHAINS, name, "toolchain")


def toolchains_root() -> Path:
    root = os.environ.get("EDGE_ISP_TOOLCHAINS")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "edge-isp" / "toolchains"


def env_path(name: str) -> Path:
    return toolchains_root() / get_toolchain(name).name


def _python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _marker(env: Path) -> dict[str, Any] | None:
    try:
        return json.loads((env / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def status(name: str) -> ToolchainStatus:
    tc = get_toolchain(name)
    env = env_path(name)
    marker = _marker(env)
    ok = marker is not None and _python(env).exists()
    return ToolchainStatus(tc.name, ok, marker.get("version") if ok and marker else None, env, tc.summary)


def list_toolchains() -> list[ToolchainStatus]:
    return [status(n) for n in sorted(_TOOLCHAINS)]


def install(name: str, force: bool = False, timeout: float = INSTALL_TIMEOUT_S,
            addons: tuple[str, ...] = ()) -> ToolchainStatus:
    """Create the toolchain's venv and pip-install its pinned requirements (atomic: all or nothing).

    ``addons`` (names from the toolchain's ``addons``) are installed into the existing env
    (creating it first when needed); a failed add-on leaves the env as it was.
    """
    tc = get_toolchain(name)
    env = env_path(name)
    for addon in addons:
        if addon not in tc.addons:
            known = ", ".join(sorted(tc.addons)) or "none"
            raise ToolchainError(f"the {name} toolchain has no add-on {addon!r} (known: {known})")
    if status(name).installed and not force:
        _install_addons(tc, env, addons, timeout)
        return status(name)
    env.parent.mkdir(parents=True, exist_ok=True)
    tmp = env.with_name(env.name + ".installing")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _checked([sys.executable, "-m", "venv", str(tmp)], timeout, f"creating the venv for {name}")
        for args in (tc.requirements, *tc.steps):
            _checked([str(_python(tmp)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
                     timeout, f"pip install {' '.join(args)}")
        (tmp / MARKER).write_text(json.dumps({"name": tc.name, "requirements": list(tc.requirements)}))
        # Ask the env itself (the worker) for the version it really has.
        version = _call(_python(tmp), tc, {"op": "version"}, 120.0)["version"]
        (tmp / MARKER).write_text(json.dumps({"name": tc.name, "requirements": list(tc.requirements),
                                              "version": version}))
        shutil.rmtree(env, ignore_errors=True)
        tmp.rename(env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _install_addons(tc, env, addons, timeout)
    return status(name)


def _install_addons(tc: Toolchain, env: Path, addons: tuple[str, ...], timeout: float) -> None:
    marker = _marker(env) or {}
    for addon in addons:
        args = tc.addons[addon]
        try:
            _checked([str(_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
                     timeout, f"installing add-on {addon} (pip install {' '.join(args)})")
        except ToolchainError as exc:
            raise ToolchainError(f"{exc}; vendor SDK add-ons download the vendor's SDK from the vendor's site "
                                 "while installing, so that site must be reachable from this machine") from None
        marker["addons"] = sorted({*marker.get("addons", []), addon})
    if addons:
        (env / MARKER).write_text(json.dumps(marker))


def _checked(cmd: list[str], timeout: float, what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what} did not finish within {timeout:.0f} s; check the network / package index "
                             "and retry") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ToolchainError(f"{what} failed (exit {proc.returncode}): {tail}")


def run(name: str, request: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Send one request to the toolchain's worker and return its (ok) response."""
    tc = get_toolchain(name)
    st = status(name)
    if not st.installed:
        raise ToolchainError(f"the {name} toolchain is not installed (looked in {st.path}); "
                             f"run 'edge-isp toolchain install {name}' (or set EDGE_ISP_TOOLCHAINS to where it is)")
    return _call(_python(st.path), tc, request, timeout)


def _call(python: Path, tc: Toolchain, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    worker = Path(__file__).with_name(tc.worker)
    payload = json.dumps({"schema": REQUEST_SCHEMA, **request})
    op = request.get("op")
    try:
        proc = subprocess.run([str(python), str(worker)], input=payload, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"the {tc.name} toolchain did not answer {op!r} within {timeout:g} s; "
                             "the model may be too large for it, or raise the timeout") from None
    except OSError as exc:
        raise ToolchainError(f"cannot start the {tc.name} toolchain ({exc}); reinstall it with "
                             f"'edge-isp toolchain install {tc.name} --force'") from exc
    try:
        resp = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise ToolchainError(f"the {tc.name} toolchain crashed on {op!r} (exit {proc.returncode}): {tail or 'no output'}; "
                             f"reinstall with 'edge-isp toolchain install {tc.name} --force'") from None
    if resp.get("schema") != RESPONSE_SCHEMA:
        raise ToolchainError(f"the {tc.name} toolchain answered schema {resp.get('schema')!r}, expected "
                             f"{RESPONSE_SCHEMA!r}; reinstall with 'edge-isp toolchain install {tc.name} --force'")
    if isinstance(resp.get("peak_rss_mb"), (int, float)):
        from edge_isp._resources import note_child_peak

        note_child_peak(resp["peak_rss_mb"])
    if not resp.get("ok"):
        raise ToolchainError(f"{tc.name} failed on {op!r}: {resp.get('error') or 'no reason given'}")
    return resp
