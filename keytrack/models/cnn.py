"""The CNN Pose Entailment networks of KeyTrack's self-attention vs. convolution study (§5.2, A.5).

§5.2 replaces the Transformer Matching Network with "two separate convolution-based networks": one
on the pose pair drawn as an image (``cnn_keypoints``, :mod:`keytrack.rasterize`), one on the
RGB crops of the two poses' boxes (``cnn_crops``). "Both approaches use identical CNNs, sharing
an architecture inspired by VGG". A.5 gives the architecture, which :class:`CNNMatchingNetwork`
follows:

* "The input is projected to 64 channels in the first layer of the CNN. All convolutions use
  kernel size 3 and padding 1. BatchNorm is applied after each convolutional layer. The input is
  downsampled via a maxpooling operation with a stride of 2. The number of filters are doubled
  after downsampling." Each block is ``conv3×3 (pad 1) → BatchNorm → ReLU → maxpool 2×2 stride
  2``; block ``i`` has ``64 · 2^i`` filters. An odd edge is rounded up by the pooling
  (``ceil_mode``), so a short edge never shrinks to 0 (``24 × 18`` → ``3 × 3`` after 3 blocks).
* "The number of convolutions layers is equal to log2(n) − 1, where n is the long edge of the
  input image." For an ``n`` that is not a power of two we take ``floor(log2 n) − 1`` (at least
  1): ``24 × 18`` → 3 blocks, ``64 × 48`` → 5. The ``− 1`` leaves a feature map of at least
  2 pixels along the long edge.
* "Two Linear layers complete the network. The hidden size is dependent on the resolution of the
  input image. The second layer outputs a binary classification." The first linear layer maps
  the flattened feature map (``C_L · h_L · w_L``, which depends on the resolution) to ``hidden``
  units, then ReLU; the second gives the 2-way logits ``[M, 2]`` (index 1 = same person), as the
  transformer's. §5.2 says the CNNs have "approximately 4x more parameters than our
  transformer-based model": the default ``hidden = 512`` gives 1,554,626 parameters at 24 × 18
  (3.8 × the paper's 0.41 M, 3.3 × our 473,218); ``hidden=None`` makes it as wide as its input
  (5.69 M at 24 × 18), the other reading of "the hidden size is dependent on the resolution".

Input: ``batch["image"]``, ``[M, in_channels, h, w]`` float (6 channels: two RGB images).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch import Tensor, nn

__all__ = ["CNNConfig", "CNNMatchingNetwork", "num_conv_layers"]


def num_conv_layers(resolution: tuple[int, int]) -> int:
    """``floor(log2(n)) − 1`` (at least 1) conv blocks for long edge ``n`` (A.5)."""
    n = max(int(r) for r in resolution)
    return max(1, int(math.floor(math.log2(n))) - 1)


@dataclass
class CNNConfig:
    """Sizes of the CNN matcher; defaults follow A.5 at the transformer's 24 × 18 resolution."""

    resolution: tuple[int, int] = (24, 18)  # (w, h) of the input image
    in_channels: int = 6  # two RGB images (current pose, earlier pose)
    channels: int = 64  # filters of the first conv; doubled after each max-pool
    hidden: int | None = 512  # first linear layer; None = its input size (A.5)

    def __post_init__(self) -> None:
        self.resolution = tuple(int(r) for r in self.resolution)
        if len(self.resolution) != 2 or min(self.resolution) < 2:
            raise ValueError(f"CNNConfig.resolution must be (w, h) with both >= 2, got {self.resolution}")
        if self.in_channels < 1 or self.channels < 1 or (self.hidden is not None and self.hidden < 1):
            raise ValueError(f"CNNConfig: in_channels, channels and hidden must be >= 1, got {asdict(self)}")

    @property
    def layers(self) -> int:
        return num_conv_layers(self.resolution)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` after the last block (each max-pool halves a size, rounding up)."""
        w, h = self.resolution
        for _ in range(self.layers):
            w, h = -(-w // 2), -(-h // 2)
        return self.channels * 2 ** (self.layers - 1), h, w


class CNNMatchingNetwork(nn.Module):
    """VGG-style pose pair classifier: ``batch["image"] [M, C, h, w]`` → logits ``[M, 2]`` (A.5)."""

    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        self.config = config
        blocks = []
        c_in, c_out = config.in_channels, config.channels
        for i in range(config.layers):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
            ]
            c_in, c_out = c_out, c_out * 2
        self.features = nn.Sequential(*blocks)
        c, h, w = config.feature_shape
        flat = c * h * w
        hidden = config.hidden or flat
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2)
        )

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        image = batch["image"]
        w, h = self.config.resolution
        if image.ndim != 4 or tuple(image.shape[1:]) != (self.config.in_channels, h, w):
            raise ValueError(
                f"CNNMatchingNetwork: image must be [M, {self.config.in_channels}, {h}, {w}], "
                f"got {tuple(image.shape)}"
            )
        return self.classifier(self.features(image))

    def extra_repr(self) -> str:
        return (
            ", ".join(f"{k}={v}" for k, v in asdict(self.config).items()) + f", layers={self.config.layers}"
        )
