"""Batched data augmentation on the training device (Xia et al. 2021, "Deep-Learning Network
Structure": "random image flipping, contrast adjustment, color jitter, and affine transform").

Why batched, and why not only torchvision's v2 transforms: a v2 transform applied to a batch
tensor draws ONE set of random parameters for the whole batch, and v2's ColorJitter accepts 1 or
3 channels, not our 4 MR channels. Per-sample transforms in a DataLoader (the usual recipe) cost
a Python call per slice and keep the work on the CPU. Here every random parameter is drawn per
sample in one ``torch.rand`` call and applied to the whole batch with tensor operations, as
kornia.augmentation does (per-sample matrices, ``warp_affine`` over ``grid_sample``); torchvision
itself resamples through ``grid_sample`` in ``v2.functional.affine``, whose angle/shift/zoom
convention ours follows exactly (tested against it). Flips are folded into the warp's matrix
(one resampling pass), or use torchvision's flip kernels when there is no warp; contrast and
brightness follow torchvision's formulas (blend with the mean; gain), per channel, fused into
one multiply-add pass. The whole batch costs a handful of kernels on any device.

All operations keep shape, dtype, device and the [0, 1] value range. The parameters come from
the given ``torch.Generator`` in a fixed order that does not depend on which operations are on,
so a seeded generator gives the same batch on every run.

Example
-------
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.rand(8, 4, 32, 32)
>>> y = augment_batch(x, generator=g, rotate_deg=10.0, translate=0.05)
>>> y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
True
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

# Columns of the per-sample uniform draws, before the 2 * C channel-jitter columns.
_HFLIP, _VFLIP, _ANGLE, _TX, _TY, _SCALE, _CONTRAST = range(7)
_N_FIXED = 7


class AugmentSettings(Protocol):
    """The fields :class:`BatchAugment` reads (``parotidlib.learn.train.TrainConfig`` has them)."""

    augment: bool
    aug_flip: bool
    aug_rotate_deg: float
    aug_translate: float
    aug_scale: float
    aug_contrast: float
    aug_channel_jitter: float


def affine_theta(
    angle_deg: Tensor, tx: Tensor, ty: Tensor, scale: Tensor, height: int, width: int
) -> Tensor:
    """Per-sample 2 x 3 matrices for ``F.affine_grid`` (output -> input, normalised coords).

    Parameters
    ----------
    angle_deg : Tensor, shape (B,)
        Rotation in degrees, counter-clockwise on the displayed image (torchvision's sign).
    tx, ty : Tensor, shape (B,)
        Translation as a fraction of the image width / height (torchvision's ``translate``).
    scale : Tensor, shape (B,)
        Zoom factor (> 1 enlarges the content).
    height, width : int
        Image size in pixels; the aspect ratio keeps rotations rigid on non-square images.

    Returns
    -------
    Tensor, shape (B, 2, 3)
        ``theta`` such that ``F.affine_grid(theta, size, align_corners=False)`` samples the
        input at ``A^-1 (p - t)`` for every output pixel ``p``, ``A`` = scale * rotation.
    """
    # The forward map in pixel units about the centre (y down) is p' = s R p + t, R turning
    # counter-clockwise on screen; the grid needs its inverse, R^-1 / s, conjugated by
    # diag(W/2, H/2) into affine_grid's [-1, 1] coordinates. With y down, a counter-clockwise
    # turn on screen is a clockwise one in (x, y), hence the sign. Same convention and result
    # as torchvision's v2.functional.affine (checked in tests/learn/test_augment.py).
    a = -torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    m00, m01 = cos, -sin * (height / width)
    m10, m11 = sin * (width / height), cos
    # Translation by t (fractions of the size) is 2 t in normalised units; inverse is -M t.
    tnx, tny = 2.0 * tx, 2.0 * ty
    b0 = -(m00 * tnx + m01 * tny)
    b1 = -(m10 * tnx + m11 * tny)
    return torch.stack(
        (torch.stack((m00, m01, b0), dim=-1), torch.stack((m10, m11, b1), dim=-1)), dim=-2
    )


def augment_batch(
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
    flip: bool = True,
    rotate_deg: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    contrast: float = 0.0,
    channel_jitter: float = 0.0,
) -> Tensor:
    """Randomly flip, warp and re-contrast every sample of a batch independently.

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W), floating, values in [0, 1]
        The batch, on any device.
    generator : torch.Generator, optional
        Source of all random parameters (drawn on its own device, then moved to ``x``'s).
        None uses the global RNG of ``x``'s device.
    flip : bool
        Horizontal and vertical flip, each with probability 1/2 per sample.
    rotate_deg : float
        Rotation drawn uniformly from [-rotate_deg, rotate_deg] degrees.
    translate : float
        Shift drawn uniformly from [-translate, translate] times the width (height).
    scale : float
        Zoom drawn uniformly from [1 - scale, 1 + scale]. The warp is bilinear with zero
        fill (the background of the cropped slices), as torchvision's ``RandomAffine``.
    contrast : float
        Per-sample contrast factor c in [1 - contrast, 1 + contrast]:
        ``mean + c (x - mean)`` with the per-channel mean of the sample (torchvision's
        ``adjust_contrast`` blend, with a mean per MR series instead of RGB grey).
    channel_jitter : float
        Per-sample, per-channel gain in [1 - j, 1 + j] (torchvision's ``adjust_brightness``
        for each channel) and offset in [-j, j]: the "color jitter" of a 4-channel image.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``x``, in [0, 1] (clamped once, after the
        intensity changes; torchvision clamps after each).

    Raises
    ------
    ValueError
        If ``x`` is not a floating 4-D tensor or a magnitude is out of range.
    """
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            "x must be a floating tensor of shape (B, C, H, W), got "
            f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}"
        )
    for name, value, upper in (
        ("rotate_deg", rotate_deg, 180.0),
        ("translate", translate, 1.0),
        ("scale", scale, 1.0 - 1e-6),
        ("contrast", contrast, 1.0),
        ("channel_jitter", channel_jitter, 1.0),
    ):
        if not 0.0 <= value <= upper:
            raise ValueError(f"{name} must be in [0, {upper:g}], got {value!r}")
    b, c, h, w = x.shape
    if b == 0:
        return x
    # One draw for every parameter of every sample: few kernel launches, and a fixed order.
    draw_device = generator.device if generator is not None else x.device
    u = torch.rand((b, _N_FIXED + 2 * c), generator=generator, device=draw_device)
    u = u.to(device=x.device, dtype=torch.float32)
    out = x
    warp = rotate_deg > 0 or translate > 0 or scale > 0

    if warp:
        def sym(col: int, magnitude: float) -> Tensor:  # uniform on [-magnitude, magnitude]
            return (2.0 * u[:, col] - 1.0) * magnitude

        theta = affine_theta(
            sym(_ANGLE, rotate_deg), sym(_TX, translate), sym(_TY, translate),
            1.0 + sym(_SCALE, scale), h, w,
        )
        if flip:
            # A flip before the warp is a sign change of the sampling grid's x (y) row:
            # folded into theta, flip and warp cost one grid_sample pass.
            signs = torch.where(u[:, _HFLIP:_VFLIP + 1] < 0.5, -1.0, 1.0)  # (B, 2)
            theta = theta * signs[:, :, None]
        grid = F.affine_grid(theta.to(out.dtype), [b, c, h, w], align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    elif flip:
        # Exact flips (no resampling) with torchvision's kernels, chosen per sample.
        mask = (u[:, _HFLIP] < 0.5).view(b, 1, 1, 1)
        out = torch.where(mask, TF.horizontal_flip(out), out)
        mask = (u[:, _VFLIP] < 0.5).view(b, 1, 1, 1)
        out = torch.where(mask, TF.vertical_flip(out), out)

    if contrast > 0 or channel_jitter > 0:
        # Both intensity changes are affine per (sample, channel): out * gain + offset,
        # applied in one pass and clamped once.
        gain = torch.ones((b, c), device=x.device)
        offset = torch.zeros((b, c), device=x.device)
        if contrast > 0:
            factor = 1.0 + (2.0 * u[:, _CONTRAST:_CONTRAST + 1] - 1.0) * contrast  # (B, 1)
            mean = out.mean(dim=(-2, -1), dtype=torch.float32)  # (B, C)
            gain, offset = gain * factor, (1.0 - factor) * mean
        if channel_jitter > 0:
            g = 1.0 + (2.0 * u[:, _N_FIXED:_N_FIXED + c] - 1.0) * channel_jitter
            o = (2.0 * u[:, _N_FIXED + c:] - 1.0) * channel_jitter
            gain, offset = gain * g, offset * g + o
        out = torch.addcmul(offset.view(b, c, 1, 1).to(out.dtype), out,
                            gain.view(b, c, 1, 1).to(out.dtype)).clamp_(0.0, 1.0)
    elif warp:
        out.clamp_(0.0, 1.0)  # bilinear weights sum to 1 only up to rounding
    return out if out is not x else x.clone()


class BatchAugment:
    """The training augmentation configured from ``TrainConfig``'s ``augment``/``aug_*`` fields.

    Parameters
    ----------
    config : AugmentSettings
        Any object with the fields ``augment`` (False: identity), ``aug_flip``,
        ``aug_rotate_deg``, ``aug_translate``, ``aug_scale``, ``aug_contrast`` and
        ``aug_channel_jitter`` (see :func:`augment_batch`).

    Example
    -------
    >>> from parotidlib.learn.train import TrainConfig
    >>> aug = BatchAugment(TrainConfig(epochs=1))
    >>> y = aug(torch.rand(4, 4, 32, 32), torch.Generator().manual_seed(0))
    """

    def __init__(self, config: AugmentSettings) -> None:
        self.enabled = bool(config.augment)
        self.kwargs = {
            "flip": bool(config.aug_flip),
            "rotate_deg": float(config.aug_rotate_deg),
            "translate": float(config.aug_translate),
            "scale": float(config.aug_scale),
            "contrast": float(config.aug_contrast),
            "channel_jitter": float(config.aug_channel_jitter),
        }
        if not math.isfinite(sum(v for v in self.kwargs.values() if isinstance(v, float))):
            raise ValueError(f"augmentation magnitudes must be finite, got {self.kwargs!r}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``x`` (B, C, H, W) in [0, 1]; identity when ``augment`` is off."""
        if not self.enabled:
            return x
        return augment_batch(x, generator=generator, **self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"BatchAugment(enabled={self.enabled}, {args})"
