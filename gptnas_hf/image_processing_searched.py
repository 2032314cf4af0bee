"""The image processor of a searched network: the input the search trained it on.

No processor shipped with ``transformers`` gives a *one*-channel tensor (the grayscale options,
e.g. SuperPoint's, keep three equal channels), and a network searched on grayscale data has a
1-channel first layer. :class:`SearchedNetImageProcessor` is the torchvision backend of
``transformers`` plus ``num_channels``: every input is brought to the channels the network
takes (a PIL image with ``Image.convert("L")`` or ``"RGB"``, exactly as ``gptnas_hf.data``
decodes training images; tensors and arrays by luma weighting / channel repetition / dropping
alpha), then resized (shorter side, bilinear with antialiasing, then centre crop to a square,
as ``gptnas_hf.data`` does), rescaled to [0, 1] and normalised with the training data's
per-channel mean and std.

This file imports nothing from ``gptnas_hf``: it is copied beside saved models for
``trust_remote_code=True`` users.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs

__all__ = ["SearchedNetImageProcessor"]


class SearchedNetImageProcessorKwargs(ImagesKwargs, total=False):
    """``num_channels``: 1 (grayscale) or 3 (RGB), the channels the network takes."""

    num_channels: int | None


class SearchedNetImageProcessor(TorchvisionBackend):
    """Resize, centre-crop, rescale and normalise images into ``num_channels`` channels.

    ``SearchedNetImageProcessor.for_input(image_size, num_channels, image_mean, image_std)``
    makes the processor of a network searched at ``image_size`` x ``image_size``.
    """

    valid_kwargs = SearchedNetImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"shortest_edge": 32}
    crop_size = {"height": 32, "width": 32}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = False  # channels are handled by num_channels
    num_channels = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {self.num_channels!r}")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) != self.num_channels:
                raise ValueError(f"{name} needs one value per channel ({self.num_channels}), got {list(value)}")

    @classmethod
    def for_input(cls, image_size: int, num_channels: int, image_mean, image_std) -> "SearchedNetImageProcessor":
        return cls(
            size={"shortest_edge": int(image_size)}, crop_size={"height": int(image_size), "width": int(image_size)},
            num_channels=int(num_channels), image_mean=[float(v) for v in image_mean],
            image_std=[float(v) for v in image_std],
        )

    def process_image(self, image, do_convert_rgb=None, input_data_format=None, device=None, num_channels=None,
                      **kwargs) -> torch.Tensor:
        channels = int(num_channels or self.num_channels)
        if _is_pil(image):
            # as gptnas_hf.data decodes training images: PIL's own conversion, whatever the mode
            image = torch.from_numpy(np.array(image.convert("L" if channels == 1 else "RGB"), copy=True))
            image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
            image = image.contiguous()
            return image.to(device) if device is not None else image
        if isinstance(image, np.ndarray) and not image.flags.writeable:
            image = image.copy()  # torch.from_numpy warns about read-only arrays (e.g. np.asarray(pil_image))
        image = super().process_image(image, do_convert_rgb=False, input_data_format=input_data_format,
                                      device=device, **kwargs)
        return _to_channels(image, channels)


def _is_pil(image) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is a dependency of the image pipelines
        return False
    return isinstance(image, Image.Image)


def _to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A channels-first image with 1, 2 (gray + alpha), 3 or 4 (RGBA) channels -> ``channels``."""
    have = image.shape[-3]
    if have == 2:  # gray + alpha
        image, have = image[..., :1, :, :], 1
    elif have == 4:  # RGBA: drop alpha (PIL's RGBA -> RGB does the same)
        image, have = image[..., :3, :, :], 3
    if have == channels:
        return image
    if have == 3 and channels == 1:
        from torchvision.transforms.v2 import functional as tvF

        return tvF.rgb_to_grayscale(image, num_output_channels=1)
    if have == 1 and channels == 3:
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).contiguous()
    raise ValueError(f"cannot turn an image with {have} channels into {channels} channels")

