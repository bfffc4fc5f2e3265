"""The two views on whole uint8 batches on their device (GPU when there is one).

The same :class:`~vicreg_edu.views.AugmentConfig` as the PIL path (:mod:`vicreg_edu.augment`),
vectorised: per-sample random parameters drawn on CPU from a ``torch.Generator``, crop + resize +
flip as one ``grid_sample``, the colour ops as in ``torchvision.transforms.functional``, blur as a
per-sample separable convolution. Every random decision is turned into a plan on the CPU (grids,
factors, index sets), so the device never reports back to the host (no sync), and on a GPU both
views run as one batch. For in-memory datasets (Shapes, CIFAR) this removes the loader from the
critical path. Differences from the PIL path, all small: no rounding to uint8 between steps,
torch's bicubic kernel (a = -0.75) instead of PIL's (a = -0.5), an exact Gaussian instead of PIL's
box approximation, and no antialiasing when a crop is *larger* than the output (never the case for
32x32 data, where crops are at most the image).

Colour ops work on float (B, 3, H, W) in [0, 1] with per-sample factors of shape (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .views import AugmentConfig

_CROP_TRIALS = 10  # as torchvision's RandomResizedCrop.get_params


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma with torchvision's weights (PIL "L" uses 0.299): (B, 3, H, W) -> (B, 1, H, W)."""
    return 0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _blend(x: torch.Tensor, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * y).clamp_(0, 1)


_HSV_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)  # R, G, B of the HSV -> RGB formula below


