"""PyNET-CA: PyNET with channel attention and a sub-pixel reconstruction level 0.

Source: B.-H. Kim, J. Song, J. C. Ye, J. Baek, "PyNET-CA: Enhanced PyNET with Channel
Attention for End-to-end Mobile Image Signal Processing", ECCV 2020 Workshops (AIM 2020),
doi:10.1007/978-3-030-67070-2_12, Sec. 3.1 (MCCA module, inverted pyramid, eq. 7 SRM); the
layer layout follows the authors' code (github.com/egyptdj/skyb-aim2020-public,
``model.py``, ``PyNetCA()``): 51,303,515 parameters, 3,436,512 of them channel attention
(47,867,003 without). Facts used here are collected in ``shared/reference/MODELS.md``.

Contract (edge-isp): input is the packed Bayer tensor (N, 4, H/2, W/2) in [0, 1]; the
packed side must be a multiple of 16 and at least 32 (as PyNET). Output is RGB in [0, 1] of
shape (N, 3, H / 2**level, W / 2**level).

The pyramid (widths, blocks, skips, residuals, bilinear align_corners=True upsamplers) is
PyNET's PyTorch port, shared with ``edge_isp.models.pynet``. What differs:
- multi-conv branch: conv (bias) -> LeakyReLU(0.2) -> conv -> [affine instance norm] ->
  LeakyReLU(0.2); only the second conv is normalised and, when it is, it has no bias;
- channel attention after every multi-conv concatenation: global average -> 1x1 conv
  (C -> C/r) -> ReLU -> 1x1 conv (C/r -> C) -> sigmoid -> rescale, r = number of branches;
- level-1 instance norm follows ``instance_norm`` (no separate switch);
- level 0 (sub-pixel reconstruction module): MCCA9 on level 1's features (no norm, 128
  channels) -> 1x1 conv to 12 -> PixelShuffle(2); every head ends in tanh.

Deviations from the authors' code:
- Value range. The reference feeds the packed input scaled to [-1, 1] (``x * 2 - 1``) and
  its tanh output targets [-1, 1]. Our contract is [0, 1] on both sides, so ``forward``
  maps the input with ``x * 2 - 1`` and the output with ``(tanh(y) + 1) / 2``; the network
  between is unchanged, so the authors' weights would compute the same images.
- The level is a build option, not a ``forward`` argument, and the model holds only what
  levels ``level``..5 use (encoder, pyramid down to ``level``, heads of levels
  ``level``..5); the reference always builds everything. Level 0 has exactly the reference
  count; coarser heads are kept so a level-(k+1) checkpoint is a same-named subset of a
  level-k model (load with ``strict=False``).
- Parameter names are ours; blocks, shapes and concatenation orders are the reference's. The
  reference's input scale (/1023) and test-time 8x self-ensemble and patch blending are
  outside the model and not reproduced here.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalInstanceNorm2d, GlobalPool

# The pyramid is shared with PyNET; these helpers are private to the two PyNET modules.
from edge_isp.models.pynet import _check_level, _PyramidTrunk, _rgb_heads


class _ChannelAttention(nn.Module):
    """Squeeze-and-excitation rescaling of ``channels`` with hidden width channels // r."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.excite = nn.Conv2d(channels // reduction, channels, 1)
        self.global_pool = GlobalPool()

    def forward(self, x: Tensor) -> Tensor:
        w = self.global_pool(x)
        w = self.excite(torch.relu(self.squeeze(w)))
        return x * torch.sigmoid(w)


class _DoubleConv(nn.Module):
    """conv -> LeakyReLU -> conv -> [instance norm] -> LeakyReLU, reflect-padded."""

    def __init__(self, cin: int, width: int, kernel: int, norm: bool):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(cin, width, kernel, padding=pad, padding_mode="reflect")
        # A bias right before instance norm is cancelled by it; the reference drops it.
        self.conv2 = nn.Conv2d(
            width, width, kernel, padding=pad, padding_mode="reflect", bias=not norm
        )
        self.norm = GlobalInstanceNorm2d(width, affine=True) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv1(x), 0.2)
        return F.leaky_relu(self.norm(self.conv2(x)), 0.2)


class _MultiConvCA(nn.Module):
    """MCCA: double-conv branches (kernels 3..max_kernel) concatenated, then attention."""

    def __init__(self, cin: int, width: int, max_kernel: int, norm: bool, attention: bool):
        super().__init__()
        self.branches = nn.ModuleList(
            _DoubleConv(cin, width, k, norm) for k in range(3, max_kernel + 1, 2)
        )
        n = len(self.branches)
        # Reduction ratio = number of branches, so the hidden width is always ``width``.
        self.attention = _ChannelAttention(width * n, n) if attention else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(torch.cat([branch(x) for branch in self.branches], dim=1))


class _SubPixelReconstruction(nn.Module):
    """Level 0 (paper eq. 7): MCCA9 -> 1x1 conv to 3 * 2 * 2 -> PixelShuffle(2)."""

    def __init__(self, attention: bool):
        super().__init__()
        self.features = _MultiConvCA(32, 32, 9, False, attention)
        self.to_subpixels = nn.Conv2d(128, 3 * 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.to_subpixels(self.features(x)), 2)


class _PyNetCA(nn.Module):
    def __init__(self, level: int, instance_norm: bool, channel_attention: bool):
        super().__init__()
        self.level = level
        block = partial(_MultiConvCA, attention=channel_attention)
        self.trunk = _PyramidTrunk(max(level, 1), block, instance_norm, instance_norm)
        self.heads = _rgb_heads(level)
        self.level0 = _SubPixelReconstruction(channel_attention) if level == 0 else None

    def forward(self, x: Tensor) -> Tensor:
        feat = self.trunk(x * 2.0 - 1.0)  # the reference trains on inputs in [-1, 1]
        head = self.level0 if self.level == 0 else self.heads[str(self.level)]
        return (torch.tanh(head(feat)) + 1.0) * 0.5  # tanh range [-1, 1] -> [0, 1]


@register_model(
    "pynet-ca",
    summary="PyNET-CA: PyNET with channel attention and sub-pixel level 0 (51.3M params)",
    source=(
        "Kim, Song, Ye, Baek, 'PyNET-CA: Enhanced PyNET with Channel Attention for End-to-end "
        "Mobile Image Signal Processing', ECCV 2020 Workshops, doi:10.1007/978-3-030-67070-2_12; "
        "github.com/egyptdj/skyb-aim2020-public model.py"
    ),
    output_scale=1.0,
    input_multiple=16,
    default_input_size=(448, 448),
    min_packed_size=32,
    reference_params=51_303_515,
    reference_options={"level": 0, "instance_norm": True, "channel_attention": True},
    notes=(
        "Output scale is 2**-level of the mosaic (level 0 = full resolution, the registered "
        "output_scale). Input [0, 1] is mapped to the reference's [-1, 1] and the tanh output "
        "back to [0, 1] inside the model. A level-k model holds only the layers levels k..5 "
        "use; only level 0 has the reference count. channel_attention=False gives 47,867,003."
    ),
)
def build_pynet_ca(
    level: int = 0, instance_norm: bool = True, channel_attention: bool = True
) -> nn.Module:
    """PyNET-CA producing RGB at 1/2**level of the mosaic from a packed (N, 4, H/2, W/2) input."""
    return _PyNetCA(_check_level(level), instance_norm, channel_attention)
