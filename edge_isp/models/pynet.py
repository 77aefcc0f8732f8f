"""PyNET: the inverted-pyramid RAW-to-RGB network.

Source: A. Ignatov, L. Van Gool, R. Timofte, "Replacing Mobile Camera ISP with a Single
Deep Learning Model", CVPR Workshops 2020 (arXiv:2002.05509), and the "PyNET CNN" section
of the authors' README (github.com/aiff22/PyNET: five pyramid levels trained coarse to fine,
plus a level 0 that upsamples to the mosaic size). The layer layout follows the authors'
PyTorch port (github.com/aiff22/PyNET-PyTorch, ``model.py``), which their own training
and test scripts build as ``PyNET(level, instance_norm=True, instance_norm_level_1=True)``:
47,554,738 parameters, the paper's figure. Facts used here are collected in
``shared/reference/MODELS.md``.

Contract (edge-isp): input is the packed Bayer tensor (N, 4, H/2, W/2) in [0, 1], where
(H, W) is the mosaic size; the packed side must be a multiple of 16 (four 2x2 max-pools)
and at least 32 (the 1/16 level runs 3x3 reflect-padded convs, which need 2 px). Output is
RGB in [0, 1] (sigmoid, as the port) of shape (N, 3, H / 2**level, W / 2**level): level 0
is the full mosaic resolution, level 1 the packed resolution, level 5 1/32 of the mosaic.

Building blocks, as the port builds them:
- conv unit: reflect pad k//2 -> k x k conv (bias) -> optional affine instance norm ->
  LeakyReLU(0.2);
- multi-conv MB(k_max, C): parallel branches of two stacked conv units with kernels 3, 5,
  ... k_max, concatenated (C x branches channels);
- upsampler: x2 bilinear (align_corners=True) -> 3x3 conv unit, no norm;
- heads: 3x3 conv to RGB -> sigmoid; level 0 upsamples level 1's features (32 -> 16
  channels) and applies a 3x3 conv to RGB.

Deviations from the port:
- The level is fixed at build time and the model holds only what levels ``level``..5 use:
  the encoder, the pyramid down to ``level`` and the RGB heads of levels ``level``..5. The
  port builds every layer whatever the level and picks the output with ``if`` chains.
  Level 0 therefore has exactly the port's parameters (47,554,738; 47,551,666 without
  level-1 instance norm); levels 1..5 are smaller. The heads of coarser levels are idle in
  ``forward`` but kept, so that the parameters of a level-(k+1) model are a subset, with
  the same names, of a level-k model's: progressive training (level 5 -> 0) continues from
  the coarser checkpoint with ``load_state_dict(..., strict=False)``.
- Parameter names and registration order are ours; every block, its shapes and every
  concatenation order are the port's, so a port checkpoint maps one to one by renaming
  keys (no converter is shipped).
- ``Conv2d(padding_mode="reflect")`` replaces ``ReflectionPad2d`` + ``Conv2d`` (same
  arithmetic), and ``forward`` computes only the selected level's head.
- Deviations of the port from the TF original are kept (the port is the reference):
  bilinear+conv upsamplers instead of stride-2 transposed convs, no residuals on the 1/16
  level, sigmoid instead of ``tanh(x) * 0.58 + 0.5``.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_isp.errors import InputError
from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalInstanceNorm2d

# Feature channels at the output of each pyramid level (level 0 has none: it is RGB).
_WIDTH = {1: 32, 2: 64, 3: 128, 4: 256, 5: 512}

# Builds a multi-conv block: (in_channels, branch_width, max_kernel, instance_norm) ->
# module with branch_width * (max_kernel - 1) // 2 output channels (one branch per kernel
# 3, 5, ..., max_kernel). PyNET and PyNET-CA share the pyramid and differ in this block.
_MultiConvFactory = Callable[[int, int, int, bool], nn.Module]


def _check_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, Integral) or not 0 <= level <= 5:
        raise InputError(
            f"level must be an integer 0..5 (0 = full mosaic resolution, k = 1/2**k of it); "
            f"got {level!r}"
        )
    return int(level)


class _ConvUnit(nn.Module):
    """Reflect-padded conv (bias) -> optional affine instance norm -> optional LeakyReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, norm: bool = False, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode="reflect")
        self.norm = GlobalInstanceNorm2d(cout, affine=True) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class _MultiConv(nn.Module):
    """PyNET multi-conv: branches of two conv units (kernels 3..max_kernel), concatenated."""

    def __init__(self, cin: int, width: int, max_kernel: int, norm: bool):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(_ConvUnit(cin, width, k, norm), _ConvUnit(width, width, k, norm))
            for k in range(3, max_kernel + 1, 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Upsample(nn.Module):
    """x2 bilinear (align_corners=True, as the port) -> 3x3 conv unit without norm."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _ConvUnit(cin, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.conv(x)


class _Encoder(nn.Module):
    """Level-1..4 input features: MB3 at packed resolution, then (max-pool 2, MB3) x 3."""

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        # Level 1 (packed resolution) is never normalised here.
        self.stages = nn.ModuleList(
            [mc(4, 32, 3, False), mc(32, 64, 3, norm), mc(64, 128, 3, norm), mc(128, 256, 3, norm)]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class _Level5(nn.Module):
    """1/16 of the packed input: four MB3(512) in a row (the port has no residuals here)."""

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        self.blocks = nn.Sequential(
            mc(256, 512, 3, norm), *(mc(512, 512, 3, norm) for _ in range(3))
        )

    def forward(self, enc4: Tensor) -> Tensor:
        return self.blocks(F.max_pool2d(enc4, 2))


class _Level4(nn.Module):
    """1/8: MB3(256), two residual MB3, MB3, then the second upsampled prior and MB3."""

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        self.up_a, self.up_b = _Upsample(512, 256), _Upsample(512, 256)
        self.entry = mc(512, 256, 3, norm)
        self.res = nn.ModuleList(mc(256, 256, 3, norm) for _ in range(2))
        self.mid = mc(256, 256, 3, norm)
        self.exit = mc(512, 256, 3, norm)

    def forward(self, enc: Tensor, coarser: Tensor) -> Tensor:
        x = self.entry(torch.cat([enc, self.up_a(coarser)], 1))
        for block in self.res:
            x = block(x) + x
        x = self.mid(x)
        return self.exit(torch.cat([x, self.up_b(coarser)], 1))


class _Level3(nn.Module):
    """1/4: three residual MB5(128), MB5, then (encoder, prior) skip and MB3."""

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        self.up_a, self.up_b = _Upsample(256, 128), _Upsample(256, 128)
        self.res = nn.ModuleList(mc(256, 128, 5, norm) for _ in range(3))
        self.mid = mc(256, 128, 5, norm)
        self.exit = mc(512, 128, 3, norm)

    def forward(self, enc: Tensor, coarser: Tensor) -> Tensor:
        x = torch.cat([enc, self.up_a(coarser)], 1)
        for block in self.res:
            x = block(x) + x
        x = self.mid(x)
        return self.exit(torch.cat([x, enc, self.up_b(coarser)], 1))


class _Level2(nn.Module):
    """1/2: MB5, three residual MB7(64), MB7, MB5, MB3 with encoder skips in between."""

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        self.up_a, self.up_b = _Upsample(128, 64), _Upsample(128, 64)
        self.entry = mc(128, 64, 5, norm)
        self.res = nn.ModuleList(mc(192, 64, 7, norm) for _ in range(3))
        self.mid = mc(192, 64, 7, norm)
        self.merge = mc(256, 64, 5, norm)
        self.exit = mc(192, 64, 3, norm)

    def forward(self, enc: Tensor, coarser: Tensor) -> Tensor:
        x = self.entry(torch.cat([enc, self.up_a(coarser)], 1))
        x = torch.cat([x, enc], 1)
        for block in self.res:
            x = block(x) + x
        x = self.merge(torch.cat([self.mid(x), enc], 1))
        return self.exit(torch.cat([x, self.up_b(coarser)], 1))


class _Level1(nn.Module):
    """Packed resolution: MB5, MB7, MB9, three residual MB9(32), MB7, MB5, MB3.

    ``norm`` (PyNET's ``instance_norm_level_1``) applies to all but the first and last block.
    """

    def __init__(self, mc: _MultiConvFactory, norm: bool):
        super().__init__()
        self.up_a, self.up_b = _Upsample(64, 32), _Upsample(64, 32)
        self.entry = mc(64, 32, 5, False)
        self.widen = mc(96, 32, 7, norm)
        self.deep = mc(96, 32, 9, norm)
        self.res = nn.ModuleList(mc(128, 32, 9, norm) for _ in range(3))
        self.mid = mc(128, 32, 7, norm)
        self.merge = mc(128, 32, 5, norm)
        self.exit = mc(128, 32, 3, False)

    def forward(self, enc: Tensor, coarser: Tensor) -> Tensor:
        x = self.entry(torch.cat([enc, self.up_a(coarser)], 1))
        x = self.deep(self.widen(torch.cat([x, enc], 1)))
        for block in self.res:
            x = block(x) + x
        x = self.merge(torch.cat([self.mid(x), enc], 1))
        return self.exit(torch.cat([x, self.up_b(coarser), enc], 1))


class _PyramidTrunk(nn.Module):
    """Encoder plus pyramid levels 5 down to ``finest`` (1..5); returns that level's features.

    Shared with PyNET-CA (``pynet_ca``), which passes its own multi-conv block.
    """

    def __init__(self, finest: int, mc: _MultiConvFactory, norm: bool, norm_level_1: bool):
        super().__init__()
        self.finest = finest
        self.encoder = _Encoder(mc, norm)
        self.levels = nn.ModuleDict({"5": _Level5(mc, norm)})
        finer = (
            (4, _Level4, norm), (3, _Level3, norm), (2, _Level2, norm), (1, _Level1, norm_level_1)
        )
        for k, level_cls, level_norm in finer:
            if k >= finest:
                self.levels[str(k)] = level_cls(mc, level_norm)

    def forward(self, x: Tensor) -> Tensor:
        enc = self.encoder(x)  # enc[k - 1] is level k's input
        feat = self.levels["5"](enc[3])
        for k in range(4, self.finest - 1, -1):  # static: fixed at build time
            feat = self.levels[str(k)](enc[k - 1], feat)
        return feat


def _rgb_heads(level: int) -> nn.ModuleDict:
    """3x3 conv heads to RGB (pre-activation) for levels max(level, 1)..5, keyed by level."""
    return nn.ModuleDict(
        {str(k): _ConvUnit(_WIDTH[k], 3, 3, act=False) for k in range(5, max(level, 1) - 1, -1)}
    )


class _PyNet(nn.Module):
    def __init__(self, level: int, instance_norm: bool, instance_norm_level_1: bool):
        super().__init__()
        self.level = level
        self.trunk = _PyramidTrunk(max(level, 1), _MultiConv, instance_norm, instance_norm_level_1)
        self.heads = _rgb_heads(level)
        # Level 0: upsample the packed-resolution features to the mosaic grid, then RGB.
        self.level0 = (
            nn.Sequential(_Upsample(32, 16), _ConvUnit(16, 3, 3, act=False)) if level == 0 else None
        )

    def forward(self, x: Tensor) -> Tensor:
        feat = self.trunk(x)
        head = self.level0 if self.level == 0 else self.heads[str(self.level)]
        return torch.sigmoid(head(feat))


@register_model(
    "pynet",
    summary="PyNET inverted-pyramid RAW-to-RGB CNN (47.6M params, PyTorch-port layout)",
    source=(
        "Ignatov, Van Gool, Timofte, 'Replacing Mobile Camera ISP with a Single Deep Learning "
        "Model', CVPRW 2020, arXiv:2002.05509; github.com/aiff22/PyNET-PyTorch model.py"
    ),
    output_scale=1.0,
    input_multiple=16,
    default_input_size=(448, 448),
    min_packed_size=32,
    reference_params=47_554_738,
    reference_options={"level": 0, "instance_norm": True, "instance_norm_level_1": True},
    notes=(
        "Output scale is 2**-level of the mosaic (level 0 = full resolution, the registered "
        "output_scale). A level-k model holds only the layers levels k..5 use, so only level 0 "
        "has the reference count; coarser checkpoints load into finer models with "
        "strict=False. Sigmoid output in [0, 1]."
    ),
)
def build_pynet(
    level: int = 0, instance_norm: bool = True, instance_norm_level_1: bool = True
) -> nn.Module:
    """PyNET producing RGB at 1/2**level of the mosaic from a packed (N, 4, H/2, W/2) input."""
    return _PyNet(_check_level(level), instance_norm, instance_norm_level_1)
