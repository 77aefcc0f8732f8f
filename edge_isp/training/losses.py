"""Training losses and weighted sums of them, named so recipes and the CLI can spell them.

``build_loss("l1+0.2*ssim")`` -> a callable ``loss(output, target) -> (total, parts)``.
Terms: ``l1``, ``mse``, ``ssim`` (1 - SSIM), ``ms-ssim`` (1 - MS-SSIM), ``colour`` (1 -
cosine similarity of RGB vectors, per pixel), ``vgg`` (perceptual: L1 of VGG-19 features;
the user supplies the weights file, nothing is downloaded).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.errors import InputError
from edge_isp.metrics_torch import ms_ssim_loss, ssim_loss

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(output, target)


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output, target)


def ssim_term(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ssim_loss(output, target, check_finite=False)


def ms_ssim_term(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM; falls back to 1 - SSIM below MS-SSIM's minimum size (small crops)."""
    from edge_isp.metrics import MS_SSIM_MIN_SIDE

    if min(output.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return ssim_term(output, target)
    return ms_ssim_loss(output, target, check_finite=False)


def colour_loss(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - cosine similarity between output and target RGB vectors, averaged over pixels."""
    cos = F.cosine_similarity(output, target, dim=1, eps=eps)
    return (1.0 - cos).mean()


# VGG-19 'features' layout (torchvision's indexing), built here so no torchvision is needed.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            cin = int(v)
    return nn.Sequential(*layers)


class VGGPerceptualLoss(nn.Module):
    """L1 between VGG-19 features (default: relu5_4, index 36, as PyNET) of output and target.

    ``weights``: a state dict of torchvision's ``vgg19().features`` (keys ``0.weight`` ...) or
    of a full ``vgg19()`` (keys ``features.0.weight`` ...), loaded with ``weights_only=True``.
    """

    def __init__(self, weights: str | Path, layer: int = 36) -> None:
        super().__init__()
        path = Path(weights)
        if not path.is_file():
            raise InputError(
                f"VGG weights {path} not found: the perceptual loss needs a local VGG-19 state "
                "dict (torchvision's vgg19 weights); pass --vgg-weights PATH (no downloads)"
            )
        features = _vgg19_features()
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items()
                 if not k.startswith("classifier.")}
        try:
            features.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{path} is not a VGG-19 state dict: {str(exc).splitlines()[0]}") from exc
        self.features = features[: layer + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f_out = self.features((output - self.mean) / self.std)
        with torch.no_grad():
            f_tgt = self.features((target - self.mean) / self.std)
        return F.l1_loss(f_out, f_tgt)


LOSSES: dict[str, LossFn] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "ssim": ssim_term,
    "ms-ssim": ms_ssim_term,
    "colour": colour_loss,
}
LOSS_NAMES = (*LOSSES, "vgg")

_TERM = re.compile(r"^\s*(?:(?P<w>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*\*\s*)?(?P<name>[a-z0-9-]+)\s*$")


def parse_loss_spec(spec: str) -> list[tuple[float, str]]:
    """``"l1+0.2*ssim"`` -> ``[(1.0, "l1"), (0.2, "ssim")]``; 'color' is accepted for 'colour'."""
    terms: list[tuple[float, str]] = []
    for part in spec.split("+"):
        m = _TERM.match(part.lower())
        if not m:
            raise InputError(f"cannot read loss term {part!r} in {spec!r}; write e.g. 'l1+0.2*ssim'")
        name = m.group("name").replace("color", "colour").replace("msssim", "ms-ssim")
        if name not in LOSS_NAMES:
            raise InputError(f"unknown loss {name!r}; use {', '.join(LOSS_NAMES)}")
        terms.append((float(m.group("w") or 1.0), name))
    return terms


class CombinedLoss(nn.Module):
    """A weighted sum of named terms; ``forward`` returns (total, {name: value})."""

    def __init__(self, spec: str, *, vgg_weights: str | Path | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.terms = parse_loss_spec(spec)
        self.vgg: VGGPerceptualLoss | None = None
        if any(name == "vgg" for _, name in self.terms):
            if vgg_weights is None:
                raise InputError(
                    f"loss {spec!r} uses the VGG perceptual term, which needs local weights: "
                    "pass --vgg-weights PATH to a VGG-19 state dict (nothing is downloaded), "
                    "or drop the 'vgg' term"
                )
            self.vgg = VGGPerceptualLoss(vgg_weights)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total = output.new_zeros(())
        parts: dict[str, float] = {}
        for weight, name in self.terms:
            fn = self.vgg if name == "vgg" else LOSSES[name]
            value = fn(output, target)  # type: ignore[misc]
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts


def build_loss(spec: str, *, vgg_weights: str | Path | None = None) -> CombinedLoss:
    return CombinedLoss(spec, vgg_weights=vgg_weights)
