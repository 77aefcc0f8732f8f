"""LW-ISP: a 2 M-parameter U-Net with fine-grained attention and contextual upsampling.

Source: H. Chen and K. Ma, "LW-ISP: A Lightweight Model with ISP and Deep Learning"
(BMVC 2022; ``shared/seeds/002_186f7b5161781bf6.txt``): section 3 (backbone, "24 layers of
convolution"), 3.1 (FGAM), 3.2 (CCB, equations 1-2), Table 3 (2,014,681 parameters;
1,660,777 without FGAM). The paper has no official code; layer widths, the global-context
branch, the LeakyReLU(0.2) conv unit with reflection padding, the shared sub-pixel
convolution of the CCB core and the final sigmoid follow the first author's RGB-input
variant ``LWISP`` in DreamerCCC/CutFreq (``networks/model.py``), which has 1,997,449
parameters and no contrast branch.

Architecture (packed RAW (N, 4, H/2, W/2) -> RGB (N, 3, H, W)):

- stem 3x3 conv 4->16, double conv 16 (level 1, packed resolution);
- three times: maxpool 2 -> FGAM -> double conv (32, 64, 128 channels);
- global context: maxpool -> FGAM -> 3x3 conv 256->256 -> spatial mean ->
  linear 256->128 + ReLU, broadcast and concatenated onto the 1/8 features;
- double conv 256->128, then three CCBs (128->64, 64->32, 32->16), each followed by a
  3x3 conv over cat(CCB output, encoder skip);
- the level-1 output is multiplied by the stem features (as in CutFreq), then the RAW
  head: one more sub-pixel block 16->16 (x2, to full mosaic resolution), 3x3 conv 16->3
  and a sigmoid.

FGAM (section 3.1): ``cat(x + x * CA(x), x + x * SA(x))``, doubling the channels; CA is
squeeze-excitation with 1x1 convs and reduction 8, SA is a 5x5 conv (no bias) over the
channel-wise max and mean, both gated by a sigmoid.

CCB (section 3.2): the core is equation 1, ``O_FAU = P(F1) + P(F2)``, where ``P`` is one
sub-pixel block (3x3 conv to 4C -> LeakyReLU -> PixelShuffle(2) -> 3x3 conv) shared by the
first-stage (encoder) and second-stage (decoder) H x W features. The contextual
complement (equation 2) is ``C_l = sigmoid(f_d1(x) - f_d2(x))`` with ``f_d1`` a 1x1 conv
and ``f_d2`` a 3x3 conv with dilation 2, one output channel each and no bias, on
``x = cat(F1, F2)``; ``C_l`` is concatenated to ``O_FAU``.

Reading behind the parameter count. This reading reproduces the paper's 2,014,681 exactly:
CutFreq's 1,997,449 + 144 (4 instead of 3 input channels) + 11,600 (the x2 head block,
present but commented out in CutFreq, which brings the conv count to the paper's 24)
+ 5,488 (the three contrast branches: 10 x (256 + 128 + 64) for ``f_d1``/``f_d2`` plus
9 x (64 + 32 + 16) for the extra input channel of each following conv). No other
single-channel or per-channel, with-or-without-bias reading of equation 2 we tried lands
on that number.

Deviations and open points:

- The paper says ``C_l`` is computed on 2H x 2W features; a single-channel map at the
  output resolution cannot give 2,014,681 with any 2H x 2W feature of this network (their
  widths sum to at most 224, the count needs 448). We compute ``C_l`` on the two H x W
  CCB inputs and upsample it x2 (nearest) before the concatenation.
- Without FGAM (``fgam=False``: no attention and no channel doubling) this reading gives
  1,617,091, not the paper's 1,660,777. The 43,686 gap (= 2 x 3^3 x 809) matches no
  conv shape and the paper's FLOP figures are not self-consistent either, so we take it
  as a figure from another model version; ``fgam=False`` is provided but unverified.
- ``variant="cutfreq"`` rebuilds the author's RGB variant for the count check only
  (3-channel RGB input at full resolution, output at input resolution, no contrast
  branch, no x2 head): 1,997,449 parameters, 1,599,859 with ``fgam=False``. It does not
  follow the SDK's packed-RAW input contract.
- The global vector is broadcast with ``expand`` instead of CutFreq's add to a CUDA zero
  tensor (same values, device-agnostic, exports as Expand).
- The heterogeneous distillation (section 3.3) and the losses (3.4-3.5) are training-time
  only and not part of this inference module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalPool

_WIDTHS = (16, 32, 64, 128)  # encoder widths per level; the bottleneck conv is 256 wide
_GLOBAL_CONV = 256
_GLOBAL_VEC = 128
_VARIANTS = ("paper", "cutfreq")
_PADDINGS = ("reflect", "zeros")


class _Conv(nn.Module):
    """kxk conv with 'same' padding, optionally followed by LeakyReLU(0.2) (CutFreq unit)."""

    def __init__(self, cin: int, cout: int, *, act: bool = True, padding: str = "reflect") -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode=padding)
        self.act = nn.LeakyReLU(0.2) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, padding: str) -> None:
        super().__init__(_Conv(cin, cout, padding=padding), _Conv(cout, cout, padding=padding))


class _ChannelAttention(nn.Module):
    """Squeeze-excitation gate, reduction 8, 1x1 convs with bias."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = channels // reduction
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)
        self.global_pool = GlobalPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over H, W exports as one ReduceMean, unlike adaptive pooling to odd sizes
        w = self.global_pool(x)
        w = torch.sigmoid(self.excite(torch.relu(self.squeeze(w))))
        return x * w


