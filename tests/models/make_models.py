"""Export the small test networks in this folder from PyTorch to ONNX.

Run with the project environment (torch is needed here only, never by
``pipeline`` or by the tests, which read the committed ``.onnx`` files)::

    .venv/bin/python tests/models/make_models.py

Every network has fixed-seed random weights, BatchNorm layers with
non-trivial running statistics, is exported in eval mode with symbolic
height and width, and is written as ``<name>_opset<N>.onnx``.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent


def conv_bn(cin: int, cout: int, k: int = 3, *, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


class UNet(nn.Module):
    """Three max-pool levels down; up by ConvTranspose, nearest, bilinear; concat skips; softmax."""

    def __init__(self, cin: int = 1, classes: int = 3, w: int = 8) -> None:
        super().__init__()
        self.enc0 = nn.Sequential(conv_bn(cin, w), nn.ReLU(), conv_bn(w, w), nn.ReLU())
        self.enc1 = nn.Sequential(conv_bn(w, 2 * w), nn.ReLU())
        self.enc2 = nn.Sequential(conv_bn(2 * w, 2 * w), nn.ReLU())
        self.mid = nn.Sequential(conv_bn(2 * w, 4 * w), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = nn.Sequential(conv_bn(4 * w, 2 * w), nn.ReLU())
        self.dec1 = nn.Sequential(conv_bn(4 * w, w), nn.ReLU())
        self.dec0 = nn.Sequential(conv_bn(2 * w, w), nn.ReLU())
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        s0 = self.enc0(x)
        s1 = self.enc1(F.max_pool2d(s0, 2))
        s2 = self.enc2(F.max_pool2d(s1, 2))
        m = self.mid(F.max_pool2d(s2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), s2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), s1], 1))
        # sizes computed from the tensor's own shape: a Shape/Gather/Mul chain in ONNX
        up0 = F.interpolate(d1, size=(d1.shape[2] * 2, d1.shape[3] * 2), mode="bilinear", align_corners=False)
        d0 = self.dec0(torch.cat([up0, s0], 1))
        return torch.softmax(self.head(d0), dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.a = conv_bn(c, c, dilation=dilation)
        self.b = conv_bn(c, c, dilation=dilation)

    def forward(self, x):
        return F.relu(x + self.b(F.leaky_relu(self.a(x), 0.1)))


class DilatedResNet(nn.Module):
    """Residual blocks with dilation 2 and 4, 3x3 average pools counting padding both ways, a 2x2 pool down."""

    def __init__(self, cin: int = 2, cout: int = 2, w: int = 12) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(cin, w), nn.ReLU())
        self.block1 = ResidualBlock(w, 2)
        self.pool_incl = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.block2 = ResidualBlock(w, 4)
        self.pool_excl = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.down = nn.AvgPool2d(2)
        self.head = nn.Conv2d(w, cout, 3, padding=1)

    def forward(self, x):
        x = self.pool_incl(self.block1(self.stem(x)))
        x = self.pool_excl(self.block2(x))
        return torch.tanh(self.head(self.down(x)))


class MobileBlock(nn.Module):
    """Inverted residual: expand 1x1, depthwise 3x3 (maybe stride 2), gate with HardSigmoid, project 1x1."""

    def __init__(self, cin: int, cout: int, *, stride: int, expand: int = 2) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = nn.Sequential(conv_bn(cin, mid, 1), nn.Hardswish())
        self.depthwise = nn.Sequential(conv_bn(mid, mid, 3, stride=stride, groups=mid), nn.ReLU6())
        self.gate = nn.Sequential(nn.Conv2d(mid, mid, 1), nn.Hardsigmoid())
        self.project = conv_bn(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.depthwise(self.expand(x))
        y = self.project(y * self.gate(y))
        return x + y if self.residual else y


class MobileNetSeg(nn.Module):
    """MobileNet-style segmenter: stride-2 stem, depthwise blocks, bilinear up with and without align_corners."""

    def __init__(self, cin: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(cin, 8, stride=2), nn.Hardswish())
        self.b1 = MobileBlock(8, 8, stride=1)
        self.b2 = MobileBlock(8, 16, stride=2)
        self.b3 = MobileBlock(16, 16, stride=1)
        self.head = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        y = self.b3(self.b2(self.b1(self.stem(x))))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
        y = F.interpolate(self.head(y), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.clamp(y, -3.0, 3.0)


class SENet(nn.Module):
    """Two squeeze-excitation blocks: Linear layers on a global average, and 1x1 convs on a spatial mean."""

    def __init__(self, cin: int = 1, cout: int = 2, w: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(cin, w), nn.ReLU())
        self.fc1 = nn.Linear(w, w // 2)
        self.fc2 = nn.Linear(w // 2, w)
        self.body = nn.Sequential(conv_bn(w, w), nn.ReLU())
        self.se_a = nn.Conv2d(w, w // 2, 1)
        self.se_b = nn.Conv2d(w // 2, w, 1)
        self.head = nn.Conv2d(w, cout, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        b, c = x.shape[0], x.shape[1]
        s = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s)))).view(b, c, 1, 1)
        x = self.body(x * s)
        t = x.mean((2, 3), keepdim=True)
        t = torch.sigmoid(self.se_b(F.relu(self.se_a(t))))
        m = F.adaptive_max_pool2d(x, 1)
        return self.head(x * t + 0.1 * m)


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Fixed-seed random weights, and BatchNorm statistics far from (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.2 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (1.5 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model.eval()


#: name -> (constructor, input channels, opsets to export)
MODELS = {
    "unet": (UNet, 1, (11, 17)),
    "dilated_resnet": (DilatedResNet, 2, (11, 17)),
    "mobilenet": (MobileNetSeg, 3, (13, 18)),
    "senet": (SENet, 1, (12, 17)),
}


def export(name: str, opset: int) -> Path:
    ctor, cin, _ = MODELS[name]
    model = randomize(ctor(), seed=sum(map(ord, name)))
    path = HERE / f"{name}_opset{opset}.onnx"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, cin, 64, 64),),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=["prediction"],
            dynamic_axes={"image": {2: "height", 3: "width"}, "prediction": {2: "out_height", 3: "out_width"}},
        )
    import onnx

    proto = onnx.load_from_string(buf.getvalue())
    proto.graph.name = name
    onnx.helper.set_model_props(proto, {"source": "tests/models/make_models.py", "architecture": ctor.__name__})
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())
    return path


def main(argv: list[str]) -> None:
    torch.manual_seed(0)
    names = argv or list(MODELS)
    for name in names:
        for opset in MODELS[name][2]:
            path = export(name, opset)
            print(f"{path.name}: {path.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
