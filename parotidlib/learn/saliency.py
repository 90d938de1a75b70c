"""Where the network looks: Grad-CAM maps of the last residual stage, their share inside the
region of interest, and the model-parameter randomisation check of the maps.

For every slice, :func:`gradcam` gives a class's Grad-CAM (Selvaraju et al. 2017) or
Grad-CAM++ (Chattopadhay et al. 2018) map of the trained network's last residual stage
(``stages.layer2`` of the paper's :class:`~parotidlib.learn.model.ReducedResNet`: its output,
at 1/8 of the input resolution, is the last feature map before the global average pooling),
made non-negative and upsampled (bilinear) to the input size. :func:`mask_fraction` measures
the share of a map's mass inside the tumour (or, for ``free`` slices, the gland) mask
(:func:`roi_masks`). :func:`randomisation_check` is Adebayo et al.'s (2018) sanity check: the
maps of the same network with re-initialised weights (:func:`randomised_copy`) must differ
from the trained network's, or the maps show the input and the architecture rather than what
the network learned. :func:`saliency_summary` puts the three together for a test set.

Implementation
--------------
The maps are computed here with public PyTorch API only: a forward hook
(:meth:`torch.nn.Module.register_forward_hook`) keeps the target layer's output ``A`` (N x K x
h x w), :func:`torch.autograd.grad` gives the gradient ``G`` of the class scores with respect
to it, and the channel weights are those of the two papers, in NumPy float32:

* Grad-CAM: ``w_k = mean_ij G_kij`` (Selvaraju et al. 2017, Eq. 1);
* Grad-CAM++: ``w_k = sum_ij relu(G_kij) * a_kij`` with ``a_kij = G^2 / (2 G^2 +
  (sum_ab A_kab) G^3 + 1e-6)`` where ``G != 0``, else 0 (Chattopadhay et al. 2018, Eq. 19,
  with the exponential-output simplification; the same formula and epsilon as
  pytorch-grad-cam's ``GradCAMPlusPlus``).

The map is ``relu(sum_k w_k A_k)``, upsampled with :func:`torch.nn.functional.interpolate`.
pytorch-grad-cam (PyPI ``grad-cam``, Gildenblat et al.) computes the same weighted sums, but
its public API (``GradCAM(model, target_layers)(input_tensor, targets)``) returns each map
min-max scaled to [0, 1] and resized with OpenCV, and no public call returns the raw map:
subtracting each map's minimum would change the share of its mass inside a mask. The tests
check that these maps, min-max scaled, are the library's public output, and check the
Grad-CAM maps against captum's ``LayerGradCam``, an independent implementation.

The gradient is taken of the target class's *logit* (the score before the softmax), as
Selvaraju et al. do. Evidence that raises every class's logit alike (the softmax ignores it)
therefore also shows up in each class's map.

References
----------
Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D. Grad-CAM: visual explanations
from deep networks via gradient-based localization. ICCV 2017:618-626.
doi:10.1109/ICCV.2017.74
Chattopadhay A, Sarkar A, Howlader P, Balasubramanian VN. Grad-CAM++: generalized
gradient-based visual explanations for deep convolutional networks. WACV 2018:839-847.
doi:10.1109/WACV.2018.00097
Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity checks for saliency maps.
NeurIPS 2018:9505-9515.
Gildenblat J, et al. PyTorch library for CAM methods. https://github.com/jacobgil/pytorch-grad-cam
(the reference implementation the tests compare with).

Example
-------
>>> model, meta = load_model("run/model/checkpoints/best.pt")  # doctest: +SKIP
>>> maps = gradcam(model, images, target=labels)  # doctest: +SKIP
>>> mask_fraction(maps, roi_masks(images, meta["channels"])).mean()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from parotidlib.config import check_int
from parotidlib.constants import CLASSES, GLAND_CHANNEL
from parotidlib.learn.predict import check_images, to_unit_float

#: The methods of :func:`gradcam` and the pytorch-grad-cam class each is checked against.
METHODS: dict[str, str] = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus"}
#: Display names of the methods.
METHOD_NAMES: dict[str, str] = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
#: Default threshold of the randomisation check: a mean Spearman correlation at or above it
#: between the trained and the randomised network's maps means the maps are not informative.
RANDOMISATION_THRESHOLD = 0.5

def _library_version() -> str:
    try:
        return metadata.version("grad-cam")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed with the kit
        return "unknown"


def last_residual_stage(model: nn.Module) -> tuple[str, nn.Module]:
    """Name and module of the last residual stage of a :class:`ReducedResNet`.

    Returns
    -------
    name : str
        ``"stages.layer<k>"`` (``"stages.layer2"`` for the paper's two-stage network).
    module : nn.Module
        That stage (an ``nn.Sequential`` of BasicBlocks); its output is the feature map the
        global average pooling reduces.

    Raises
    ------
    TypeError
        If ``model`` has no ``stages`` container (not a ReducedResNet); pass ``layer`` to
        :func:`gradcam` then.
    """
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential) or len(stages) == 0:
        raise TypeError(f"{type(model).__name__} has no residual stages (model.stages); "
                        "pass the target layer explicitly")
    name, module = list(stages.named_children())[-1]
    return f"stages.{name}", module


def _resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> tuple[str, nn.Module]:
    if layer is None:
        return last_residual_stage(model)
    if isinstance(layer, str):
        try:
            return layer, model.get_submodule(layer)
        except AttributeError as exc:
            raise ValueError(f"the model has no layer {layer!r}") from exc
    for name, module in model.named_modules():
        if module is layer:
            return name, module
    raise ValueError("layer is not a module of the model")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return method


def _targets(target: int | np.ndarray | Sequence[int], n: int, num_classes: int | None
             ) -> np.ndarray:
    """Per-slice class indices (n,) from an int or an array of ints."""
    arr = np.asarray(target)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise ValueError(f"target must be an int or an array of {n} ints, got shape {arr.shape}")
    if n and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"target must hold class indices (ints), got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or (num_classes is not None and arr.max() >= num_classes)):
        bound = "" if num_classes is None else f" and < {num_classes} (the model's classes)"
        raise ValueError(f"target class indices must be >= 0{bound}, "
                         f"got {arr.min()}..{arr.max()}")
    return arr


def cam_weights(activations: np.ndarray, gradients: np.ndarray, method: str) -> np.ndarray:
    """Channel weights (N, K) of a layer's activations ``A`` and gradients ``G`` (N, K, h, w).

    Grad-CAM: the spatial mean of ``G`` (Selvaraju et al. 2017, Eq. 1). Grad-CAM++:
    ``sum_ij relu(G) * a`` with ``a = G^2 / (2 G^2 + (sum_ij A) G^3 + 1e-6)`` where ``G != 0``
    and 0 elsewhere (Chattopadhay et al. 2018, Eq. 19; pytorch-grad-cam's formula and
    epsilon). Computed in the arrays' dtype (float32 here).
    """
    _check_method(method)
    if method == "gradcam":
        return np.mean(gradients, axis=(2, 3))
    squared = gradients ** 2
    cubed = squared * gradients
    sums = np.sum(activations, axis=(2, 3))[:, :, None, None]
    alpha = squared / (2 * squared + sums * cubed + 0.000001)
    alpha = np.where(gradients != 0, alpha, 0)
    return np.sum(np.maximum(gradients, 0) * alpha, axis=(2, 3))


def cam_image(activations: np.ndarray, gradients: np.ndarray, method: str) -> np.ndarray:
    """The class activation map (N, h, w) before the ReLU: ``sum_k w_k A_k`` with the weights
    of :func:`cam_weights`, in the arrays' dtype."""
    weights = cam_weights(activations, gradients, method)
    return (weights[:, :, None, None] * activations).sum(axis=1)


def gradcam(
    model: nn.Module,
    images: np.ndarray,
    target: int | np.ndarray,
    method: str = "gradcam",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    layer: str | nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM or Grad-CAM++ maps of one class per slice, at the input's resolution.

    Parameters
    ----------
    model : ReducedResNet
        E.g. from :func:`~parotidlib.learn.checkpoint.load_model` or ``load_bundle(...).model``.
        It runs in eval mode (BatchNorm running statistics) and is put back in the mode it
        had; its weights' ``requires_grad`` flags are restored; no gradient is left on them.
    images : ndarray, shape (N, C, H, W)
        uint8 (0..255) or float in [0, 1], converted as
        :func:`~parotidlib.learn.predict.to_unit_float` does, fed in channels_last layout as at
        inference.
    target : int or array of int, shape (N,)
        Class index (in ``CLASSES`` order) whose logit is explained, one for all slices or one
        per slice (e.g. the true labels).
    method : {"gradcam", "gradcam++"}
        Grad-CAM (channel weights: spatial mean of the gradients; Selvaraju et al. 2017) or
        Grad-CAM++ (weights of Chattopadhay et al. 2018, Eq. 19).
    batch_size : int
        Slices per forward/backward pass.
    device : str or torch.device
        Where to run; the model is moved there (as ``predict_proba`` does).
    layer : str or nn.Module, optional
        Target layer (a module name such as ``"stages.layer1"``, or the module). Default: the
        last residual stage (:func:`last_residual_stage`).

    Returns
    -------
    ndarray, shape (N, H, W), float32, >= 0
        ReLU of the weighted sum of the layer's activation channels, upsampled bilinearly
        (``align_corners=False``) from the layer's grid (H/8 x W/8 for the paper's network).
        Not normalised: maps of one network are comparable in scale; a map is all zero where
        no location has positive evidence.

    Raises
    ------
    ValueError
        If the images, target, method or layer are invalid (the message names which).

    References
    ----------
    Selvaraju et al., ICCV 2017; Chattopadhay et al., WACV 2018 (see the module docstring).
    """
    check_images(images)
    _check_method(method)
    in_channels = getattr(model, "in_channels", images.shape[1])
    if images.shape[1] != in_channels:
        raise ValueError(f"images has {images.shape[1]} channels but the model expects "
                         f"{in_channels}")
    check_int("batch_size", batch_size, 1)
    n, _, height, width = images.shape
    fc = getattr(model, "fc", None)
    targets = _targets(target, n, getattr(fc, "out_features", None))
    _, target_layer = _resolve_layer(model, layer)
    dev = torch.device(device)
    model.to(dev)
    out = np.zeros((n, height, width), dtype=np.float32)
    if n == 0:
        return out

    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    captured: list[torch.Tensor] = []
    handle = target_layer.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        # Gradients are needed with respect to the layer's output only: the weights need none
        # (nothing accumulates in their .grad); the input requires grad instead, so that the
        # layer's output is part of the graph.
        for p in params:
            p.requires_grad_(False)
        model.eval()
        with torch.inference_mode(False), torch.enable_grad(), warnings.catch_warnings():
            # A read-only memmap (load_dataset) is only read here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                x = torch.from_numpy(np.ascontiguousarray(images[start:stop])).to(dev)
                x = to_unit_float(x).contiguous(memory_format=torch.channels_last)
                x.requires_grad_(True)
                captured.clear()
                logits = model(x)
                if not captured:
                    raise RuntimeError("the target layer did not run in the model's forward pass")
                t = torch.from_numpy(targets[start:stop]).to(logits.device)
                score = logits.gather(1, t[:, None]).sum()
                (grad,) = torch.autograd.grad(score, captured[0], allow_unused=True)
                if grad is None:
                    raise RuntimeError("the target layer received no gradient: the model's "
                                       "output does not depend on it")
                acts = captured[0].detach().cpu().float().numpy()
                raw = cam_image(acts, grad.detach().cpu().float().numpy(), method)
                raw = torch.from_numpy(np.maximum(raw, 0.0))
                up = F.interpolate(raw[:, None], size=(height, width), mode="bilinear",
                                   align_corners=False)[:, 0]
                out[start:stop] = up.clamp_(min=0.0).numpy()
    finally:
        handle.remove()
        captured.clear()
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return out


def roi_masks(images: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """Region-of-interest masks of curated slices: the nonzero pixels of the T1 channel.

    The curated data store no masks; with ``mask_background: true`` (the default curation)
    every pixel outside the ROI (the tumour of a lesion slice, the contralateral gland of a
    free slice) is 0 in the image channels. Each series is cropped around its own label map, so
    one channel's support is taken: the first series channel of the study
    (:func:`roi_reference_channel`: t1 when the model takes it). The ``gland`` channel is
    never used (on a lesion slice it shows the whole ipsilateral gland, not the tumour).

    Parameters
    ----------
    images : ndarray, shape (N, C, H, W)
        uint8 or float slices.
    channels : sequence of str, length C
        The channel names of ``images`` (a subset of the study's series plus ``gland``, in
        order).

    Returns
    -------
    ndarray, shape (N, H, W), bool

    Raises
    ------
    ValueError
        If the shapes disagree or no MR series channel is present.

    Notes
    -----
    ROI pixels whose value is exactly 0 (at or below the normalisation window's lower
    percentile, or below 0.5/255 after uint8 rounding) are counted outside. Without
    ``mask_background`` the nonzero pixels are the whole in-image crop, and a mask fraction on
    them says nothing (:func:`saliency_summary` warns when the masks cover nearly every pixel).
    """
    images = np.asarray(images)
    channels = list(channels)
    if images.ndim != 4 or images.shape[1] != len(channels):
        raise ValueError(f"images must be N x C x H x W with C = len(channels) = {len(channels)}, "
                         f"got shape {images.shape}")
    return images[:, channels.index(roi_reference_channel(channels))] > 0


def roi_reference_channel(channels: Sequence[str]) -> str:
    """The channel whose nonzero pixels :func:`roi_masks` takes as the ROI.

    The first series channel: channels are in the study's order (its series, then
    ``gland``), so the paper's T1 when the model takes it, and the ADC of an ADC-only model.
    """
    found = next((c for c in channels if c != GLAND_CHANNEL), None)
    if found is None:
        raise ValueError(f"the ROI is found on an MR series channel (any but "
                         f"{GLAND_CHANNEL}); got channels {list(channels)}")
    return found


def mask_fraction(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's mass inside its mask.

    Parameters
    ----------
    maps : ndarray, shape (N, H, W)
        Non-negative heat maps at the masks' resolution (e.g. from :func:`gradcam`).
    masks : ndarray of bool, shape (N, H, W) or (H, W)
        The region per slice, or one region for all (broadcast).

    Returns
    -------
    ndarray, shape (N,), float64
        ``sum(map * mask) / sum(map)`` in [0, 1]; NaN for a map without mass (all zero), where
        the share is undefined. A map spread evenly gives the mask's area fraction.

    Raises
    ------
    ValueError
        If the shapes disagree, a map has a negative or non-finite value, or a mask is not
        boolean.
    """
    maps = np.asarray(maps, dtype=np.float64)
    masks = np.asarray(masks)
    if maps.ndim != 3:
        raise ValueError(f"maps must be N x H x W, got shape {maps.shape}")
    if masks.dtype != bool:
        raise ValueError(f"masks must be boolean, got dtype {masks.dtype}")
    if masks.shape not in (maps.shape, maps.shape[1:]):
        raise ValueError(f"masks must have shape {maps.shape} or {maps.shape[1:]}, "
                         f"got {masks.shape}")
    if maps.size and (not np.isfinite(maps).all() or maps.min() < 0):
        raise ValueError("maps must be finite and non-negative")
    total = maps.sum(axis=(1, 2))
    inside = np.where(masks, maps, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised from a seeded generator.

    Adebayo et al.'s (2018) model-parameter randomisation, "full" (not cascading): all layers
    at once. Convolutions get He-normal weights (``fan_out``, ReLU gain: the initialisation of
    :class:`ReducedResNet`, as torchvision's ResNet) and PyTorch's default bias; linear layers
    PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``, uniform bias of bound
    1/sqrt(fan_in)); batch norms their initial state (weight 1, bias 0, running mean 0 and
    variance 1). Random draws come from one ``torch.Generator`` seeded with ``seed``, in
    module order, so a seed gives the same network every time; the global RNG is not touched.

    Parameters
    ----------
    model : nn.Module
        Left unchanged.
    seed : int

    Returns
    -------
    nn.Module
        On the model's device, in the model's train/eval mode.

    Raises
    ------
    TypeError
        If a module holds parameters of a kind not handled here (the message names it).
    """
    check_int("seed", seed, 0)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    clone = copy.deepcopy(model).to("cpu")
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def default_bias(module: nn.Module) -> None:
        if getattr(module, "bias", None) is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(module.bias, -bound, bound, generator=gen)

    with torch.no_grad():
        for name, module in clone.named_modules():
            if isinstance(module, nn.modules.conv._ConvNd):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                        generator=gen)
                default_bias(module)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
                default_bias(module)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()  # weight 1, bias 0 and the running statistics
            elif isinstance(module, nn.GroupNorm | nn.LayerNorm):
                module.reset_parameters()
            elif any(True for _ in module.parameters(recurse=False)):
                raise TypeError(f"randomised_copy cannot re-initialise module {name!r} "
                                f"({type(module).__name__})")
    return clone.to(device)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps' pixels; NaN when either map is constant."""
    a, b = a.ravel(), b.ravel()
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def randomisation_check(
    model: nn.Module,
    images: np.ndarray,
    targets: int | np.ndarray,
    seed: int = 0,
    threshold: float = RANDOMISATION_THRESHOLD,
    method: str = "gradcam",
    maps: np.ndarray | None = None,
    reference: nn.Module | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Model-parameter randomisation test of the maps (Adebayo et al. 2018).

    The maps of the trained network and of the same network with re-initialised weights
    (:func:`randomised_copy`), for the same slices and target classes, are compared by
    Spearman's rank correlation of their pixels, per slice (:func:`scipy.stats.spearmanr`, at
    input resolution). Maps that barely change when the weights are randomised show the input
    (edges, bright regions) and the architecture rather than what the network learned.

    Parameters
    ----------
    model : nn.Module
        The trained network.
    images : ndarray, shape (N, C, H, W)
    targets : int or array of int, shape (N,)
        Class explained per slice (e.g. the true labels).
    seed : int
        Seed of the re-initialisation.
    threshold : float
        The maps are called informative when the mean correlation is below it (default 0.5:
        at and above it the randomised network's maps keep most of the trained maps' ranking).
    method : {"gradcam", "gradcam++"}
    maps : ndarray, shape (N, H, W), optional
        The trained network's maps, when already computed (skips recomputing them).
    reference : nn.Module, optional
        Network to compare with instead of ``randomised_copy(model, seed)`` (e.g. ``model``
        itself, which gives correlation 1).
    batch_size, device
        As :func:`gradcam`.

    Returns
    -------
    dict
        JSON-able: ``test``, ``method`` (what was done, in words), ``seed``, ``threshold``,
        ``n_slices``, ``n_undefined`` (slices where a map is constant, e.g. all zero),
        ``mean_spearman``, ``median_spearman`` (None when no slice is defined),
        ``informative`` (mean below the threshold; False when undefined) and ``reference``
        (``"randomised"``: the re-initialised copy, ``"given"``: ``reference``). The report
        says it in words (:mod:`parotidlib.report.saliency_text`).

    References
    ----------
    Adebayo J, Gilmer J, Muelly M, Goodfellow I, Hardt M, Kim B. Sanity checks for saliency
    maps. NeurIPS 2018.
    """
    check_images(images)
    _check_method(method)
    if not (isinstance(threshold, int | float) and not isinstance(threshold, bool)
            and -1.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be a number in [-1, 1], got {threshold!r}")
    if maps is None:
        maps = gradcam(model, images, targets, method, batch_size, device)
    maps = np.asarray(maps)
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps must have shape {(images.shape[0], *images.shape[2:])}, "
                         f"got {maps.shape}")
    if reference is None:
        reference = randomised_copy(model, seed)
        compared = "randomised"
    else:
        compared = "given"
    other = gradcam(reference, images, targets, method, batch_size, device)
    rho = np.array([_spearman(a, b) for a, b in zip(maps, other, strict=True)], dtype=float)
    defined = rho[np.isfinite(rho)]
    mean = float(defined.mean()) if defined.size else math.nan
    median = float(np.median(defined)) if defined.size else math.nan
    informative = bool(defined.size and mean < threshold)
    return {
        "test": "model-parameter randomisation (Adebayo et al. 2018)",
        "saliency_method": method,
        "reference": compared,
        "seed": seed,
        "threshold": float(threshold),
        "n_slices": int(rho.size),
        "n_undefined": int(rho.size - defined.size),
        "mean_spearman": _json_float(mean),
        "median_spearman": _json_float(median),
        "informative": informative,
    }


def _class_indices(values: Any, n: int, classes: Sequence[str], name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per slice ({n}), got shape {arr.shape}")
    if n and arr.dtype.kind in "USO":
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in arr} - set(lookup))
        if unknown:
            raise ValueError(f"{name} holds unknown class names {unknown}; known: "
                             f"{list(classes)}")
        return np.array([lookup[str(v)] for v in arr], dtype=np.int64)
    return _targets(arr, n, len(classes))


def _select(truth: np.ndarray, predicted: np.ndarray, n_classes: int, per_class: int,
            seed: int) -> list[int]:
    """Up to ``per_class`` correct then ``per_class`` wrong slices per class (seeded draw)."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c in range(n_classes):
        for correct in (True, False):
            pool = np.flatnonzero((truth == c) & ((predicted == c) == correct))
            if pool.size:
                pick = rng.choice(pool, size=min(per_class, pool.size), replace=False)
                chosen.extend(int(i) for i in np.sort(pick))
    return chosen


def saliency_summary(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray | Sequence,
    predicted: np.ndarray | Sequence,
    channels: Sequence[str],
    per_class: int = 2,
    seed: int = 0,
    method: str = "gradcam",
    threshold: float = RANDOMISATION_THRESHOLD,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Where the network looks on a test set: examples, ROI fractions, randomisation check.

    Maps are those of each slice's *true* class (the evidence the network finds for the right
    answer, defined for correct and wrong predictions alike); for the examples, the maps of the
    predicted class are given too.

    Parameters
    ----------
    model : ReducedResNet
        The trained network.
    images : ndarray, shape (N, C, H, W)
        Test slices (uint8), curated with ``mask_background: true`` (see :func:`roi_masks`).
    labels, predicted : array of class names or indices, shape (N,)
        True and predicted classes (``classes`` order for indices).
    channels : sequence of str, length C
        Channel names of ``images``.
    per_class : int
        Examples per class and kind: up to ``per_class`` correctly and ``per_class`` wrongly
        predicted slices of each true class, drawn without replacement with
        ``numpy.random.default_rng(seed)`` (classes in order, correct first, indices sorted).
    seed : int
        Seed of the example draw and of the randomisation check.
    method : {"gradcam", "gradcam++"}
    threshold : float
        Of the randomisation check (:func:`randomisation_check`).
    batch_size, device
        As :func:`gradcam`.
    classes : sequence of str
        Class names in model-output order.

    Returns
    -------
    dict
        JSON-able except ``maps`` and ``maps_predicted``:

        - ``method``, ``method_name``, ``library`` (this implementation and the
          pytorch-grad-cam version it is checked against),
          ``layer`` (``"stages.layer2"``), ``target`` ("true class"), ``n_slices``;
        - ``roi_channel`` (the ROI rule in words:
          :data:`parotidlib.report.saliency_text.ROI_TEXT`), ``median_roi_area`` (the
          median share of pixels in the ROI; None without slices);
        - ``mask_fraction``: ``mean`` over slices and ``per_class``: for each class
          ``n_slices``, ``n_undefined`` (maps without mass), ``mean`` (None without a defined
          slice) and ``mean_roi_area`` (the mean share of pixels in the ROI: what a map spread
          evenly would give);
        - ``randomisation``: :func:`randomisation_check` of the true-class maps;
        - ``examples``: list of ``index`` (into ``images``), ``true_label``,
          ``predicted_label``, ``correct``, ``mask_fraction``;
        - ``maps``: ndarray (n_examples, H, W) float32, the examples' true-class maps;
          ``maps_predicted``: the same for the predicted class.
    """
    check_images(images)
    _check_method(method)
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 0:
        raise ValueError(f"per_class must be an integer >= 0, got {per_class!r}")
    check_int("seed", seed, 0)
    classes = tuple(classes)
    n = images.shape[0]
    truth = _class_indices(labels, n, classes, "labels")
    pred = _class_indices(predicted, n, classes, "predicted")
    masks = roi_masks(images, channels)
    layer_name, _ = last_residual_stage(model)

    maps = gradcam(model, images, truth, method, batch_size, device)
    fractions = mask_fraction(maps, masks)
    area = masks.mean(axis=(1, 2)) if n else np.zeros(0)
    per_class_out: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(classes):
        sel = truth == c
        f = fractions[sel]
        defined = f[np.isfinite(f)]
        per_class_out[name] = {
            "n_slices": int(sel.sum()),
            "n_undefined": int(f.size - defined.size),
            "mean": _json_float(defined.mean()) if defined.size else None,
            "mean_roi_area": _json_float(area[sel].mean()) if sel.any() else None,
        }
    defined_all = fractions[np.isfinite(fractions)]

    check = randomisation_check(model, images, truth, seed=seed, threshold=threshold,
                                method=method, maps=maps, batch_size=batch_size,
                                device=device)

    chosen = _select(truth, pred, len(classes), per_class, seed)
    idx = np.asarray(chosen, dtype=np.int64)
    if idx.size:
        maps_predicted = gradcam(model, images[idx], pred[idx], method, batch_size, device)
    else:
        maps_predicted = np.zeros((0, *images.shape[2:]), dtype=np.float32)
    examples = []
    for i in chosen:
        t, p = classes[truth[i]], classes[pred[i]]
        examples.append({
            "index": i, "true_label": t, "predicted_label": p, "correct": bool(t == p),
            "mask_fraction": _json_float(fractions[i]),
        })
    return {
        "method": method,
        "method_name": METHOD_NAMES[method],
        "library": f"parotidlib.learn.saliency (the weights of pytorch-grad-cam, checked "
                   f"against grad-cam {_library_version()})",
        "layer": layer_name,
        "target": "true class",
        "n_slices": int(n),
        "roi_channel": roi_reference_channel(channels),
        "median_roi_area": _json_float(np.median(area)) if n else None,
        "mask_fraction": {
            "mean": _json_float(defined_all.mean()) if defined_all.size else None,
            "n_undefined": int(fractions.size - defined_all.size),
            "per_class": per_class_out,
        },
        "randomisation": check,
        "examples": examples,
        "maps": maps[idx] if idx.size else np.zeros((0, *images.shape[2:]), np.float32),
        "maps_predicted": maps_predicted,
    }
