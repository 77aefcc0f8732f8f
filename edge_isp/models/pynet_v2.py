"""PyNET-V2 Mobile and the three lighter variants from its paper, in PyTorch.

Source
    Ignatov, Malivenko, Timofte et al., "PyNET-V2 Mobile: Efficient On-Device Photo
    Processing With Neural Networks" (ICPR 2022), section III (architecture) and
    section IV-E (NoNorm / Slim / Slim+). Layer structure read from the authors' TF2
    Keras code, gmalivenko/PyNET-v2 ``model.py``; this is an independent re-implementation.

Graph (packed input of side H, i.e. a 2H mosaic)
    encoder   3x3 conv 4->32 (H), 2x2/2 valid 32->64 (H/2), 2x2/2 valid 64->128 (H/4)
    level 3   grouped residual (g4, n2) -> +SAM -> +CAM -> 1x1 -> depth-to-space x2
    level 2   upsample(128->64) + 3x3 conv(enc2) -> 1x1 residual -> grouped residual
              (g2, n3) -> +CAM -> 1x1 -> depth-to-space x2
    level 1   upsample(64->32) + 3x3 conv(enc1) -> 1x1 residual -> grouped residual
              (g4, n1) -> grouped residual (g2, n1) -> 1x1 32->16 + PReLU ->
              depth-to-space x2 -> 3x3 conv 4->3
    every output is ``tanh(x) * 0.58 + 0.5``.

``level`` picks the output: 1 = full mosaic resolution (2H), 2 = packed resolution (H),
3 = half the packed resolution (H/2). Only the layers that output needs are built, so
the parameter counts equal the reference Keras sub-models (930,255 / 892,300 / 631,372).

Deviations and choices
    - ``padding="zero"`` swaps every reflect pad for zero padding (same parameters):
      TFLite turns reflect pads into MIRROR_PAD, which NNAPI only accepts from feature
      level 7. The reference uses reflect padding (the default here).
    - Instance norm uses eps=1e-3 and affine scale/shift, as tensorflow-addons'
      ``InstanceNormalization`` does; it sits on the even-indexed groups of every grouped
      residual block only, as in the reference.
    - Bilinear upsampling uses half-pixel centres (``align_corners=False``), which is
      what Keras ``UpSampling2D(interpolation="bilinear")`` computes.
    - SAM and CAM blocks include their residual ``+ x`` (the reference adds it at the
      call site).
    - The reference's unused "level 0" generator (it returns ``None``) is not built.
    - Weights use PyTorch's default initialisation (PReLU slope 0.25; Keras starts at 0).
    - NoNorm: the paper only says "without instance normalization layers"; dropping
      every IN layer gives 929,743 parameters (inferred; no public code).
    - Slim and Slim+ have no public code; this is our reading of section IV-E:
        Slim  - the first conv is a 3x3 stride-2 conv, every width is doubled
                (64/128/256, level-1 head 64->32 -> depth-to-space -> 3x3 8->12), and an
                extra depth-to-space x2 at the end restores the resolution. The level-2/3
                heads use one depth-to-space x4 (same as two x2 shuffles up to a
                permutation of the 1x1 conv's output channels).
        Slim+ - Slim whose upsampling block is bilinear x2 -> 3x3 *depthwise* conv ->
                PReLU. A depthwise conv cannot halve the channels, so a 1x1 conv does it
                first, at the low resolution (a 1x1 conv commutes exactly with bilinear
                resampling, so it is cheapest there).
      Slim needs packed sides that are multiples of 8 and at least 56.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalInstanceNorm2d, GlobalPool

_PAD_MODES = {"reflect": "reflect", "zero": "zeros"}
_IN_EPS = 1e-3  # tensorflow-addons InstanceNormalization default


def _conv(
    cin: int,
    cout: int,
    k: int,
    *,
    pad: str,
    stride: int = 1,
    same: bool = True,
    norm: bool = False,
    act: bool = True,
    groups: int = 1,
) -> nn.Sequential:
    """k x k conv (padded by k//2 when ``same``, else valid) -> optional IN -> PReLU."""
    padding = k // 2 if same else 0
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding, groups=groups, padding_mode=pad)
    ]
    if norm:
        layers.append(GlobalInstanceNorm2d(cout, eps=_IN_EPS, affine=True))
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * 0.58 + 0.5


