"""ResNeXt's aggregated transformation in its three equivalent forms (Xie et al. 2017, Fig. 3).

One set of weights, three ways to compute the same thing:
  (a) `paths`:   C parallel paths 1x1 -> 3x3 -> 1x1, their outputs summed
  (b) `concat`:  C paths 1x1 -> 3x3, outputs concatenated, then one 1x1
  (c) `grouped`: one 1x1, one grouped 3x3 conv (groups=C), one 1x1 -- what ResNeXt uses
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_count


class AggregatedTransform(nn.Module):
    """F(x) = sum_i T_i(x) with C = `cardinality` paths of `width` channels each."""

    def __init__(self, channels: int = 256, cardinality: int = 32, width: int = 4):
        super().__init__()
        check_count("cardinality", cardinality)
        check_count("width", width)
        inner = cardinality * width
        self.cardinality, self.width = cardinality, width
        self.reduce = nn.Conv2d(channels, inner, 1, bias=False)           # all paths' 1x1s
        self.conv = nn.Conv2d(inner, inner, 3, padding=1, groups=cardinality, bias=False)
        self.restore = nn.Conv2d(inner, channels, 1, bias=False)          # all paths' 1x1s

    def path_weights(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weights of path i: its slice of each of the three convs."""
        s = slice(i * self.width, (i + 1) * self.width)
        return self.reduce.weight[s], self.conv.weight[s], self.restore.weight[:, s]

    def paths(self, x: torch.Tensor) -> torch.Tensor:
        """(a) split-transform-merge: C small networks, outputs summed."""
        out = 0
        for i in range(self.cardinality):
            w1, w2, w3 = self.path_weights(i)
            h = F.relu(F.conv2d(x, w1))
            h = F.relu(F.conv2d(h, w2, padding=1))
            out = out + F.conv2d(h, w3)
        return out

    def concat(self, x: torch.Tensor) -> torch.Tensor:
        """(b) C paths up to the 3x3, concatenated, then one shared 1x1."""
        hs = []
        for i in range(self.cardinality):
            w1, w2, _ = self.path_weights(i)
            hs.append(F.relu(F.conv2d(F.relu(F.conv2d(x, w1)), w2, padding=1)))
        return self.restore(torch.cat(hs, dim=1))

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """(c) the grouped convolution: three convs in all."""
        return self.restore(F.relu(self.conv(F.relu(self.reduce(x)))))

    forward = grouped
