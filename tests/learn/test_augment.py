"""Tests of parotidlib.learn.augment: per-sample batched augmentation on tensors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from parotidlib.config import TrainConfig
from parotidlib.learn.augment import BatchAugment, affine_theta, augment_batch

pytestmark = pytest.mark.usefixtures("one_thread")


FULL = {"flip": True, "rotate_deg": 10.0, "translate": 0.05, "scale": 0.1, "contrast": 0.2,
        "channel_jitter": 0.1}


def _batch(b=16, c=4, h=32, w=32, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keeps_shape_dtype_and_range(dtype):
    x = _batch(dtype=dtype)
    y = augment_batch(x, generator=torch.Generator().manual_seed(1), **FULL)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)  # it really changes the input
    assert torch.equal(x, _batch(dtype=dtype))  # and leaves the input alone


def test_deterministic_with_seeded_generator():
    x = _batch()
    a = augment_batch(x, generator=torch.Generator().manual_seed(7), **FULL)
    b = augment_batch(x, generator=torch.Generator().manual_seed(7), **FULL)
    c = augment_batch(x, generator=torch.Generator().manual_seed(8), **FULL)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_parameters_differ_between_samples_of_a_batch():
    """Unlike a v2 transform on a batch tensor, each sample draws its own parameters."""
    x = _batch(b=1).expand(8, -1, -1, -1).contiguous()
    y = augment_batch(x, generator=torch.Generator().manual_seed(0), **FULL)
    assert len({tuple(y[i].flatten()[:50].tolist()) for i in range(8)}) == 8


def test_flip_only_gives_the_four_flips():
    x = _batch(b=1, c=2, h=8, w=8).expand(64, -1, -1, -1).contiguous()
    y = augment_batch(x, generator=torch.Generator().manual_seed(0), flip=True)
    flips = [x[0], x[0].flip(-1), x[0].flip(-2), x[0].flip(-1).flip(-2)]
    seen = set()
    for sample in y:
        kinds = [k for k, f in enumerate(flips) if torch.equal(sample, f)]
        assert len(kinds) == 1
        seen.add(kinds[0])
    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize(("h", "w"), [(32, 32), (24, 40)])
@pytest.mark.parametrize(("angle", "tx", "ty", "scale"),
                         [(30.0, 0.1, -0.05, 1.1), (-12.0, 0.0, 0.08, 0.9), (90.0, 0.0, 0.0, 1.0)])
def test_affine_matches_torchvision(h, w, angle, tx, ty, scale):
    """Oracle: torchvision's v2.functional.affine with the same angle, shift and zoom."""
    x = _batch(b=1, h=h, w=w)
    ref = TF.affine(x, angle=angle, translate=[tx * w, ty * h], scale=scale, shear=[0.0, 0.0],
                    interpolation=InterpolationMode.BILINEAR)
    theta = affine_theta(torch.tensor([angle]), torch.tensor([tx]), torch.tensor([ty]),
                         torch.tensor([scale]), h, w)
    grid = F.affine_grid(theta, [1, 4, h, w], align_corners=False)
    ours = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_contrast_keeps_channel_means_and_scales_spread():
    x = 0.45 + 0.1 * _batch()  # no clipping: the blend is exact
    y = augment_batch(x, generator=torch.Generator().manual_seed(0), flip=False, contrast=0.2)
    torch.testing.assert_close(y.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-5, rtol=0)
    ratio = y.std(dim=(-2, -1)) / x.std(dim=(-2, -1))
    assert torch.all((ratio > 0.8 - 1e-4) & (ratio < 1.2 + 1e-4))
    # one factor per sample, shared by its channels
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4, rtol=0)
    assert ratio[:, 0].std() > 0.01


def test_channel_jitter_is_a_gain_and_offset_per_channel():
    x = 0.3 + 0.4 * _batch()
    y = augment_batch(x, generator=torch.Generator().manual_seed(0), flip=False,
                      channel_jitter=0.1)
    # fit y = g x + o per sample and channel (least squares): exact linear maps
    xm, ym = x.mean(dim=(-2, -1), keepdim=True), y.mean(dim=(-2, -1), keepdim=True)
    gain = ((x - xm) * (y - ym)).sum(dim=(-2, -1)) / ((x - xm) ** 2).sum(dim=(-2, -1))
    offset = ym.squeeze() - gain * xm.squeeze()
    assert torch.all((gain > 0.9 - 1e-4) & (gain < 1.1 + 1e-4))
    assert torch.all(offset.abs() < 0.1 + 1e-4)
    assert gain.std() > 0.01
    torch.testing.assert_close(y, gain[..., None, None] * x + offset[..., None, None],
                               atol=1e-5, rtol=0)


def test_batch_augment_reads_train_config():
    cfg = TrainConfig(epochs=1)
    x = _batch()
    aug = BatchAugment(cfg)
    torch.testing.assert_close(
        aug(x, torch.Generator().manual_seed(3)),
        augment_batch(x, generator=torch.Generator().manual_seed(3), flip=cfg.aug_flip,
                      rotate_deg=cfg.aug_rotate_deg, translate=cfg.aug_translate,
                      scale=cfg.aug_scale, contrast=cfg.aug_contrast,
                      channel_jitter=cfg.aug_channel_jitter),
    )
    off = BatchAugment(dataclasses.replace(cfg, augment=False))
    assert off(x, torch.Generator().manual_seed(3)) is x


def test_rejects_non_float_and_bad_magnitudes():
    with pytest.raises(ValueError, match="floating"):
        augment_batch(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="floating"):
        augment_batch(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="scale"):
        augment_batch(_batch(), scale=1.5)
