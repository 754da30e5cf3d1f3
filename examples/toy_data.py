"""Synthetic segmentation data for the examples: noisy bright disks on a dark background.

It stands in for your own images and label maps, so every example runs without a download.
"""
from __future__ import annotations

import torch

__all__ = ["disks"]


def disks(n: int, size: int, dims: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, *[size] * dims)`` (float32) and their label maps (same shape,
    0 = background, 1 = disk), 1 to 3 disks of radius size/8..size/4 each, Gaussian noise 0.3."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * dims,
                                      indexing="ij"))
    labels = torch.zeros(n, 1, *[size] * dims)
    for k in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            centre = torch.rand(dims, generator=g) * size
            radius = size / 8 + torch.rand(1, generator=g) * size / 8
            dist = ((grid - centre.view(-1, *[1] * dims)) ** 2).sum(0).sqrt()
            labels[k, 0][dist < radius] = 1.0
    images = labels + 0.3 * torch.randn(labels.shape, generator=g)
    return images, labels
