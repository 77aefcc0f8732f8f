"""MicroISP in PyTorch: two stacked tiny generators, one branch per colour channel.

Source
    Ignatov, Sycheva, Timofte et al., "MicroISP: Processing 32MP Photos on Mobile
    Devices with Deep Learning" (ECCV 2022 workshops); structure read from the authors'
    TF2 code, aiff22/MicroISP ``model.py``. Independent re-implementation.

Graph (packed Bayer input, 4 channels, side H)
    generator 1: three colour branches, each reading all 4 packed channels:
        7 x [3x3 conv 4->4 (zero pad) + PReLU]; the outputs of convs 0 and 3 are kept
        as skips; after convs 2 and 5: ``x * attention(x) + skip``; then 3x3 conv 4->4
        -> tanh (4 channels at packed resolution = one colour's 2x2 sub-pixels).
    generator 2: three more branches of the same shape; branch i reads generator 1's
        branch-i tanh output.
    output: ``tanh * 0.58 + 0.5`` of the three branches, depth-to-space x2 -> RGB at
        full mosaic resolution (N,3,2H,2W).
    attention: 1x1 stride-3 valid conv + PReLU -> 3 x [3x3 stride-3 valid conv + PReLU]
        -> global mean -> 1x1 + PReLU -> 1x1 -> sigmoid (per-channel weights).

The stride-3 pyramid needs at least 79 px a side of packed input (ceil(79/3) = 27 -> 9
-> 3 -> 1); this is the registry's ``min_packed_size``. The forward has no shape check,
so that export stays free of Python control flow; smaller inputs fail inside the conv.

Deviations and choices
    - Generator 2's three branch outputs are concatenated (12 channels) and shuffled by
      one depth-to-space x2; this equals the reference's per-branch depth-to-space
      followed by a concat, with one op instead of three.
    - Generator 1's affine ``* 0.58 + 0.5`` output is never used by the final result in
      the reference, so it is not computed.
    - Weights use PyTorch's default initialisation (the reference draws N(0, 1e-3)
      kernels and PReLU slopes of 0; trained weights are loaded anyway).
"""

from __future__ import annotations

import torch
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalPool


class _Attention(nn.Module):
    """Per-channel gates from a stride-3 pooling pyramid and a global mean."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(ch, ch, 1, stride=3), nn.PReLU(ch)]
        for _ in range(3):
            layers += [nn.Conv2d(ch, ch, 3, stride=3), nn.PReLU(ch)]
        self.reduce = nn.Sequential(*layers)
        self.excite = nn.Sequential(
            nn.Conv2d(ch, ch, 1), nn.PReLU(ch), nn.Conv2d(ch, ch, 1), nn.Sigmoid()
        )
        self.global_pool = GlobalPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.excite(self.global_pool(self.reduce(x)))


class _Branch(nn.Module):
    """One colour branch: ``blocks`` conv+PReLU units with attention-gated skips."""

    def __init__(self, cin: int, ch: int, blocks: int, out_ch: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin if j == 0 else ch, ch, 3, padding=1), nn.PReLU(ch))
            for j in range(blocks)
        )
        # Every third unit (index 0, 3, ...) starts a skip; units 2, 5, ... close it.
        self.gates = nn.ModuleDict({str(j): _Attention(ch) for j in range(2, blocks, 3)})
        self.out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        for j, conv in enumerate(self.convs):
            x = conv(x)
            if j % 3 == 0:
                skip = x
            elif str(j) in self.gates:
                x = x * self.gates[str(j)](x) + skip
        return torch.tanh(self.out(x))


class MicroISP(nn.Module):
    """MicroISP: packed Bayer (N,4,H,W) in [0,1] -> RGB (N,3,2H,2W); H, W >= 79."""

    def __init__(self, *, features: int = 4, blocks: int = 7) -> None:
        super().__init__()
        if features < 1 or blocks < 1:
            raise InputError(
                f"features and blocks must be positive (got {features}, {blocks})."
            )
        self.stage1 = nn.ModuleList(_Branch(4, features, blocks, 4) for _ in range(3))
        self.stage2 = nn.ModuleList(_Branch(4, features, blocks, 4) for _ in range(3))
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b2(b1(x)) for b1, b2 in zip(self.stage1, self.stage2)]
        return self.shuffle(torch.cat(outs, dim=1) * 0.58 + 0.5)


@register_model(
    "microisp",
    summary="MicroISP: two stacked 3-branch generators of 4-channel convs with attention.",
    source=(
        "Ignatov et al., MicroISP (ECCV 2022 workshops); "
        "https://github.com/aiff22/MicroISP (TF2 model.py)"
    ),
    output_scale=1.0,
    input_multiple=1,
    default_input_size=(256, 256),
    min_packed_size=79,
    reference_params=13_560,
    reference_options={},
    notes=(
        "Packed input must be at least 79 px a side (stride-3 attention pyramid); the "
        "forward does not check this. Zero padding throughout (as the reference), so no "
        "MIRROR_PAD. The default size is a small 256x256 mosaic for fast conversion; the "
        "MAI 2021 deployment shape is a 1088x1920 mosaic (packed 544x960)."
    ),
)
def microisp(*, features: int = 4, blocks: int = 7) -> nn.Module:
    return MicroISP(features=features, blocks=blocks)
