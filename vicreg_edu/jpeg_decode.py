"""Two views from JPEG files, decoded on a device: every random draw planned on the CPU first.

For a batch of JPEG files (their bytes), :class:`JpegTwoViewDecoder`

1. reads each image's size from its header (PIL, no decode),
2. draws both views' parameters on the CPU from the same :class:`~vicreg_edu.views.AugmentConfig`
   and the same distributions as the PIL path (:meth:`BatchAugment.sample
   <vicreg_edu.batch_augment.BatchAugment.sample>`: crop area and log aspect ratio, 10 trials,
   flip, colour-jitter order and factors, grayscale, blur sigma, solarization), and turns them
   into integer crop boxes per image with torchvision's rule (:meth:`BatchAugment.crop_boxes
   <vicreg_edu.batch_augment.BatchAugment.crop_boxes>`: the first fitting trial, else the centre
   crop),
3. decodes with ``torchvision.io.decode_jpeg(..., device=...)`` a few files at a time
   (``decode_batch``; a batched call that fails is retried image by image, and an image it
   refuses, e.g. a PNG, is decoded by PIL on the host and copied over),
4. crops and resizes each image to the view size on the device (``resized_crop``, antialiased,
   as PIL's resize), giving one uint8 batch per view, and
5. hands both batches with their parameters to the batched colour ops of
   :mod:`~vicreg_edu.batch_augment` (flip, jitter, grayscale, blur, solarize, normalise; one
   batch of 2n images on a GPU: ``augment_batches``), with the crop switched off there since it
   is done.

:class:`~vicreg_edu.gpu_pipeline.DeviceTwoViewLoader` is the trainer's loader built on it
(``Config.pipeline = "gpu"``).

Only the sizes are read before the decode, so no image is decoded twice and a device decoder
(nvJPEG on CUDA) never waits on the host for a random draw. Shapes: ``n`` files -> two float32
``(n, 3, size, size)`` tensors on ``device``.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from .batch_augment import BatchAugment, augment_batches
from .errors import DataError
from .views import AugmentConfig


def image_sizes(files: Sequence[bytes]) -> list[tuple[int, int]]:
    """(height, width) of each encoded image, from its header alone (PIL opens lazily)."""
    sizes = []
    for data in files:
        with Image.open(io.BytesIO(data)) as img:
            sizes.append((img.height, img.width))
    return sizes


class JpegTwoViewDecoder:
    """JPEG bytes -> (view_a, view_b), decoded on ``device``, crops planned before the decode.

    Args:
        cfg: the recipe (the object the PIL path reads).
        device: where to decode and augment (``"cuda"`` on a GPU machine).
        decode_batch: files per ``decode_jpeg`` call (1 = image by image).

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30), "red").save(buf, "JPEG")
        >>> a, b = JpegTwoViewDecoder(cifar_augment())([buf.getvalue()] * 2, torch.Generator().manual_seed(0))
        >>> a.shape, b.dtype
        (torch.Size([2, 3, 32, 32]), torch.float32)
    """

    def __init__(self, cfg: AugmentConfig, device: str | torch.device = "cpu", decode_batch: int = 8):
        if not isinstance(cfg, AugmentConfig):
            raise TypeError(f"cfg must be an AugmentConfig, got {type(cfg).__name__}")
        if decode_batch < 1:
            raise ValueError(f"decode_batch must be >= 1, got {decode_batch}")
        self.cfg, self.device, self.decode_batch = cfg, torch.device(device), decode_batch
        self.views = (BatchAugment(cfg, 0), BatchAugment(cfg, 1))
        # the colour ops on the already cropped batch: the same recipe with its crop done
        done = dataclasses.replace(cfg, crop=False)
        self.colour = (BatchAugment(done, 0), BatchAugment(done, 1))
        self.batched_decode_failures = 0  # batched calls retried image by image
        self.pil_fallbacks = 0  # images decode_jpeg refused, decoded by PIL instead

    def plan(self, sizes: Sequence[tuple[int, int]], generator: torch.Generator | None = None):
        """Both views' parameters (as ``BatchAugment.sample``) and crop boxes (n, 4) = (top, left, h, w)."""
        params = [view.sample(len(sizes), generator) for view in self.views]
        return params, self.boxes(params, sizes)

    def boxes(self, params: Sequence[dict[str, torch.Tensor]], sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Each view's integer crop boxes (n, 4) = (top, left, h, w) for images of ``sizes`` (H, W),
        from parameters already drawn (e.g. this rank's rows of a global batch's draw)."""
        out = []
        for view, p in zip(self.views, params):
            box = torch.empty(len(sizes), 4, dtype=torch.long)
            for hw in set(sizes):  # one vectorised call per distinct image size
                rows = torch.tensor([k for k, s in enumerate(sizes) if s == hw])
                box[rows] = view.crop_boxes({k: v[rows] for k, v in p.items()}, *hw)
            out.append(box)
        return out

    def decode(self, files: Sequence[bytes | torch.Tensor], names: Sequence[str] | None = None) -> list[torch.Tensor]:
        """uint8 (3, H, W) images on the device, ``decode_batch`` files per call.

        ``files``: encoded bytes, or 1-d uint8 CPU tensors of them (``torchvision.io.read_file``).
        A batched call that fails is retried image by image; an image ``decode_jpeg`` refuses (a
        PNG or another format in an image folder, a JPEG nvJPEG cannot read) is decoded by PIL on
        the host as the PIL path reads it (``convert("RGB")``) and copied to the device
        (counted in ``pil_fallbacks``). A file PIL cannot read either raises DataError naming it
        (``names[k]`` when given).
        """
        data = [f if isinstance(f, torch.Tensor) else torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files]
        out = []
        for start in range(0, len(data), self.decode_batch):
            chunk = data[start : start + self.decode_batch]
            try:
                out += decode_jpeg(chunk, mode=ImageReadMode.RGB, device=self.device)
                continue
            except RuntimeError:  # e.g. nvJPEG's "Failed to decode batch": one at a time
                if len(chunk) > 1:
                    self.batched_decode_failures += 1
            for k, d in enumerate(chunk, start):
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    self.pil_fallbacks += 1
                    out.append(_pil_decode(d, names[k] if names else f"file {k} of the batch").to(self.device))
        return out

    def crop_resize(self, images: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """uint8 (n, 3, size, size): each image's box resized to the view size (crop off: the
        shorter side resized to ``size``, then the centre square, as the PIL path)."""
        S, cfg = self.cfg.size, self.cfg
        mode = TF.InterpolationMode.BICUBIC if cfg.interpolation == "bicubic" else TF.InterpolationMode.BILINEAR
        if not cfg.crop:
            return torch.stack([TF.center_crop(TF.resize(x, S, mode, antialias=True), S) for x in images])
        return torch.stack(
            [TF.resized_crop(x, *box.tolist(), [S, S], mode, antialias=True) for x, box in zip(images, boxes)]
        )

    def __call__(self, files: Sequence[bytes], generator: torch.Generator | None = None):
        params, boxes = self.plan(image_sizes(files), generator)
        return self.views_from(self.decode(files), params, boxes)

    def views_from(
        self, images: Sequence[torch.Tensor], params: Sequence[dict[str, torch.Tensor]], boxes: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(view_a, view_b) float32 (n, 3, size, size) of decoded images: crop + resize per image,
        then the colour ops of both views (as one batch on a GPU: ``batch_augment.augment_batches``)."""
        cropped = [self.crop_resize(images, box) for box in boxes]
        view_a, view_b = augment_batches(self.colour[0].cfg, cropped, list(params))
        return view_a, view_b


def _pil_decode(data: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 (3, H, W) on the CPU of an encoded image, by PIL as the PIL path reads it (``convert("RGB")``)."""
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read the image file {name} ({type(e).__name__}: {e}); remove or replace it") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
