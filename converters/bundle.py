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
    # Called inside an atomic_dir: the folder appears only once the manifest is complete.
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def is_bundle_dir(path: Path) -> bool:
    """True for a folder holding an edge-isp manifest (what ``--overwrite`` may replace)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("schema") == SCHEMA


_HEX = frozenset("0123456789abcdef")


def _plain_file_name(folder: Path, name: Any, what: str) -> str:
    """A manifest's file name must name a file inside the bundle: no paths, no tricks."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or any(ord(ch) < 32 for ch in name)):
        raise BundleError(f"bundle {folder}: {what} {name!r} is not a plain file name inside the bundle; "
                          f"the manifest was edited or damaged: re-run 'edge-isp convert'")
    return name


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def load_bundle(path: Path) -> Bundle:
    """Open a bundle folder (or its manifest.json) and check its files are all there.

    File names in the manifest must be plain names inside the folder and a recorded hash
    must be 64 hex digits: later steps put both into device shells and remote paths.
    """
    path = Path(path)
    folder = path.parent if path.name == MANIFEST else path
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{folder} is not an edge-isp bundle (no {MANIFEST}); pass a folder made by 'edge-isp convert'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
        raise BundleError(f"{manifest_path} cannot be read as JSON ({reason}); re-run 'edge-isp convert'") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        raise BundleError(f"{manifest_path} has schema {schema!r}, expected {SCHEMA!r}")
    artifact = manifest.get("artifact")
    if not isinstance(artifact, dict) or not isinstance(manifest.get("target"), dict):
        raise BundleError(f"{manifest_path} has no 'artifact'/'target' sections; re-run 'edge-isp convert'")
    extra = artifact.get("extra_files", [])
    if not isinstance(extra, list):
        raise BundleError(f"{manifest_path}: artifact.extra_files is not a list; re-run 'edge-isp convert'")
    names = [_plain_file_name(folder, artifact.get("file"), "artifact.file")]
    names += [_plain_file_name(folder, name, "artifact.extra_files entry") for name in extra]
    names += [_plain_file_name(folder, name, "tiling.stats_artifact.files entry") for name in stats_files(manifest)]
    for name in names:
        if not (folder / name).is_file():
            raise BundleError(f"bundle {folder} is incomplete: {name} is missing; re-run 'edge-isp convert'")
    sha = artifact.get("sha256")
    if sha is not None and not is_sha256(sha):
        raise BundleError(f"bundle {folder}: artifact.sha256 {str(sha)[:80]!r} is not a SHA-256 hex digest; "
                          f"the manifest was edited or damaged: re-run 'edge-isp convert'")
    return Bundle(folder, manifest)


def stats_files(manifest: dict[str, Any]) -> list[Any]:
    """The statistics part's files of a two-pass bundle (none for one artifact)."""
    tiling = manifest.get("tiling")
    if not isinstance(tiling, dict) or tiling.get("mode") != "two-pass":
        return []
    files = (tiling.get("stats_artifact") or {}).get("files") if isinstance(tiling.get("stats_artifact"), dict) else None
    if not isinstance(files, list) or not files:
        raise BundleError("a two-pass bundle's manifest names no statistics part (tiling.stats_artifact.files); "
                          "re-run 'edge-isp convert'")
    return files


def verify_bundle_files(bundle: Bundle) -> str:
    """The model file's SHA-256, checked against the manifest (and every other file the
    manifest hashes): a tampered bundle is refused before it is pushed or run."""
    artifact = bundle.manifest["artifact"]
    actual = file_sha256(bundle.model_file)
    expected = {artifact["file"]: artifact.get("sha256")}
    files = artifact.get("files_sha256") or {}
    if not isinstance(files, dict):
        raise BundleError(f"bundle {bundle.path}: artifact.files_sha256 is not an object; re-run 'edge-isp convert'")
    expected.update(files)
    unhashed = [name for name in stats_files(bundle.manifest) if name not in files]
    if unhashed:
        raise BundleError(f"bundle {bundle.path}: {', '.join(unhashed)} (two-pass statistics part) has no SHA-256 "
                          f"in the manifest; refusing to run it: re-run 'edge-isp convert'")
    for name, recorded in expected.items():
        if recorded is None:
            continue
        _plain_file_name(bundle.path, name, "artifact.files_sha256 entry")
        if not is_sha256(recorded):
            raise BundleError(f"bundle {bundle.path}: the SHA-256 recorded for {name} is not 64 hex digits; "
                              f"the manifest was edited or damaged: re-run 'edge-isp convert'")
        got = actual if name == artifact["file"] else file_sha256(bundle.path / name)
        if got != recorded:
            raise BundleError(f"bundle {bundle.path}: {name!r} does not match the SHA-256 in its manifest "
                              f"(sha256 {got[:12]}..., manifest {recorded[:12]}...): it changed after conversion; "
                              f"refusing to use it: re-run 'edge-isp convert'")
    return actual
