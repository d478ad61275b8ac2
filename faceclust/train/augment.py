"""Training-time augmentation of face chips with torchvision transforms.

Chips are already aligned, so the changes stay small: a horizontal flip, a few degrees of
rotation, a few pixels of shift and a few percent of scale (what alignment error looks like), and
brightness / contrast / saturation jitter (what lighting and cameras do). Each chip draws its own
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentOptions:
    flip: bool = True
    degrees: float = 8.0
    shift: float = 0.03  # fraction of the chip side
    scale: float = 0.05  # +- fraction
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        for name in ("degrees", "shift", "scale", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must be >= 0")
        if self.shift >= 0.5 or self.scale >= 0.5:
            raise ValueError("augmentation shift and scale must be below 0.5")


class ChipAugmenter:
    """uint8 (n, 3, h, w) tensor -> uint8 tensor of the same shape, each chip transformed on its own.

    Randomness comes from torch's global generator (seeded by the trainer)."""

    def __init__(self, options: AugmentOptions | None = None) -> None:
        from torchvision.transforms import v2

        o = options or AugmentOptions()
        steps = []
        if o.flip:
            steps.append(v2.RandomHorizontalFlip())
        if o.degrees or o.shift or o.scale:
            steps.append(v2.RandomAffine(degrees=o.degrees, translate=(o.shift, o.shift),
                                         scale=(1 - o.scale, 1 + o.scale)))
        if o.brightness or o.contrast or o.saturation:
            steps.append(v2.ColorJitter(o.brightness, o.contrast, o.saturation))
        self.transform = v2.Compose(steps) if steps else None

    def __call__(self, chips):
        import torch

        if self.transform is None:
            return chips
        return torch.stack([self.transform(chip) for chip in chips])
