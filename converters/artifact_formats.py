"""The artifact-format registry: one entry per kind of artifact ``convert`` builds.

An entry owns everything the rest of the product needs to know about its format: the
module that builds it from the exported ONNX graph (``build(ctx) -> BuiltArtifact``, with
the stage types of converters/stages.py), the bundle's file names, the host runtimes that
run it, the vendor compiler that decides its placement (``vendor_check`` in the same
module), and what ``--keep-float`` aliases mean in its graphs. The pipeline, the checker,
the bundle runner and the two-pass planner look formats up here instead of branching on
names. Builder modules are imported when a format is built, so reading the registry costs
nothing (timm's model entries work the same way: a name, its config, a builder).

TFLite has more than one way in from PyTorch: ``TFLITE_ROUTES`` (same idea, one entry per
route; ``build(ctx, why)``, ``gaps(ctx)``, ``available()`` in its module).

Adding a format: one ``_add(ArtifactFormat(...))`` here plus its module; a target row in
converters/targets.py then uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edge_isp._names import lookup
from edge_isp.errors import InputError

if TYPE_CHECKING:
    from edge_isp.converters.stages import BuildContext, BuiltArtifact


@dataclass(frozen=True)
class VendorCheck:
    """A vendor compiler decides this format's placement (not only a static op table)."""

    reads: tuple[str, ...]          # model formats ``check`` may hand it (a bundle's own, a bare file)
    soc_key: str | None = None      # key of the manifest's "npu" section naming the SoC it compiled for


@dataclass(frozen=True)
class ArtifactFormat:
    name: str
    module: str                     # edge_isp.converters.<module> (or a dotted path): build(ctx) [, vendor_check]
    artifact: str                   # the main file's name in a bundle
    summary: str
    # Host runtimes that run it (edge_isp.runtimes; the first is the default); () = the board only.
    runtimes: tuple[str, ...] = ()
    board_only: str = ""            # for a format no host runtime runs: what to use instead
    # A two-pass bundle's statistics part (converters/two_pass.py); () = no two-pass bundles.
    stats_files: tuple[str, ...] = ()
    # --keep-float names -> this format's op types (unlisted names are op types themselves).
    keep_float_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    vendor_check: VendorCheck | None = None
    # Built through the TFLite route (onnx2tf layout guesses, TFLite-level fits apply).
    tflite_based: bool = False
    # Bare model files ``check`` recognises by suffix.
    suffixes: tuple[str, ...] = ()

    @property
    def host_runs(self) -> bool:
        return bool(self.runtimes)

    @property
    def two_pass(self) -> bool:
        return bool(self.stats_files)

    def load(self) -> ModuleType:
        return _import(self.module)

    def build(self, ctx: BuildContext) -> BuiltArtifact:
        return self.load().build(ctx)


def _import(module: str) -> ModuleType:
    """A builder module: ours by short name, or any importable dotted path (a plugin's)."""
    return importlib.import_module(module if "." in module else f"edge_isp.converters.{module}")


FORMATS: dict[str, ArtifactFormat] = {}


def _add(fmt: ArtifactFormat) -> None:
    FORMATS[fmt.name] = fmt


# "--keep-float norm" means the normalisation layers: in OpenVINO the MVN op type; in TFLite
# the InstanceNorm subgraphs, found in the float model (tflite.norm_island_nodes), not op types.
_NORM_TFLITE = {"norm": ()}

_add(ArtifactFormat("onnx", "onnx_export", "model.onnx", "the exported ONNX graph (ONNX Runtime)",
                    runtimes=("onnxruntime",), stats_files=("stats.onnx",), suffixes=(".onnx",)))
_add(ArtifactFormat("tflite", "tflite_build", "model.tflite", "TFLite flatbuffer (LiteRT / tflite-runtime)",
                    runtimes=("litert", "tflite-runtime"), stats_files=("stats.tflite",),
                    keep_float_aliases=_NORM_TFLITE, tflite_based=True, suffixes=(".tflite",)))
