"""The artifact bundle: model file(s) plus manifest.json, written atomically.

The manifest is the contract later steps (check, bench, profile, gate) read.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_isp.errors import BundleError

MANIFEST = "manifest.json"
SCHEMA = "edge-isp/bundle@1"
_TOOLS = ("edge-isp", "torch", "onnx", "onnxruntime", "onnxscript", "onnx2tf", "tensorflow",
          "ai-edge-litert", "openvino", "nncf", "numpy")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest["artifact"]["file"]

    @property
    def target(self) -> str:
        return str(self.manifest["target"]["name"])

    @property
    def runtime(self) -> str:
        return str(self.manifest["target"]["runtime"])


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def load_bundle(path: Path) -> Bundle:
    """Open a bundle folder (or its manifest.json) and check its files are all there."""
    path = Path(path)
    folder = path.parent if path.name == MANIFEST else path
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} is not an edge-isp bundle (no {MANIFEST}); pass a folder made by 'edge-isp convert'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path} is not valid JSON ({exc}); re-run 'edge-isp convert'") from exc
    if manifest.get("schema") != SCHEMA:
        raise BundleError(f"{manifest_path} has schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    artifact = manifest.get("artifact", {})
    for name in [artifact.get("file", "")] + list(artifact.get("extra_files", [])):
        if not name or not (folder / name).is_file():
            raise BundleError(f"bundle {folder} is incomplete: {name or 'model file'} is missing; re-run 'edge-isp convert'")
    return Bundle(folder, manifest)