class _GroupedResidual(nn.Module):
    """Split channels into groups; n residual 3x3 convs per group; 1x1 merge; + input."""

    def __init__(self, ch: int, groups: int, n: int, norm: bool, pad: str) -> None:
        super().__init__()
        self.step = ch // groups
        # IN only on every second group (index 0, 2, ...), as the reference does.
        self.branches = nn.ModuleList(
            nn.ModuleList(
                _conv(self.step, self.step, 3, pad=pad, norm=norm and g % 2 == 0)
                for _ in range(n)
            )
            for g in range(groups)
        )
        self.merge = _conv(ch, ch, 1, pad=pad, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for part, convs in zip(torch.split(x, self.step, dim=1), self.branches):
            for conv in convs:
                part = conv(part) + part
            outs.append(part)
        return self.merge(torch.cat(outs, dim=1)) + x


class _SpatialAttention(nn.Module):
    """SAM: 3x3 conv, gated by sigmoid(5x5 depthwise conv); plus the input."""

    def __init__(self, ch: int, pad: str) -> None:
        super().__init__()
        self.conv = _conv(ch, ch, 3, pad=pad)
        self.gate = _conv(ch, ch, 5, pad=pad, act=False, groups=ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out * torch.sigmoid(self.gate(out)) + x


class _ChannelAttention(nn.Module):
    """CAM: 3x3 conv, scaled per channel from a stride-3 pyramid + global mean; + input.

    The two stride-3 valid convs need feature maps of at least 7 px a side.
    """

    def __init__(self, ch: int, pad: str) -> None:
        super().__init__()
        self.conv = _conv(ch, ch, 3, pad=pad)
        self.reduce = nn.Sequential(
            _conv(ch, ch, 1, pad=pad, stride=3, same=False),
            _conv(ch, ch, 3, pad=pad, stride=3, same=False),
        )
        self.excite = nn.Sequential(
            _conv(ch, ch, 1, pad=pad), _conv(ch, ch, 1, pad=pad, act=False)
        )
        self.global_pool = GlobalPool()  # the global read: exact two-pass tiling injects it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        att = self.global_pool(self.reduce(out))
        return out * torch.sigmoid(self.excite(att)) + x


class _Upsample(nn.Module):
    """Bilinear x2 (half-pixel centres) -> 3x3 conv -> PReLU.

    ``depthwise`` (Slim+): 1x1 conv cin->cout at low resolution, bilinear x2, then a 3x3
    depthwise conv -> PReLU.
    """

    def __init__(self, cin: int, cout: int, pad: str, depthwise: bool = False) -> None:
        super().__init__()
        self.pre = _conv(cin, cout, 1, pad=pad, act=False) if depthwise else nn.Identity()
        mid = cout if depthwise else cin
        self.conv = _conv(mid, cout, 3, pad=pad, groups=cout if depthwise else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.pre(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(x)


class _Residual1x1(nn.Module):
    def __init__(self, ch: int, pad: str) -> None:
        super().__init__()
        self.conv = _conv(ch, ch, 1, pad=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class _Head(nn.Module):
    """Level-2/3 output: 1x1 conv to 3*r*r channels -> depth-to-space r -> tanh."""

    def __init__(self, cin: int, r: int, pad: str) -> None:
        super().__init__()
        self.conv = _conv(cin, 3 * r * r, 1, pad=pad, act=False)
        self.shuffle = nn.PixelShuffle(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_rgb(self.shuffle(self.conv(x)))


class _Level1Head(nn.Module):
    """1x1 conv + PReLU -> depth-to-space x2 -> 3x3 conv -> [Slim: depth-to-space x2]."""

    def __init__(self, cin: int, slim: bool, pad: str) -> None:
        super().__init__()
        r = 2 if slim else 1
        self.expand = _conv(cin, cin // 2, 1, pad=pad)
        self.out = nn.Sequential(
            nn.PixelShuffle(2), _conv(cin // 8, 3 * r * r, 3, pad=pad, act=False)
        )
        self.extra = nn.PixelShuffle(2) if slim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_rgb(self.extra(self.out(self.expand(x))))


class PyNetV2Mobile(nn.Module):
    """PyNET-V2 Mobile: packed Bayer (N,4,H,W) in [0,1] -> RGB at the chosen level.

    Output (N,3,2H,2W) at level 1, (N,3,H,W) at level 2, (N,3,H/2,W/2) at level 3.
    H and W must be multiples of 4 (8 when ``slim``) and at least 28 (56 when ``slim``).
    """

    def __init__(
        self,
        *,
        level: int = 1,
        instance_norm: bool = True,
        padding: str = "reflect",
        slim: bool = False,
        depthwise_upsample: bool = False,
    ) -> None:
        super().__init__()
        if level not in (1, 2, 3) or isinstance(level, bool):
            raise InputError(f"level must be 1, 2 or 3 (got {level!r}).")
        if padding not in _PAD_MODES:
            raise InputError(f"padding must be 'reflect' or 'zero' (got {padding!r}).")
        pad, norm = _PAD_MODES[padding], instance_norm
        self.level = level
        c1 = 64 if slim else 32
        c2, c3 = 2 * c1, 4 * c1
        # Slim runs everything at half resolution, so each head shuffles one step more.
        r = 4 if slim else 2

        self.enc1 = _conv(4, c1, 3, pad=pad, stride=2 if slim else 1)
        self.enc2 = _conv(c1, c2, 2, pad=pad, stride=2, same=False)
        self.enc3 = _conv(c2, c3, 2, pad=pad, stride=2, same=False)
        self.body3 = nn.Sequential(
            _GroupedResidual(c3, 4, 2, norm, pad),
            _SpatialAttention(c3, pad),
            _ChannelAttention(c3, pad),
        )
        if level == 3:
            self.head = _Head(c3, r, pad)
            return

        self.up2 = _Upsample(c3, c2, pad, depthwise_upsample)
        self.skip2 = _conv(c2, c2, 3, pad=pad)
        self.body2 = nn.Sequential(
            _Residual1x1(c2, pad),
            _GroupedResidual(c2, 2, 3, norm, pad),
            _ChannelAttention(c2, pad),
        )
        if level == 2:
            self.head = _Head(c2, r, pad)
            return

        self.up1 = _Upsample(c2, c1, pad, depthwise_upsample)
        self.skip1 = _conv(c1, c1, 3, pad=pad)
        self.body1 = nn.Sequential(
            _Residual1x1(c1, pad),
            _GroupedResidual(c1, 4, 1, norm, pad),
            _GroupedResidual(c1, 2, 1, norm, pad),
        )
        self.head = _Level1Head(c1, slim, pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ``self.level`` is fixed at build time, so these branches are static for export.
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        f = self.body3(self.enc3(e2))
        if self.level == 3:
            return self.head(f)
        f = self.body2(self.up2(f) + self.skip2(e2))
        if self.level == 2:
            return self.head(f)
        return self.head(self.body1(self.up1(f) + self.skip1(e1)))


_SOURCE = (
    "Ignatov et al., PyNET-V2 Mobile (ICPR 2022); "
    "https://github.com/gmalivenko/PyNET-v2 (TF2 Keras model.py)"
)
_LEVEL_NOTE = (
    "Option level=1|2|3: 1 = full mosaic resolution (output_scale 1.0), 2 = packed "
    "resolution (0.5), 3 = half the packed resolution (0.25); only level 1 matches "
    "output_scale. padding='reflect' (reference) or 'zero' (same parameter count; "
    "reflect pads become MIRROR_PAD, which NNAPI supports only from feature level 7). "
    "The default size is a small 320x480 mosaic for fast conversion (at 256x256 some "
    "activations have as many channels as rows, which onnx2tf mistakes for a layout); the MAI 2021 "
    "deployment shape is a 1088x1920 mosaic (packed 544x960)."
)


@register_model(
    "pynet-v2-mobile",
    summary="PyNET-V2 Mobile: 3-level inverted pyramid with grouped residuals, SAM and CAM.",
    source=_SOURCE,
    output_scale=1.0,
    input_multiple=4,
    default_input_size=(320, 480),
    min_packed_size=28,
    reference_params=930_255,
    reference_options={"level": 1},
    notes=_LEVEL_NOTE
    + " Level-2 and level-3 sub-models have 892,300 and 631,372 parameters, as the "
    "reference Keras sub-models.",
)
def pynet_v2_mobile(
    *, level: int = 1, instance_norm: bool = True, padding: str = "reflect"
) -> nn.Module:
    return PyNetV2Mobile(level=level, instance_norm=instance_norm, padding=padding)


@register_model(
    "pynet-v2-mobile-nonorm",
    summary="PyNET-V2 Mobile NoNorm: the same network without instance normalization.",
    source=_SOURCE + ", section IV-E",
    output_scale=1.0,
    input_multiple=4,
    default_input_size=(320, 480),
    min_packed_size=28,
    reference_params=929_743,
    reference_options={"level": 1},
    notes=_LEVEL_NOTE
    + " No public code: 929,743 is the reference model with only its instance-norm "
    "layers removed (inferred).",
)
def pynet_v2_mobile_nonorm(*, level: int = 1, padding: str = "reflect") -> nn.Module:
    return PyNetV2Mobile(level=level, instance_norm=False, padding=padding)


@register_model(
    "pynet-v2-mobile-slim",
    summary="PyNET-V2 Mobile Slim: stride-2 first conv, doubled widths, extra x2 shuffle.",
    source=_SOURCE + ", section IV-E (no public code)",
    output_scale=1.0,
    input_multiple=8,
    default_input_size=(320, 480),
    min_packed_size=56,
    reference_params=None,
    notes=_LEVEL_NOTE
    + " Our reading of the paper: 3x3 stride-2 first conv, widths 64/128/256, "
    "level-1 head 64->32 -> depth-to-space -> 3x3 conv 8->12 -> depth-to-space; level-2/3 "
    "heads use depth-to-space x4.",
)
def pynet_v2_mobile_slim(
    *, level: int = 1, instance_norm: bool = True, padding: str = "reflect"
) -> nn.Module:
    return PyNetV2Mobile(level=level, instance_norm=instance_norm, padding=padding, slim=True)


@register_model(
    "pynet-v2-mobile-slim-plus",
    summary="PyNET-V2 Mobile Slim+: Slim with a depthwise conv after the bilinear upsampler.",
    source=_SOURCE + ", section IV-E (no public code)",
    output_scale=1.0,
    input_multiple=8,
    default_input_size=(320, 480),
    min_packed_size=56,
    reference_params=None,
    notes=_LEVEL_NOTE
    + " Our reading of the paper: Slim, with each upsampler = 1x1 conv (halves the "
    "channels, at low resolution) -> bilinear x2 -> 3x3 depthwise conv -> PReLU.",
)
def pynet_v2_mobile_slim_plus(
    *, level: int = 1, instance_norm: bool = True, padding: str = "reflect"
) -> nn.Module:
    return PyNetV2Mobile(
        level=level,
        instance_norm=instance_norm,
        padding=padding,
        slim=True,
        depthwise_upsample=True,
    )
