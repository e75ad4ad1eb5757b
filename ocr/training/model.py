"""CNN + CTC seven-segment reader: input (N, 1, 32, 256) standardised grey, output (N, 64, 13)
per-column class probabilities (class 0 = CTC blank, then "0123456789.-")."""

import torch
from torch import nn

NUM_CLASSES = 13


def block(cin, cout, k=3, pad=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SevenSegNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            block(1, 16), nn.MaxPool2d(2),            # 16 x W/2
            block(16, 32), nn.MaxPool2d(2),           # 8 x W/4
            block(32, 64), nn.MaxPool2d((2, 1)),      # 4 x W/4
            block(64, 96), nn.MaxPool2d((2, 1)),      # 2 x W/4
            block(96, 128, k=(2, 3), pad=(0, 1)),     # 1 x W/4
        )
        self.context = nn.Sequential(
            nn.Conv1d(128, 128, 3, padding=1, bias=False), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
            nn.Conv1d(128, 128, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )
        self.head = nn.Conv1d(128, NUM_CLASSES, 1)

    def forward(self, x):
        f = self.features(x).squeeze(2)  # N, 128, T
        f = self.context(f) + f
        return self.head(f)  # N, C, T logits


class Exported(nn.Module):
    """Wrapper for ONNX: softmax probabilities laid out (N, T, C)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1).permute(0, 2, 1)