def adjust_hue(x, h):
    """Rotate the hue by h (B,) turns in HSV space (torchvision ``adjust_hue``).

    RGB -> HSV as torchvision; back with the closed form of the six-sector table:
    channel_n = v - v * s * clamp(min(k, 4 - k), 0, 1), k = (n + 6 * hue) mod 6, n = 5, 3, 1
    for R, G, B (the same values, in a few whole-tensor ops instead of a selection per sector).
    """
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    chroma = maxc - minc
    s = chroma / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    cdiv = torch.where(chroma == 0, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maxc - r) / cdiv, (maxc - g) / cdiv, (maxc - b) / cdiv
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(chroma == 0, torch.zeros_like(hue), hue)
    hue = torch.remainder(hue / 6.0 + h.view(-1, 1, 1), 1.0)  # (B, H, W) in [0, 1)
    k = torch.remainder(_HSV_OFFSETS.to(x.device, x.dtype) + 6.0 * hue[:, None], 6.0)  # (B, 3, H, W)
    t = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    v = maxc[:, None]
    return (v - v * s[:, None] * t).clamp_(0, 1)  # (B, 3, H, W)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Per-sample Gaussian blur: x (B, C, H, W), sigma (B,) in pixels -> (B, C, H, W).

    One separable kernel per sample (radius ``ceil(3 * sigma_max)``, edges replicated), applied
    as a grouped convolution so the whole batch is one conv per direction.
    """
    B, C, H, W = x.shape
    r = max(1, math.ceil(3 * sigma_max))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma.to(x.dtype)[:, None] ** 2))  # (B, 2r+1)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B*C, 2r+1)
    y = x.reshape(1, B * C, H, W)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(B * C, 1, 1, -1), groups=B * C)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(B * C, 1, -1, 1), groups=B * C)
    return y.view(B, C, H, W)


class BatchAugment:
    """One view of the recipe on a whole uint8 batch, on the batch's device.

    Args:
        cfg: the AugmentConfig (the same object the PIL path reads).
        view: 0 (view a) or 1 (view b); picks ``blur_p[view]`` and ``solarize_p[view]``.

    ``sample(n, generator)`` draws every random parameter for n images on CPU: a dict of tensors
    with leading dimension n (so a trainer can draw a global batch with a shared generator and
    keep its rank's rows: ``{k: v[idx] for k, v in params.items()}``). The number of draws does
    not depend on the config, so switching one augmentation off leaves the others' parameters
    unchanged for the same seed. ``apply(x, params)`` runs on ``x.device``.

    Shapes: x uint8 (B, 3, H, W) -> float32 (B, 3, size, size), normalised.

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> aug = BatchAugment(cifar_augment(), view=0)
        >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> aug(x, torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(self, cfg: AugmentConfig, view: int):
        if not isinstance(cfg, AugmentConfig):
            raise TypeError(f"cfg must be an AugmentConfig, got {type(cfg).__name__}")
        if view not in (0, 1):
            raise ValueError(f"view must be 0 (view a) or 1 (view b), got {view!r}")
        self.cfg, self.view = cfg, view
        self.blur_p, self.solarize_p = cfg.blur_p[view], cfg.solarize_p[view]

    # -- parameters ------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Draw the random parameters of n images (on CPU).

        Returns a dict: crop_area (n, 10) area fractions and crop_log_ratio (n, 10) log aspect
        ratios (10 trials, the first that fits is used, as torchvision), crop_pos (n, 2) in
        [0, 1), flip (n,) bool, jitter (n,) bool, jitter_order (n, 4) a permutation of
        (brightness, contrast, saturation, hue), jitter_factors (n, 4), gray (n,) bool,
        blur (n,) bool, blur_sigma (n,), solarize (n,) bool.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        cfg, g = self.cfg, generator

        def u(*shape):
            return torch.rand(*shape, generator=g)

        lo, hi = cfg.crop_scale
        lr0, lr1 = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
        ranges = torch.tensor(
            [
                [max(0.0, 1 - cfg.brightness), 1 + cfg.brightness],
                [max(0.0, 1 - cfg.contrast), 1 + cfg.contrast],
                [max(0.0, 1 - cfg.saturation), 1 + cfg.saturation],
                [-cfg.hue, cfg.hue],
            ]
        )
        s0, s1 = cfg.blur_sigma
        return {
            "crop_area": lo + (hi - lo) * u(n, _CROP_TRIALS),
            "crop_log_ratio": lr0 + (lr1 - lr0) * u(n, _CROP_TRIALS),
            "crop_pos": u(n, 2),
            "flip": u(n) < cfg.flip_p,
            "jitter": u(n) < cfg.jitter_p,
            "jitter_order": u(n, 4).argsort(dim=1),  # a uniformly random permutation per row
            "jitter_factors": ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * u(n, 4),
            "gray": u(n) < cfg.grayscale_p,
            "blur": u(n) < self.blur_p,
            "blur_sigma": s0 + (s1 - s0) * u(n),
            "solarize": u(n) < self.solarize_p,
        }

    def crop_boxes(self, params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
        """Integer crop boxes (n, 4) as (top i, left j, h, w), exactly torchvision's rule.

        For each image: the first of the 10 trials whose w = round(sqrt(A * r)),
        h = round(sqrt(A / r)) (A = area fraction * H * W, r = aspect ratio) fits in the image,
        at a uniformly random integer position; if none fits, the centre crop with the ratio
        clamped to the allowed range.
        """
        return _crop_boxes(self.cfg, params, height, width)

    # -- application -----------------------------------------------------------
    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment x uint8 (B, 3, H, W) with the given params -> float32 (B, 3, size, size)."""
        return _augment_views(self.cfg, x, [params])[0]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), generator))


def _colour_jitter(out: torch.Tensor, plan: dict[str, torch.Tensor]) -> None:
    """ColorJitter in place on float views ``(V*B, 3, S, S)``: at each of the 4 steps, one blend
    (brightness, contrast or saturation, whichever each image draws there) and the hue shift."""
    for step in range(4):
        if f"blend_idx{step}" in plan:  # the images whose op at this step is b, c or s
            idx = plan[f"blend_idx{step}"]
            sub = out[idx]
            y = 0.0  # brightness blends with black
            if f"is_con{step}" in plan:  # contrast: with the mean grey level; saturation: with grey
                g = _gray(sub)
                y = torch.where(
                    plan[f"is_sat{step}"].view(-1, 1, 1, 1),
                    g,
                    torch.where(plan[f"is_con{step}"].view(-1, 1, 1, 1), g.mean(dim=(1, 2, 3), keepdim=True), y),
                )
            out[idx] = _blend(sub, y, plan[f"blend_f{step}"])
        if f"hue_idx{step}" in plan:
            idx = plan[f"hue_idx{step}"]
            out[idx] = adjust_hue(out[idx], plan[f"hue_f{step}"])


def _augment_views(cfg: AugmentConfig, x: torch.Tensor, views: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """V views of x uint8 (B, 3, H, W), one params dict each -> V float32 (B, 3, size, size).

    How it stays fast on a GPU: every random decision is read from ``params`` on the CPU, where
    they were drawn, and turned into a plan (sampling grids, per-image factors, index sets) before
    any device work. The plan goes to the device in one copy per dtype (pinned, non-blocking), so
    the device never reports back (no sync), and the V views run as one batch of V*B images: one
    ``grid_sample`` for crop + resize + flip of every view, then each colour-jitter step as one
    blend on the images whose op is brightness, contrast or saturation (the three differ only in
    what they blend with: black, the mean grey level, the grey image) plus hue on the others.
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
        raise TypeError(f"BatchAugment expects a uint8 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected x of shape (B, 3, H, W), got {tuple(x.shape)}")
    B, _, H, W = x.shape
    for params in views:
        bad = [k for k, v in params.items() if v.shape[0] != B]
        if bad:
            raise ValueError(f"params {bad} have a leading dimension != batch size {B}")
    S, V, dev = cfg.size, len(views), x.device
    plan = _to_device(_plan(cfg, views, H, W), dev)
    xf = x.float().div_(255)

    # 1. crop + resize + flip: one grid_sample for all views (their grids stacked along the height)
    if "gx" in plan:
        gx, gy = plan["gx"], plan["gy"]  # (B, V, S) each, in grid_sample's [-1, 1]
        grid = torch.stack([gx[:, :, None, :].expand(B, V, S, S), gy[:, :, :, None].expand(B, V, S, S)], -1)
        out = F.grid_sample(
            xf, grid.view(B, V * S, S, 2), mode=cfg.interpolation, padding_mode="border", align_corners=False
        )  # (B, 3, V*S, S)
        out = torch.cat(out.split(S, dim=2)).clamp_(0, 1)  # (V*B, 3, S, S), view-major
    else:  # nothing to resample: a flip
        xv = xf.repeat(V, 1, 1, 1) if V > 1 else xf
        out = torch.where(plan["flip"].view(-1, 1, 1, 1), xv.flip(-1), xv)

    # 2. colour jitter, the 4 ops in a random order per image
    _colour_jitter(out, plan)

    # 3. grayscale, 4. blur, 5. solarize
    if "gray" in plan:
        out = torch.where(plan["gray"].view(-1, 1, 1, 1), _gray(out).expand_as(out), out)
    if "blur_idx" in plan:
        idx = plan["blur_idx"]
        out[idx] = gaussian_blur(out[idx], plan["blur_sigma"], cfg.blur_sigma[1])
    if "solarize" in plan:
        sol = plan["solarize"].view(-1, 1, 1, 1) & (out >= 0.5)  # uint8 >= 128
        out = torch.where(sol, 1 - out, out)

    # 6. normalise
    out = (out - plan["mean"].view(1, 3, 1, 1)) / plan["std"].view(1, 3, 1, 1)
    return list(out.split(B))


def _crop_boxes(cfg: AugmentConfig, params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
    """BatchAugment.crop_boxes for any config (torchvision's RandomResizedCrop rule, vectorised)."""
    area = params["crop_area"].double() * (height * width)
    ratio = params["crop_log_ratio"].double().exp()
    w = torch.round(torch.sqrt(area * ratio))
    h = torch.round(torch.sqrt(area / ratio))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, 10)
    first = ok.double().argmax(dim=1, keepdim=True)  # index of the first fitting trial
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    any_ok = ok.any(dim=1)
    # fallback: torchvision's central crop, the whole image with its ratio clamped to crop_ratio
    in_ratio = width / height
    r_lo, r_hi = cfg.crop_ratio
    if in_ratio < r_lo:
        fw, fh = width, int(round(width / r_lo))
    elif in_ratio > r_hi:
        fw, fh = int(round(height * r_hi)), height
    else:
        fw, fh = width, height
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    pos = params["crop_pos"].double()
    i = torch.floor(pos[:, 0] * (height - h + 1))
    j = torch.floor(pos[:, 1] * (width - w + 1))
    i = torch.where(any_ok, i, (height - h) // 2)
    j = torch.where(any_ok, j, (width - w) // 2)
    return torch.stack([i, j, h, w], 1).long()


def _plan(cfg: AugmentConfig, views: list[dict[str, torch.Tensor]], H: int, W: int) -> dict[str, torch.Tensor]:
    """Everything _augment_views needs from the random parameters, computed on the CPU.

    Keys are present only when their op touches at least one image (so absent ops cost nothing).
    Per-image entries cover the V*B images view-major (view 0's B images first).
    """
    B, S = len(views[0]["flip"]), cfg.size
    p = {k: torch.cat([v[k].cpu() for v in views]) for k in views[0]}  # (V*B, ...)
    plan = {"mean": torch.tensor(cfg.mean), "std": torch.tensor(cfg.std)}
    if not cfg.crop and H == W == S:
        plan["flip"] = p["flip"]
    else:
        if cfg.crop:
            box = _crop_boxes(cfg, p, H, W).float()  # (V*B, 4): i, j, h, w
        else:  # centre square, resized to S (as Resize(S) + CenterCrop(S) on a square crop)
            side = min(H, W)
            box = torch.tensor([(H - side) // 2, (W - side) // 2, side, side]).float().expand(len(p["flip"]), 4)
        t = (torch.arange(S, dtype=torch.float32) + 0.5) / S  # output pixel centres
        gx = 2 * (box[:, 1:2] + t * box[:, 3:4]) / W - 1  # (V*B, S)
        gy = 2 * (box[:, 0:1] + t * box[:, 2:3]) / H - 1
        gx = torch.where(p["flip"].view(-1, 1), gx.flip(-1), gx)
        plan["gx"] = gx.view(len(views), B, S).transpose(0, 1).contiguous()  # (B, V, S)
        plan["gy"] = gy.view(len(views), B, S).transpose(0, 1).contiguous()

    strengths = torch.tensor([cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue])
    for step in range(4):
        op = p["jitter_order"][:, step]  # (V*B,) 0 brightness, 1 contrast, 2 saturation, 3 hue
        active = p["jitter"] & (strengths[op] > 0)
        blend = torch.nonzero(active & (op < 3))[:, 0]
        if len(blend):
            op_b = op[blend]
            plan[f"blend_idx{step}"] = blend
            plan[f"blend_f{step}"] = p["jitter_factors"][blend, op_b]
            if (op_b > 0).any():
                plan[f"is_con{step}"], plan[f"is_sat{step}"] = op_b == 1, op_b == 2
        hue = torch.nonzero(active & (op == 3))[:, 0]
        if len(hue):
            plan[f"hue_idx{step}"], plan[f"hue_f{step}"] = hue, p["jitter_factors"][hue, 3]
    if p["gray"].any():
        plan["gray"] = p["gray"]
    blur = torch.nonzero(p["blur"])[:, 0]
    if len(blur):
        plan["blur_idx"], plan["blur_sigma"] = blur, p["blur_sigma"][blur]
    if p["solarize"].any():
        plan["solarize"] = p["solarize"]
    return plan


def _to_device(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """CPU tensors -> device in one copy per dtype (pinned and non-blocking on CUDA)."""
    if device.type == "cpu":
        return tensors
    keys_by_dtype: dict[torch.dtype, list[str]] = {}
    for k, t in tensors.items():
        keys_by_dtype.setdefault(t.dtype, []).append(k)
    out = {}
    for keys in keys_by_dtype.values():
        flat = torch.cat([tensors[k].reshape(-1) for k in keys])
        if device.type == "cuda":
            flat = flat.pin_memory()
        flat = flat.to(device, non_blocking=True)
        for k, piece in zip(keys, flat.split([tensors[k].numel() for k in keys])):
            out[k] = piece.view(tensors[k].shape)
    return out


def augment_batches(
    cfg: AugmentConfig,
    batches: list[torch.Tensor],
    params: list[dict[str, torch.Tensor]],
    one_batch: bool | None = None,
) -> list[torch.Tensor]:
    """The recipe on several uint8 batches of one size, each with its own parameters.

    For views that were cropped elsewhere (the JPEG path crops while it decodes, each view its
    own box): ``cfg`` is then the recipe with ``crop=False`` and each batch is (B_k, 3, size, size).
    Every op works image by image, so augmenting the batches concatenated with their parameters
    concatenated gives each batch's result: on a GPU that is what runs (one batch, half the
    kernel launches for two views); on the CPU the batches run one at a time, as
    :meth:`TwoViewBatchAugment.apply` does. ``one_batch`` overrides that choice.

    Shapes: batches[k] uint8 (B_k, 3, H, W), params[k] as ``BatchAugment.sample(B_k)`` ->
    float32 (B_k, 3, size, size) each.

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> cfg = cifar_augment(crop=False)
        >>> xs = [torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(3, 3, 32, 32, dtype=torch.uint8)]
        >>> g = torch.Generator().manual_seed(0)
        >>> params = [BatchAugment(cfg, k).sample(len(x), g) for k, x in enumerate(xs)]
        >>> [v.shape[0] for v in augment_batches(cfg, xs, params)]
        [2, 3]
    """
    if len(batches) != len(params):
        raise ValueError(f"got {len(batches)} batches but {len(params)} parameter sets")
    if not batches:
        return []
    if one_batch is None:
        one_batch = batches[0].device.type != "cpu"
    if not one_batch or len(batches) == 1:
        return [_augment_views(cfg, x, [p])[0] for x, p in zip(batches, params)]
    shapes = {tuple(x.shape[1:]) for x in batches}
    if len(shapes) > 1:
        raise ValueError(f"batches must share (3, H, W) to run as one batch, got {sorted(shapes)}")
    x = torch.cat(batches)
    p = {k: torch.cat([q[k].cpu() for q in params]) for k in params[0]}
    return list(_augment_views(cfg, x, [p])[0].split([len(b) for b in batches]))


class TwoViewBatchAugment:
    """Both views of a uint8 batch on its device: ``(view_a, view_b)``.

    Attributes ``view_a = BatchAugment(cfg, 0)`` and ``view_b = BatchAugment(cfg, 1)``.

    Shapes: x uint8 (B, 3, H, W) -> two float32 (B, 3, size, size).

    Example:
        >>> from vicreg_edu.views import cifar_augment
        >>> aug = TwoViewBatchAugment(cifar_augment())
        >>> a, b = aug(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.Generator().manual_seed(0))
        >>> a.shape == b.shape == (4, 3, 32, 32)
        True
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.view_a, self.view_b = BatchAugment(cfg, 0), BatchAugment(cfg, 1)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Parameters of both views: (params_a, params_b), each as BatchAugment.sample."""
        return self.view_a.sample(n, generator), self.view_b.sample(n, generator)

    def apply(self, x: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views of x uint8 (B, 3, H, W) from (params_a, params_b), as one batch of 2B images."""
        if x.device.type == "cpu":  # one view at a time: smaller tensors stay in cache (~10% faster)
            return _augment_views(self.cfg, x, [params[0]])[0], _augment_views(self.cfg, x, [params[1]])[0]
        view_a, view_b = _augment_views(self.cfg, x, list(params))  # one batch: half the kernel launches
        return view_a, view_b

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None):
        return self.apply(x, self.sample(len(x), generator))
