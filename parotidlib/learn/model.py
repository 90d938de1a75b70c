"""The paper's reduced ResNet18 (Xia et al. 2021, Fig. 4), written like torchvision's resnet.py.

Xia et al. base their network on ResNet18 (He et al. 2016) and, "to avoid overfitting, ...
reduced the number of network layers (i.e., the number of residual blocks were reduced to
2)". Figure 4 shows the ResNet18 stem (Conv, Batch norm, ReLU, Maxpool), two residual blocks,
global average pooling and a linear layer. We read this as ResNet18's first two stages with one
:class:`~torchvision.models.resnet.BasicBlock` each: widths 64 and 128, the second block
halving the resolution (stride 2) as ResNet18's second stage does. Other readings (two blocks
in one stage, or ResNet18's two blocks of stage 1) differ in a few thousand weights only; the
widths and blocks per stage are arguments, so an ablation can try them.

Example
-------
>>> model = build_model(in_channels=4)
>>> model(torch.zeros(2, 4, 224, 224)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, conv1x1

from parotidlib.config import check_int
from parotidlib.constants import CLASSES

#: Stage widths of the paper's network: ResNet18's first two stages.
PAPER_WIDTHS: tuple[int, ...] = (64, 128)


def _check_positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) == 0:
        raise ValueError(f"{name} must hold at least one stage, got {values!r}")
    for v in values:
        check_int(f"{name} (each stage)", v, 1)
    return values


class ReducedResNet(nn.Module):
    """ResNet18 stem, a few BasicBlock stages, global average pooling and a linear head.

    Parameters
    ----------
    in_channels : int
        Input channels (4 for the paper's t1, ce_t1, t2, gland; fewer in the ablation).
    num_classes : int
        Output logits, one per class of the dataset's class scheme (the paper's 4: free,
        pleomorphic_adenoma, warthin, malignant).
    widths : sequence of int
        Channels of each residual stage. The stem has ``widths[0]`` channels (64 in
        ResNet18). The first stage keeps the stem's resolution, every later one halves it.
    blocks_per_stage : sequence of int
        BasicBlocks per stage, same length as ``widths``. Default one per stage: the paper's
        "number of residual blocks were reduced to 2" with two stages.

    Notes
    -----
    Input ``(B, in_channels, H, W)`` float in [0, 1]; output ``(B, num_classes)`` logits.
    The total stride is 4 * 2 ** (len(widths) - 1): 8 for the default, so 224 px inputs reach
    the pooling at 28 x 28 and 32 px test inputs at 4 x 4.

    References
    ----------
    He K, Zhang X, Ren S, Sun J. Deep residual learning for image recognition. CVPR 2016.
    Xia X, Feng B, Wang J, et al. Front. Oncol. 2021;11:632104, Figure 4.
    """

    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = len(CLASSES),
        widths: Sequence[int] = PAPER_WIDTHS,
        blocks_per_stage: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 2)
        widths = _check_positive_ints("widths", widths)
        if blocks_per_stage is None:
            blocks_per_stage = (1,) * len(widths)
        blocks_per_stage = _check_positive_ints("blocks_per_stage", blocks_per_stage)
        if len(blocks_per_stage) != len(widths):
            raise ValueError(
                f"blocks_per_stage must have one entry per stage of widths={widths!r}, "
                f"got {blocks_per_stage!r}"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = widths
        self.blocks_per_stage = blocks_per_stage

        # The ResNet18 stem, as torchvision builds it.
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(
            in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stages = nn.Sequential(
            OrderedDict(
                (f"layer{i + 1}", self._make_layer(width, blocks, stride=1 if i == 0 else 2))
                for i, (width, blocks) in enumerate(zip(widths, blocks_per_stage, strict=True))
            )
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * BasicBlock.expansion, num_classes)

        # Initialisation as torchvision's ResNet (He et al. 2015, "Delving deep into
        # rectifiers": fan_out keeps the backward pass's variance); Linear keeps PyTorch's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage of ``blocks`` BasicBlocks; the first adapts stride and width."""
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            # The projection shortcut ("option B" of He et al. 2016), as in torchvision.
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers.extend(BasicBlock(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, in_channels, H, W)``."""
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)

        x = self.stages(x)

        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def build_model(
    in_channels: int,
    num_classes: int = len(CLASSES),
    widths: Sequence[int] = PAPER_WIDTHS,
) -> ReducedResNet:
    """The paper's network: ResNet18 reduced to two residual blocks (one per stage).

    Parameters
    ----------
    in_channels : int
        Number of input channels (the selected subset of ``CHANNELS``).
    num_classes : int
        Number of classes: the dataset's (``len(CLASSES)`` = 4 for the paper's scheme).
    widths : sequence of int
        Stage widths; the paper's network is ``(64, 128)``.

    Raises
    ------
    ValueError
        If an argument is out of range (the message names it).
    """
    return ReducedResNet(in_channels=in_channels, num_classes=num_classes, widths=widths)
