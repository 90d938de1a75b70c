"""Grad-CAM maps, ROI fractions and the randomisation check (parotidlib.learn.saliency).

The toy network: a small ReducedResNet trained for a few seconds on 64 px images where the
class is whether a faint square lies in the top-left quadrant. Every image also has two bright
discs elsewhere (never in that quadrant) that carry no information: a network that has learnt
the task must look at the square, while an untrained one is drawn to the brightest pixels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from parotidlib.constants import CHANNELS
from parotidlib.learn.model import ReducedResNet, build_model
from parotidlib.learn.saliency import (
    cam_image,
    cam_weights,
    gradcam,
    last_residual_stage,
    mask_fraction,
    randomisation_check,
    randomised_copy,
    roi_masks,
    roi_reference_channel,
    saliency_summary,
)

SIZE = 64
HALF = SIZE // 2
#: The toy's decisive region: the top-left quadrant (a quarter of the pixels).
TOP_LEFT = np.zeros((SIZE, SIZE), bool)
TOP_LEFT[:HALF, :HALF] = True


def toy_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images 4 x 64 x 64 and labels: 1 when a faint 12 px square (110) lies in the
    top-left quadrant; always two bright discs (255) outside it; noise 1..40 elsewhere."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images = rng.integers(1, 41, size=(n, 4, SIZE, SIZE)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    for i in range(n):
        for _ in range(2):
            while True:
                cy, cx = rng.integers(6, SIZE - 6, 2)
                if cy >= HALF + 2 or cx >= HALF + 2:
                    break
            images[i, :, (yy - cy) ** 2 + (xx - cx) ** 2 <= 30] = 255
        if labels[i]:
            r, c = rng.integers(0, HALF - 12 + 1, 2)
            images[i, :, r:r + 12, c:c + 12] = 110
    return images, labels


@pytest.fixture(scope="module")
def toy():
    """(trained model, test images, test labels): ~2 s of training on 384 images."""
    rng = np.random.default_rng(2)
    images, labels = toy_images(384, rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model = ReducedResNet(in_channels=4, num_classes=2, widths=(8, 16))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        x = torch.from_numpy(images).float() / 255
        y = torch.from_numpy(labels)
        for _ in range(12):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                batch = order[i:i + 64]
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    test_images, test_labels = toy_images(160, np.random.default_rng(102))
    with torch.no_grad():
        predicted = model(torch.from_numpy(test_images).float() / 255).argmax(1).numpy()
    assert (predicted == test_labels).mean() > 0.95, "the toy network did not learn its task"
    return model, test_images, test_labels


def small_model(seed: int = 0, widths=(4, 8)) -> ReducedResNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ReducedResNet(in_channels=4, num_classes=4, widths=widths).eval()


def random_images(n: int = 5, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 4, size, size), dtype=np.uint8)


# ------------------------------------------------------------------------------- the layer

def test_the_last_residual_stage_is_stages_layer2_of_the_paper_network():
    model = build_model(in_channels=4)
    name, module = last_residual_stage(model)
    assert name == "stages.layer2" and module is model.stages.layer2
    assert last_residual_stage(ReducedResNet(4, widths=(8,)))[0] == "stages.layer1"
    with pytest.raises(TypeError, match="stages"):
        last_residual_stage(nn.Sequential(nn.Conv2d(4, 2, 3)))


# ------------------------------------------------------------------------------- gradcam

@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_gradcam_gives_non_negative_maps_at_input_size_and_leaves_the_model_alone(method):
    model = small_model().train()
    flags_before = [p.requires_grad for p in model.parameters()]
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    images = random_images()
    images.setflags(write=False)  # as a read-only memmap of load_dataset
    maps = gradcam(model, images, target=1, method=method)
    assert maps.shape == (5, 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() > 0
    assert model.training  # put back in the mode it had
    assert [p.requires_grad for p in model.parameters()] == flags_before
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # eval mode: no BatchNorm statistics updated
        assert torch.equal(v, state_before[k]), k
    # one target for all slices == the same target per slice; uint8 == float in [0, 1]
    np.testing.assert_array_equal(maps, gradcam(model, images, np.ones(5, int), method=method))
    np.testing.assert_allclose(gradcam(model, images.astype(np.float32) / 255, 1,
                                       method=method), maps, rtol=1e-5, atol=1e-7)
    # batches and the channels_last model of load_model change nothing
    model.to(memory_format=torch.channels_last)
    np.testing.assert_allclose(gradcam(model, images, 1, method=method, batch_size=2), maps,
                               rtol=1e-4, atol=1e-7)


def test_gradcam_of_no_slices_and_errors():
    model = small_model()
    assert gradcam(model, random_images(0), 0).shape == (0, 32, 32)
    images = random_images(2)
    with pytest.raises(ValueError, match="method"):
        gradcam(model, images, 0, method="scorecam")
    with pytest.raises(ValueError, match="channels"):
        gradcam(model, images[:, :3], 0)
    with pytest.raises(ValueError, match="target"):
        gradcam(model, images, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="< 4"):
        gradcam(model, images, 4)
    with pytest.raises(ValueError, match="ints"):
        gradcam(model, images, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="no layer"):
        gradcam(model, images, 0, layer="stages.layer9")


def test_gradcam_equals_captums_layer_gradcam():
    """An independent implementation (captum) gives the same Grad-CAM maps."""
    captum_attr = pytest.importorskip("captum.attr")
    model = small_model(seed=3)
    images = random_images(6, seed=3)
    targets = np.array([0, 1, 2, 3, 1, 2])
    ours = gradcam(model, images, targets, layer="stages.layer1")
    x = torch.from_numpy(images).float() / 255
    layer = captum_attr.LayerGradCam(model, model.stages.layer1)
    attr = layer.attribute(x, target=torch.from_numpy(targets), relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(attr, (32, 32), interpolate_mode="bilinear")
    theirs = theirs[:, 0].detach().numpy()
    scale = theirs.max()
    assert scale > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_maps_are_the_librarys_own_maps_before_its_display_scaling(method):
    """pytorch-grad-cam's public call min-max scales each map; ours are the same up to that
    per-slice affine scaling (Pearson correlation 1 per slice)."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = small_model(seed=4)
    images = random_images(4, size=64, seed=4)
    targets = [2, 0, 3, 1]
    ours = gradcam(model, images, np.array(targets), method=method)
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    try:
        with cls(model=model, target_layers=[model.stages.layer2]) as cam:  # releases its hooks
            theirs = cam(input_tensor=torch.from_numpy(images).float() / 255,
                         targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        model.zero_grad(set_to_none=True)
    assert (ours.max(axis=(1, 2)) > 0).sum() >= 2
    for a, b in zip(ours, theirs, strict=True):
        if a.max() == 0:  # no positive evidence: the library's map is zero too
            assert b.max() == 0
        else:
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_channel_weights_are_pytorch_grad_cams_to_the_bit(method):
    """cam_weights is the weighting of pytorch-grad-cam's classes (the method they are
    subclassed through), so the maps equal those the kit made with the library's hooks."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    rng = np.random.default_rng(7)
    acts = rng.standard_normal((3, 5, 4, 4)).astype(np.float32)
    grads = rng.standard_normal((3, 5, 4, 4)).astype(np.float32)
    grads[0, 1, :2] = 0  # zero gradients: Grad-CAM++'s alpha is 0 there
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    theirs = cls.get_cam_weights(None, None, None, None, acts, grads)
    ours = cam_weights(acts, grads, method)
    assert ours.dtype == np.float32 and np.array_equal(ours, theirs)
    np.testing.assert_array_equal(cam_image(acts, grads, method),
                                  (theirs[:, :, None, None] * acts).sum(axis=1))
    with pytest.raises(ValueError, match="method"):
        cam_weights(acts, grads, "eigencam")


# ------------------------------------------------------------------------ the toy network

@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_the_map_puts_most_of_its_mass_where_the_decision_is_made(toy, method):
    model, images, labels = toy
    present = images[labels == 1]
    fractions = mask_fraction(gradcam(model, present, 1, method=method), TOP_LEFT)
    # A map spread evenly would put 0.25 there; the stated criterion is > 0.5.
    assert np.nanmean(fractions) > 0.5
    # The same network with random weights looks elsewhere (at the bright discs).
    random_maps = gradcam(randomised_copy(model, seed=0), present, 1, method=method)
    assert np.nanmean(mask_fraction(random_maps, TOP_LEFT)) < np.nanmean(fractions) - 0.2


def test_randomisation_check_tells_learned_maps_from_unchanged_ones(toy):
    model, images, labels = toy
    present = images[labels == 1]
    check = randomisation_check(model, present, 1, seed=0)
    assert check["n_slices"] == len(present) and check["n_undefined"] == 0
    assert check["mean_spearman"] < 0.5 and check["informative"] is True
    assert check["reference"] == "randomised" and check["threshold"] == 0.5
    json.dumps(check)
    # Against itself: correlation 1, the maps "did not change", so not informative.
    same = randomisation_check(model, present, 1, reference=model)
    assert same["mean_spearman"] == pytest.approx(1.0)
    assert same["informative"] is False and same["reference"] == "given"
    # A lenient threshold below every correlation flips the verdict too.
    strict = randomisation_check(model, present, 1, seed=0, threshold=-1.0,
                                 maps=gradcam(model, present, 1))
    assert strict["mean_spearman"] == pytest.approx(check["mean_spearman"])
    assert strict["informative"] is False


def test_randomisation_check_of_all_zero_maps_is_undefined():
    model = small_model()
    images = random_images(3)
    zero = np.zeros((3, 32, 32), np.float32)
    check = randomisation_check(model, images, 0, maps=zero)
    assert check["n_undefined"] == 3 and check["mean_spearman"] is None
    assert check["informative"] is False and check["median_spearman"] is None
    json.dumps(check)


# ------------------------------------------------------------------------ randomised copy

def test_randomised_copy_reinitialises_every_layer_reproducibly():
    model = small_model(seed=5)
    with torch.no_grad():  # make the BatchNorms differ from their initial state
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(2.0)
                m.running_mean.fill_(0.3)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    a, b, c = randomised_copy(model, 0), randomised_copy(model, 0), randomised_copy(model, 1)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # global RNG untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, original[k]), k  # the model is unchanged
        assert torch.equal(a.state_dict()[k], b.state_dict()[k]), k  # same seed, same copy
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() > 1:  # conv and linear weights
            assert not torch.equal(a.get_parameter(name), p), name
            assert not torch.equal(a.get_parameter(name), c.get_parameter(name)), name
    for m in a.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.running_mean == 0)
    assert not a.training and a is not model
    with pytest.raises(TypeError, match="cannot re-initialise"):
        randomised_copy(nn.Sequential(nn.Conv2d(1, 1, 1), nn.PReLU()))
    with pytest.raises(ValueError, match="seed"):
        randomised_copy(model, -1)


# ------------------------------------------------------------------- masks and fractions

def test_roi_masks_are_the_nonzero_pixels_of_the_t1_channel():
    images = np.zeros((2, 3, 4, 4), np.uint8)
    images[0, 0, 1:3, 1:3] = 7  # t1: the ROI
    images[0, 1, :, :] = 9  # ce_t1 (its own crop): ignored when t1 is there
    images[0, 2, :, :2] = 255  # gland: never used
    images[1, 1, 0, 0] = 3
    masks = roi_masks(images, ("t1", "ce_t1", "gland"))
    assert masks.dtype == bool and masks.shape == (2, 4, 4)
    expected = np.zeros((2, 4, 4), bool)
    expected[0, 1:3, 1:3] = True
    np.testing.assert_array_equal(masks, expected)
    # without t1: the first MR series channel (ce_t1 here)
    without_t1 = roi_masks(images[:, 1:], ("ce_t1", "gland"))
    assert without_t1[0].all() and without_t1[1].sum() == 1 and without_t1[1, 0, 0]
    with pytest.raises(ValueError, match="MR series"):
        roi_masks(images[:, 2:], ("gland",))
    with pytest.raises(ValueError, match="len"):
        roi_masks(images, ("t1", "ce_t1"))


def test_the_roi_channel_is_the_studys_first_series_channel():
    assert roi_reference_channel(("t1", "ce_t1", "t2", "gland")) == "t1"
    assert roi_reference_channel(("t2", "adc", "gland")) == "t2"
    assert roi_reference_channel(("adc",)) == "adc"  # an ADC-only model has an ROI
    images = np.zeros((1, 2, 3, 3), np.uint8)
    images[0, 0, 1, 1] = 5
    assert roi_masks(images, ("adc", "gland"))[0].sum() == 1


def test_mask_fraction_on_hand_made_maps():
    maps = np.zeros((4, 2, 2))
    maps[0] = [[3, 0], [0, 1]]  # 3 of 4 inside the top-left pixel
    maps[1] = 1.0  # even: the mask's area share
    maps[3] = [[0, 0], [0, 5]]  # all outside
    masks = np.zeros((4, 2, 2), bool)
    masks[:, 0, 0] = True
    masks[1, 0, 1] = True
    out = mask_fraction(maps, masks)
    assert out[0] == pytest.approx(0.75) and out[1] == pytest.approx(0.5)
    assert math.isnan(out[2])  # no mass: undefined
    assert out[3] == 0.0
    # one mask for all slices
    np.testing.assert_allclose(mask_fraction(maps, masks[0]), [0.75, 0.25, np.nan, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        mask_fraction(-maps, masks)
    with pytest.raises(ValueError, match="boolean"):
        mask_fraction(maps, masks.astype(int))
    with pytest.raises(ValueError, match="shape"):
        mask_fraction(maps, masks[:2])


# --------------------------------------------------------------------------------- summary

def test_saliency_summary_on_the_toy(toy):
    model, images, labels = toy
    images = images.copy()
    images[:, 0][:, ~TOP_LEFT] = 0  # the "t1" channel masked outside its ROI, the quadrant
    classes = ("absent", "present")
    predicted = labels.copy()
    predicted[:10] = 1 - predicted[:10]  # some wrong predictions to pick from
    summary = saliency_summary(model, images, labels, predicted, CHANNELS, per_class=2,
                               seed=0, classes=classes)
    maps, maps_predicted = summary.pop("maps"), summary.pop("maps_predicted")
    json.dumps(summary)  # everything but the arrays is JSON-able
    examples = summary["examples"]
    assert len(examples) == 8 and maps.shape == maps_predicted.shape == (8, SIZE, SIZE)
    assert [e["true_label"] for e in examples] == ["absent"] * 4 + ["present"] * 4
    assert [e["correct"] for e in examples] == [True, True, False, False] * 2
    for e, m, mp in zip(examples, maps, maps_predicted, strict=True):
        assert e["correct"] == (e["true_label"] == e["predicted_label"])
        assert labels[e["index"]] == classes.index(e["true_label"])
        assert predicted[e["index"]] == classes.index(e["predicted_label"])
        if e["correct"]:
            np.testing.assert_allclose(m, mp, rtol=1e-5)
    assert summary["layer"] == "stages.layer2" and summary["target"] == "true class"
    assert summary["roi_channel"] == "t1" and summary["median_roi_area"] < 0.5
    assert summary["library"].startswith("parotidlib") and "grad-cam" in summary["library"]
    present = summary["mask_fraction"]["per_class"]["present"]
    assert present["n_slices"] == int((labels == 1).sum())
    assert present["mean_roi_area"] == pytest.approx(0.25, abs=0.01)
    assert present["mean"] > 0.5  # looks at the square in the ROI
    assert summary["randomisation"]["mean_spearman"] is not None
    # deterministic: the same call gives the same examples; labels as indices the same
    again = saliency_summary(model, images, np.asarray(classes)[labels],
                             np.asarray(classes)[predicted], CHANNELS, per_class=2, seed=0,
                             classes=classes)
    assert again["examples"] == examples
    np.testing.assert_array_equal(again["maps"], maps)


def test_saliency_summary_warns_on_unmasked_slices_and_checks_labels():
    model = small_model()
    images = random_images(6)
    images[images == 0] = 1  # nothing masked: the ROI would be every pixel
    labels = np.array(["free", "warthin", "malignant", "free", "warthin", "malignant"])
    summary = saliency_summary(model, images, labels, labels, CHANNELS, per_class=1)
    assert summary["median_roi_area"] == 1.0  # the report warns (report/saliency_text.py)
    assert len(summary["examples"]) == 3 and all(e["correct"] for e in summary["examples"])
    per_class = summary["mask_fraction"]["per_class"]
    assert per_class["pleomorphic_adenoma"] == {"n_slices": 0, "n_undefined": 0, "mean": None,
                                                "mean_roi_area": None}
    with pytest.raises(ValueError, match="unknown class"):
        saliency_summary(model, images, ["tumour"] * 6, labels, CHANNELS)
    with pytest.raises(ValueError, match="one entry per slice"):
        saliency_summary(model, images, labels[:3], labels, CHANNELS)