_add(ArtifactFormat("openvino", "openvino_ir", "model.xml", "OpenVINO IR (.xml + .bin)",
                    runtimes=("openvino",), stats_files=("stats.xml", "stats.bin"),
                    keep_float_aliases={"norm": ("MVN",)}, suffixes=(".xml",)))
_add(ArtifactFormat("vela", "vela", "model.tflite", "INT8 TFLite plus its Arm Ethos-U (Vela) compilation",
                    runtimes=("litert", "tflite-runtime"), keep_float_aliases=_NORM_TFLITE,
                    vendor_check=VendorCheck(("vela", "tflite")), tflite_based=True))
_add(ArtifactFormat("rknn", "rknn", "model.rknn", "Rockchip NPU model (rknn-toolkit2)",
                    board_only="a .rknn model runs on a Rockchip board with rknn-toolkit-lite2",
                    vendor_check=VendorCheck(("rknn", "onnx"), soc_key="platform")))
_add(ArtifactFormat("litert-aot", "litert_aot", "model.tflite",
                    "INT8 TFLite plus its ahead-of-time compilation by a LiteRT NPU plugin",
                    runtimes=("litert", "tflite-runtime"), keep_float_aliases=_NORM_TFLITE,
                    vendor_check=VendorCheck(("litert-aot", "tflite"), soc_key="soc"), tflite_based=True))


def get_format(name: str) -> ArtifactFormat:
    return lookup(FORMATS, name, "artifact format")


def format_of_file(suffix: str) -> str | None:
    """The format a bare model file's suffix names (``check``), or None."""
    return next((f.name for f in FORMATS.values() if suffix.lower() in f.suffixes), None)


def two_pass_formats() -> tuple[str, ...]:
    return tuple(name for name, f in FORMATS.items() if f.two_pass)


# ----------------------------------------------------------------------------- TFLite routes

@dataclass(frozen=True)
class TfliteRoute:
    """One way from the exported model to a TFLite file. Its module has ``build(ctx, why)``,
    ``gaps(ctx) -> str`` (what it cannot do for this conversion; "" = nothing) and
    ``available() -> bool`` (its toolchain is installed)."""

    name: str
    module: str                     # as ArtifactFormat.module
    summary: str
    # auto takes this route where the default one would guess a layout wrong or run out of
    # memory (tflite_build.choose_route), when it is installed and can take the conversion.
    fallback: bool = False

    def load(self) -> ModuleType:
        return _import(self.module)


TFLITE_ROUTES: dict[str, TfliteRoute] = {
    "onnx2tf": TfliteRoute("onnx2tf", "tflite", "ONNX -> TF SavedModel -> TFLite (guesses NHWC layouts from shapes)"),
    "litert-torch": TfliteRoute("litert-torch", "litert_torch",
                                "PyTorch -> StableHLO -> TFLite in its own toolchain (keeps the NCHW interface)",
                                fallback=True),
}
DEFAULT_ROUTE = "onnx2tf"


def fallback_routes() -> list[str]:
    return [name for name, route in TFLITE_ROUTES.items() if route.fallback and name != DEFAULT_ROUTE]


def route_choices() -> tuple[str, ...]:
    return ("auto", *TFLITE_ROUTES)


def check_route(route: str) -> None:
    if route not in route_choices():
        raise InputError(f"--route {route!r} is not one of {', '.join(route_choices())}")


def route_module(route: str) -> Any:
    check_route(route)
    return TFLITE_ROUTES[route].load()


__all__ = ["DEFAULT_ROUTE", "FORMATS", "TFLITE_ROUTES", "ArtifactFormat", "TfliteRoute", "VendorCheck",
           "check_route", "fallback_routes", "format_of_file", "get_format", "route_choices", "route_module", "two_pass_formats"]
