"""Hand-written, plain-PyTorch U-Net and UNet++ (the UNet++ paper's convention), as a user
would write them: the reference the compiled specs are timed against.

Their submodule names follow skipgraph's so that ``load_state_dict(compiled.state_dict(),
strict=True)`` copies the weights exactly; nothing else depends on skipgraph.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Sequential):
    """2 x (3x3 conv with bias -> ReLU)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(cin, cout, 3, padding=1)), ("act1", nn.ReLU(inplace=True)),
            ("conv2", nn.Conv2d(cout, cout, 3, padding=1)), ("act2", nn.ReLU(inplace=True))]))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(resample=nn.ConvTranspose2d(cin, cout, 2, stride=2)))


class UNetPlusPlus(nn.Module):
    """X[i,j] = H([X[i,0..j-1], U(X[i+1,j-1])]); heads on X[0,1..d] with ``ds``."""

    def __init__(self, depth: int = 4, base: int = 32, in_channels: int = 1,
                 classes: int = 1, ds: bool = False):
        super().__init__()
        self.depth, self.ds = depth, ds
        c = [base * 2**i for i in range(depth + 1)]
        for i in range(depth + 1):
            self.add_module(f"X{i}_0", ConvBlock(in_channels if i == 0 else c[i - 1], c[i]))
        for j in range(1, depth + 1):
            for i in range(depth + 1 - j):
                self.add_module(f"up_X{i + 1}_{j - 1}_X{i}_{j}", _up(c[i + 1], c[i]))
                self.add_module(f"X{i}_{j}", ConvBlock(c[i] * (j + 1), c[i]))
        self.heads = [j for j in range(1, depth + 1) if ds or j == depth]
        for j in self.heads:
            self.add_module(f"head_X0_{j}", nn.Conv2d(c[0], classes, 1))

    def forward(self, x: torch.Tensor):
        X = {(0, 0): self.X0_0(x)}
        for i in range(1, self.depth + 1):
            X[i, 0] = getattr(self, f"X{i}_0")(F.max_pool2d(X[i - 1, 0], 2))
            for j in range(1, i + 1):   # the anti-diagonal that X[i,0] completes
                r = i - j
                up = getattr(self, f"up_X{r + 1}_{j - 1}_X{r}_{j}")(X[r + 1, j - 1])
                X[r, j] = getattr(self, f"X{r}_{j}")(
                    torch.cat([X[r, k] for k in range(j)] + [up], dim=1))
        outs = [torch.sigmoid(getattr(self, f"head_X0_{j}")(X[0, j])) for j in self.heads]
        if self.training and len(outs) > 1:
            return {f"X[0,{j}]": o for j, o in zip(self.heads, outs)}
        return torch.stack(outs).mean(0) if len(outs) > 1 else outs[0]


class UNet(nn.Module):
    """The U-Net of the same convention (encoder column + the anti-diagonal decoder)."""

    def __init__(self, depth: int = 4, base: int = 32, in_channels: int = 1, classes: int = 1):
        super().__init__()
        self.depth = depth
        c = [base * 2**i for i in range(depth + 1)]
        for i in range(depth + 1):
            self.add_module(f"X{i}_0", ConvBlock(in_channels if i == 0 else c[i - 1], c[i]))
        for i in range(depth):
            j = depth - i
            self.add_module(f"up_X{i + 1}_{j - 1}_X{i}_{j}", _up(c[i + 1], c[i]))
            self.add_module(f"X{i}_{j}", ConvBlock(2 * c[i], c[i]))
        self.add_module(f"head_X0_{depth}", nn.Conv2d(c[0], classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.depth
        enc = [self.X0_0(x)]
        for i in range(1, d + 1):
            enc.append(getattr(self, f"X{i}_0")(F.max_pool2d(enc[-1], 2)))
        y = enc[d]
        for i in range(d - 1, -1, -1):
            j = d - i
            up = getattr(self, f"up_X{i + 1}_{j - 1}_X{i}_{j}")(y)
            y = getattr(self, f"X{i}_{j}")(torch.cat([enc[i], up], dim=1))
        return torch.sigmoid(getattr(self, f"head_X0_{d}")(y))


REFERENCES = {"unet": UNet, "unet_pp": UNetPlusPlus}
