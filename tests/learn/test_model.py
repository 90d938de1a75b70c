"""Tests of parotidlib.learn.model: the paper's reduced ResNet18 (Xia et al. 2021, Fig. 4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock

from parotidlib.learn.model import ReducedResNet, build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("in_channels", [1, 2, 3, 4])
def test_output_shape_for_any_channel_count(in_channels):
    model = build_model(in_channels, num_classes=4, widths=(8, 16))
    out = model(torch.rand(3, in_channels, 32, 32))
    assert out.shape == (3, 4)
    assert torch.isfinite(out).all()


def test_paper_size_input_and_non_square():
    model = build_model(4).eval()
    assert model(torch.rand(2, 4, 224, 224)).shape == (2, 4)
    assert model(torch.rand(2, 4, 48, 64)).shape == (2, 4)


def test_default_structure_is_resnet18_stem_plus_two_basic_blocks():
    model = build_model(4)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 2
    assert (model.conv1.kernel_size, model.conv1.stride, model.conv1.bias) == ((7, 7), (2, 2), None)
    assert model.conv1.out_channels == 64
    first, second = blocks
    assert first.conv1.stride == (1, 1) and first.downsample is None
    assert second.conv1.stride == (2, 2) and second.conv1.out_channels == 128
    assert isinstance(second.downsample[0], nn.Conv2d) and second.downsample[0].stride == (2, 2)
    assert model.fc.in_features == 128 and model.fc.out_features == 4


def test_matches_truncated_torchvision_resnet18():
    """Oracle: torchvision's resnet18 cut after its first block of stages 1 and 2."""
    torch.manual_seed(0)
    ours = build_model(4).eval()
    ref = resnet18(num_classes=4)
    ref.conv1 = nn.Conv2d(4, 64, kernel_size=7, stride=2, padding=3, bias=False)
    ref.layer1 = nn.Sequential(ref.layer1[0])
    ref.layer2 = nn.Sequential(ref.layer2[0])
    ref.layer3 = ref.layer4 = nn.Identity()
    ref.fc = nn.Linear(128, 4)
    state = {k.replace("stages.", ""): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(state)  # strict: same parameter names and shapes
    ref.eval()
    x = torch.rand(2, 4, 64, 64)
    torch.testing.assert_close(ours(x), ref(x))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_kaiming_initialisation_as_torchvision():
    torch.manual_seed(0)
    model = build_model(4)
    w = model.conv1.weight
    expected = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))  # fan_out, relu gain
    assert w.std().item() == pytest.approx(expected, rel=0.05)
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0)


def test_blocks_per_stage_and_stage_count():
    model = ReducedResNet(3, 4, widths=(8, 16, 32), blocks_per_stage=(2, 1, 1))
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 4
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": 4, "num_classes": 1}, "num_classes"),
        ({"in_channels": 4, "widths": ()}, "widths"),
        ({"in_channels": 4, "widths": (8, 0)}, "widths"),
        ({"in_channels": 4, "widths": (8, -16)}, "widths"),
    ],
)
def test_bad_settings_raise_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        build_model(**kwargs)


def test_blocks_per_stage_length_must_match_widths():
    with pytest.raises(ValueError, match="blocks_per_stage"):
        ReducedResNet(4, 4, widths=(8, 16), blocks_per_stage=(1,))


def test_overfits_one_small_batch():
    """A working network and loss drive the training loss of one batch to ~0."""
    torch.manual_seed(0)
    model = build_model(4, widths=(8, 16))
    x = torch.rand(16, 4, 32, 32)
    y = torch.arange(16) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(x)
    assert loss.item() < 0.05 < first
    assert (logits.argmax(1) == y).all()
