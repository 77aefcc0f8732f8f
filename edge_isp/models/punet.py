"""PUNET: the MediaTek baseline of the Mobile AI 2021 learned smartphone ISP challenge.

Source: MediaTek-NeuroPilot/mai21-learned-smartphone-isp, ``model.py`` (TensorFlow 1
graph, ``PUNET(input, instance_norm=False, num_maps_base=16)``), 5,725,199 parameters;
challenge report: Ignatov et al., "Learned Smartphone ISP on Mobile NPUs with Deep
Learning, Mobile AI 2021 Challenge: Report", CVPRW 2021. A PyNET-style U-Net with only
3x3 double-conv blocks ("multi-blocks" with max kernel 3):

- encoder: double conv at 16, 32, 64, 128 channels, each followed by maxpool 2;
- level 5 (1/16): four double convs at 256, the middle two residual;
- decoder: 3x3 stride-2 transposed conv (no bias) + LeakyReLU to half the width, concat
  with the encoder features of that level, double conv. Level 2 concatenates a fresh
  double conv of its encoder features; level 1 likewise and the raw encoder features
  once more (48 channels in);
- level 0: transposed conv 16->4 to the full mosaic resolution, 3x3 conv 4->3,
  ``tanh(x) * 0.58 + 0.5``.

Conv unit: 3x3 conv with bias, zero 'same' padding, optional instance norm (affine,
eps 1e-3, as the TF code), LeakyReLU(0.2) (TF's default slope). With ``instance_norm``
the TF code normalises every block except the level-1 ones; we do the same.

Deviations:

- TF's ``conv2d_transpose`` with SAME padding places outputs at ``2i + k``; PyTorch's
  ``ConvTranspose2d(padding=1, output_padding=1)`` would shift them by one pixel, so we use
  padding 0 and crop the last row and column, which gives TF's alignment exactly (TF
  weights ``[kh, kw, out, in]`` map to PyTorch ``[in, out, kh, kw]`` without flipping).
- Weights use PyTorch's default initialisation, not TF's truncated normal (std 0.01) and
  0.01 bias; it only matters for training from scratch.
- ``instance_norm_level_1`` of the TF signature is ignored there and not exposed here.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_isp.errors import InputError
from edge_isp.models._registry import register_model
from edge_isp.models.global_context import GlobalInstanceNorm2d


class _ConvBlock(nn.Sequential):
    """Two (3x3 conv -> [instance norm] -> LeakyReLU 0.2) units (TF ``_conv_multi_block``)."""

    def __init__(self, cin: int, cout: int, instance_norm: bool) -> None:
        layers: list[nn.Module] = []
        for c in (cin, cout):
            layers.append(nn.Conv2d(c, cout, 3, padding=1))
            if instance_norm:
                layers.append(GlobalInstanceNorm2d(cout, eps=1e-3, affine=True))
            layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


class _UpConv(nn.Module):
    """x2 transposed 3x3 conv, no bias, TF SAME alignment, then LeakyReLU 0.2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 3, stride=2, bias=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # padding 0 yields 2H+1 rows with TF's placement; drop the extra last one
        return self.act(self.deconv(x)[:, :, :-1, :-1])


class PUNET(nn.Module):
    """MAI 2021 baseline U-Net; see the module docstring."""

    def __init__(self, *, base_channels: int = 16, instance_norm: bool = False) -> None:
        super().__init__()
        b, norm = base_channels, instance_norm
        self.pool = nn.MaxPool2d(2)
        self.enc1 = _ConvBlock(4, b, False)
        self.enc2 = _ConvBlock(b, 2 * b, norm)
        self.enc3 = _ConvBlock(2 * b, 4 * b, norm)
        self.enc4 = _ConvBlock(4 * b, 8 * b, norm)
        self.mid = nn.ModuleList(
            [_ConvBlock(8 * b, 16 * b, norm)] + [_ConvBlock(16 * b, 16 * b, norm) for _ in range(3)]
        )
        self.up4 = _UpConv(16 * b, 8 * b)
        self.dec4 = _ConvBlock(16 * b, 8 * b, norm)
        self.up3 = _UpConv(8 * b, 4 * b)
        self.dec3 = _ConvBlock(8 * b, 4 * b, norm)
        self.up2 = _UpConv(4 * b, 2 * b)
        self.side2 = _ConvBlock(2 * b, 2 * b, norm)
        self.dec2 = _ConvBlock(4 * b, 2 * b, norm)
        self.up1 = _UpConv(2 * b, b)
        self.side1 = _ConvBlock(b, b, False)
        self.dec1 = _ConvBlock(3 * b, b, False)
        self.up0 = _UpConv(b, b // 4)
        self.to_rgb = nn.Conv2d(b // 4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        m = self.mid[0](self.pool(e4))
        m = self.mid[1](m) + m  # residual in the TF original
        m = self.mid[2](m) + m
        m = self.mid[3](m)
        d4 = self.dec4(torch.cat([e4, self.up4(m)], dim=1))
        d3 = self.dec3(torch.cat([e3, self.up3(d4)], dim=1))
        d2 = self.dec2(torch.cat([self.side2(e2), self.up2(d3)], dim=1))
        d1 = self.dec1(torch.cat([self.side1(e1), self.up1(d2), e1], dim=1))
        return torch.tanh(self.to_rgb(self.up0(d1))) * 0.58 + 0.5


@register_model(
    "punet",
    summary="PUNET: MediaTek's Mobile AI 2021 learned-ISP baseline, a 3x3-only U-Net "
    "with transposed-conv upsampling, 5.7 M parameters",
    source="MediaTek-NeuroPilot/mai21-learned-smartphone-isp model.py (TF); MAI 2021 "
    "learned smartphone ISP challenge report (CVPRW 2021)",
    output_scale=1.0,
    input_multiple=16,  # four 2x maxpools
    # 320x480 rather than the challenge's 256x256 patches: at 256x256 some activations have as
    # many channels as rows, which onnx2tf can mistake for a layout (converters/layout_guard.py).
    default_input_size=(320, 480),
    min_packed_size=16,  # zero padding: the 1/16 level may be a single pixel
    reference_params=5_725_199,
    reference_options={"base_channels": 16, "instance_norm": False},
    notes="Transposed convs keep TF's SAME alignment (padding 0 + crop), so TF "
    "checkpoints map one-to-one. instance_norm=True follows the TF code (all but "
    "level-1 blocks, eps 1e-3).",
)
def punet(*, base_channels: int = 16, instance_norm: bool = False) -> nn.Module:
    """Build PUNET.

    base_channels: width of level 1 (the reference uses 16); a multiple of 4, since the
        level-0 transposed conv has ``base_channels // 4`` channels.
    instance_norm: affine instance norm after the convs of levels 2-5 (reference: off).
    """
    if base_channels < 4 or base_channels % 4:
        raise InputError(f"base_channels must be a positive multiple of 4, got {base_channels}")
    return PUNET(base_channels=base_channels, instance_norm=instance_norm)