class _SpatialAttention(nn.Module):
    """5x5 conv (no bias) over channel max and mean -> sigmoid gate."""

    def __init__(self, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class _FGAM(nn.Module):
    """Fine-grained attention: both gates are added to the input, never fused (sec. 3.1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ca = _ChannelAttention(channels)
        self.sa = _SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x + self.ca(x), x + self.sa(x)], dim=1)


class _Down(nn.Module):
    """maxpool 2 -> FGAM (doubles channels) or nothing -> double conv."""

    def __init__(self, cin: int, cout: int, fgam: bool, padding: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.attn = _FGAM(cin) if fgam else nn.Identity()
        self.convs = _DoubleConv(cin * (2 if fgam else 1), cout, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.attn(self.pool(x)))


class _GlobalContext(nn.Module):
    """Bottleneck branch: pool -> FGAM -> conv 256 -> spatial mean -> linear 256->128."""

    def __init__(self, cin: int, fgam: bool, padding: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.attn = _FGAM(cin) if fgam else nn.Identity()
        self.conv = _Conv(cin * (2 if fgam else 1), _GLOBAL_CONV, padding=padding)
        self.fc = nn.Linear(_GLOBAL_CONV, _GLOBAL_VEC)
        self.global_pool = GlobalPool(keepdim=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.global_pool(self.conv(self.attn(self.pool(x))))
        return torch.relu(self.fc(v))[:, :, None, None]


class _SubPixelUp(nn.Module):
    """P of eq. 1: conv to 4C (channel adjustment) -> LReLU -> PixelShuffle(2) -> conv."""

    def __init__(self, cin: int, cout: int, padding: str) -> None:
        super().__init__()
        self.expand = _Conv(cin, cout * 4, padding=padding)
        self.shuffle = nn.PixelShuffle(2)
        self.refine = _Conv(cout, cout, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.shuffle(self.expand(x)))


class _ContrastMap(nn.Module):
    """Eq. 2: sigmoid(f_d1(x) - f_d2(x)), 1x1 vs 3x3 dilation-2, one channel, no bias."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.near = nn.Conv2d(cin, 1, 1, bias=False)
        self.wide = nn.Conv2d(cin, 1, 3, padding=2, dilation=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.near(x) - self.wide(x))


class _CCB(nn.Module):
    """Contextual complement upsampling block: shared sub-pixel conv + contrast map."""

    def __init__(self, cin: int, cout: int, contrast: bool, padding: str) -> None:
        super().__init__()
        self.up = _SubPixelUp(cin, cout, padding)
        self.contrast = _ContrastMap(2 * cin) if contrast else None
        self.out_channels = cout + (1 if contrast else 0)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        fau = self.up(first) + self.up(second)  # eq. 1, weights shared between stages
        if self.contrast is None:  # structural switch, fixed at build time
            return fau
        c_map = self.contrast(torch.cat([first, second], dim=1))
        # computed at H x W (see module docstring); nearest keeps it a cheap Resize
        c_map = F.interpolate(c_map, scale_factor=2.0, mode="nearest")
        return torch.cat([fau, c_map], dim=1)


class LWISP(nn.Module):
    """LW-ISP network; see the module docstring for the source and the deviations."""

    def __init__(
        self,
        *,
        in_channels: int = 4,
        fgam: bool = True,
        contrast: bool = True,
        raw_head: bool = True,
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        w = _WIDTHS
        self.stem = _Conv(in_channels, w[0], padding=padding)
        self.level1 = _DoubleConv(w[0], w[0], padding)
        self.downs = nn.ModuleList(_Down(a, b, fgam, padding) for a, b in zip(w[:-1], w[1:]))
        self.global_ctx = _GlobalContext(w[-1], fgam, padding)
        self.deep = _DoubleConv(w[-1] + _GLOBAL_VEC, w[-1], padding)
        # decoder: CCB from width a to b, then a conv over cat(CCB output, skip of width b)
        self.ccbs = nn.ModuleList()
        self.fuses = nn.ModuleList()
        for a, b in zip(w[:0:-1], w[-2::-1]):
            ccb = _CCB(a, b, contrast, padding)
            self.ccbs.append(ccb)
            self.fuses.append(_Conv(ccb.out_channels + b, b, padding=padding))
        self.head = _SubPixelUp(w[0], w[0], padding) if raw_head else nn.Identity()
        self.to_rgb = _Conv(w[0], 3, act=False, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        skips = [self.level1(stem)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        deepest = skips.pop()  # 1/8 resolution, 128 channels
        g = self.global_ctx(deepest).expand_as(deepest)
        first, second = deepest, self.deep(torch.cat([deepest, g], dim=1))
        for ccb, fuse, skip in zip(self.ccbs, self.fuses, reversed(skips)):
            up = ccb(first, second)
            first, second = skip, fuse(torch.cat([up, skip], dim=1))
        y = self.head(second * stem)  # CutFreq gates level 1 with the stem features
        return torch.sigmoid(self.to_rgb(y))


@register_model(
    "lw-isp",
    summary="LW-ISP: U-Net with fine-grained attention (FGAM) and contextual-complement "
    "sub-pixel upsampling (CCB), ~2.0 M parameters",
    source="Chen & Ma, 'LW-ISP: A Lightweight Model with ISP and Deep Learning', BMVC 2022 "
    "(sec. 3, Table 3); widths from the author's RGB variant DreamerCCC/CutFreq LWISP",
    output_scale=1.0,
    input_multiple=16,  # four 2x maxpools
    default_input_size=(256, 256),
    min_packed_size=32,  # reflection padding needs >= 2 px at the 1/16 level
    reference_params=2_014_681,
    reference_options={"variant": "paper", "fgam": True},
    notes="No official code. Reproduces the paper's 2,014,681 exactly with the contrast map "
    "of eq. 2 as one channel from cat(F1, F2) (1x1 and 3x3 dilation-2 convs, no bias), "
    "computed at HxW and nearest-upsampled x2. fgam=False gives 1,617,091, not the "
    "paper's 1,660,777 (no consistent reading found). variant='cutfreq' rebuilds the "
    "author's RGB-input LWISP (1,997,449; RGB in, same-size RGB out) for reference only.",
)
def lw_isp(*, variant: str = "paper", fgam: bool = True, padding: str = "reflect") -> nn.Module:
    """Build LW-ISP.

    variant: ``"paper"`` (packed RAW in, full-resolution RGB out) or ``"cutfreq"`` (the
        author's RGB-input network, for parameter cross-checks).
    fgam: use the fine-grained attention modules (False: plain max-pooling, no doubling).
    padding: ``"reflect"`` (as CutFreq) or ``"zeros"`` (cheaper on some NPUs; also lets
        the graph accept a 16 px packed input).
    """
    if variant not in _VARIANTS:
        raise InputError(f"unknown LW-ISP variant {variant!r}; use one of {', '.join(_VARIANTS)}")
    if padding not in _PADDINGS:
        raise InputError(f"unknown padding {padding!r}; use one of {', '.join(_PADDINGS)}")
    paper = variant == "paper"
    return LWISP(
        in_channels=4 if paper else 3,
        fgam=fgam,
        contrast=paper,
        raw_head=paper,
        padding=padding,
    )
