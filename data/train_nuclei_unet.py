"""Train the small nuclei U-Net on synthetic images and ship it as ONNX.

    .venv/bin/python data/train_nuclei_unet.py            # the shipped model
    .venv/bin/python data/train_nuclei_unet.py --steps 50 --out /tmp/m.onnx   # a smoke run

Training images come from :func:`pipeline.synthetic.nuclei` with seeds
1000..1000+N-1; evaluation uses the disjoint held-out seeds 9001.. on whole
images through onnxruntime.  Every image is normalised once over the WHOLE
image, ``(x - p1) / (p99.8 - p1)``, exactly as ``pipeline.predict`` does with
``normalize="percentile:1:99.8"``.  The foreground probability is output
channel 1 (softmax over 2 channels).

Writes the ONNX file (opset 17, dynamic H and W, metadata_props) and
``training-log.json`` next to it.  Needs torch (CPU); the product does not.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dask  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pipeline.synthetic import nuclei  # noqa: E402

NORMALIZE = (1.0, 99.8)
FOREGROUND_CHANNEL = 1


def normalise(image: np.ndarray) -> np.ndarray:
    """Percentile normalisation over the whole image: (x - p1) / (p99.8 - p1), float32."""
    lo, hi = np.percentile(image, NORMALIZE)
    return ((image.astype(np.float64) - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Foreground Dice of two boolean masks."""
    inter = np.logical_and(pred, truth).sum()
    return float(2.0 * inter / (pred.sum() + truth.sum()))


def generate(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    image, labels = nuclei((size, size), seed=seed, chunks=512)
    image, labels = dask.compute(image, labels)
    return normalise(image), labels > 0


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Three resolution levels, ``base`` channels at full resolution; logits (N, 2, H, W)."""

    def __init__(self, base: int = 16) -> None:
        super().__init__()
        self.enc0 = _double_conv(1, base)
        self.enc1 = _double_conv(base, 2 * base)
        self.mid = _double_conv(2 * base, 4 * base)
        self.pool = nn.MaxPool2d(2)
        self.up1 = nn.ConvTranspose2d(4 * base, 2 * base, 2, stride=2)
        self.dec1 = _double_conv(4 * base, 2 * base)
        self.up0 = nn.ConvTranspose2d(2 * base, base, 2, stride=2)
        self.dec0 = _double_conv(2 * base, base)
        self.head = nn.Conv2d(base, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool(e0))
        m = self.mid(self.pool(e1))
        d1 = self.dec1(torch.cat([self.up1(m), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up0(d1), e0], dim=1))
        return self.head(d0)


class WithSoftmax(nn.Module):
    """The exported network: channel probabilities instead of logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def sample_batch(rng, images, masks, *, batch: int, crop: int):
    xs, ys = [], []
    for _ in range(batch):
        k = rng.integers(len(images))
        y0 = rng.integers(images[k].shape[0] - crop + 1)
        x0 = rng.integers(images[k].shape[1] - crop + 1)
        x = images[k][y0 : y0 + crop, x0 : x0 + crop]
        m = masks[k][y0 : y0 + crop, x0 : x0 + crop]
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        x, m = np.rot90(x, turns), np.rot90(m, turns)
        if flip:
            x, m = x[:, ::-1], m[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(m))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys).astype(np.int64))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = nn.functional.cross_entropy(logits, target)
    fg = torch.softmax(logits, dim=1)[:, FOREGROUND_CHANNEL]
    t = target.float()
    soft_dice = (2 * (fg * t).sum() + 1) / (fg.sum() + t.sum() + 1)
    return ce + (1 - soft_dice)


def export(net: nn.Module, path: Path, *, command: str) -> None:
    import onnx

    wrapped = WithSoftmax(net).eval()
    dummy = torch.zeros(1, 1, 64, 64)
    torch.onnx.export(
        wrapped,
        (dummy,),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {2: "height", 3: "width"}, "probabilities": {2: "height", 3: "width"}},
        do_constant_folding=True,
    )
    model = onnx.load(str(path))
    props = {
        "pipeline.normalize": f"percentile:{NORMALIZE[0]:g}:{NORMALIZE[1]:g}",
        "pipeline.foreground_channel": str(FOREGROUND_CHANNEL),
        "pipeline.channel_names": "background,foreground",
        "pipeline.description": "Synthetic fluorescence nuclei U-Net; see MODEL_CARD.md",
        "pipeline.training_command": command,
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "pipeline/data/train_nuclei_unet.py"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def evaluate(path: Path, seeds: list[int], size: int) -> list[dict]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = []
    for seed in seeds:
        image, truth = generate(seed, size)
        probs = session.run(None, {"image": image[None, None]})[0][0]
        score = dice(probs[FOREGROUND_CHANNEL] > 0.5, truth)
        fraction = round(float(truth.mean()), 4)
        results.append({"seed": seed, "size": size, "dice": round(score, 5), "foreground_fraction": fraction})
        print(f"held-out seed {seed}: Dice {score:.4f}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "models" / "nuclei-unet.onnx")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--max-minutes", type=float, default=14.0, help="wall-time budget of training; the learning rate anneals to 0 by then"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--base", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--train-images", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=1024)
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[9001, 9002, 9003])
    parser.add_argument("--eval-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0, help="seed of weights init and crop sampling")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python", "data/train_nuclei_unet.py", *(sys.argv[1:] if argv is None else argv)])

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_seeds = list(range(1000, 1000 + args.train_images))
    t0 = time.time()
    data = [generate(s, args.train_size) for s in train_seeds]
    images, masks = [d[0] for d in data], [d[1] for d in data]
    print(f"generated {len(images)} training images in {time.time() - t0:.1f}s", flush=True)

    net = UNet(args.base)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"U-Net base {args.base}: {n_params} parameters", flush=True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    curve = []
    start = time.time()
    net.train()
    step = 0
    budget = 60 * args.max_minutes
    for step in range(1, args.steps + 1):
        # cosine decay over whichever runs out first: the steps or the wall-time budget
        progress = max((step - 1) / args.steps, (time.time() - start) / budget)
        if progress >= 1.0:
            print(f"stopping at step {step - 1}: wall-time budget of {args.max_minutes} min used", flush=True)
            step -= 1
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        x, y = sample_batch(rng, images, masks, batch=args.batch, crop=args.crop)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(round(float(loss.detach()), 5))
        if step % 25 == 0 or step == 1:
            elapsed = time.time() - start
            print(f"step {step}/{args.steps} loss {np.mean(curve[-25:]):.4f} ({elapsed:.0f}s)", flush=True)
    train_seconds = time.time() - start
    net.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(net, args.out, command=command)
    print(f"exported {args.out} ({args.out.stat().st_size} bytes)", flush=True)
    held_out = evaluate(args.out, args.eval_seeds, args.eval_size)
    log = {
        "command": command,
        "train_seeds": train_seeds,
        "train_size": args.train_size,
        "eval_seeds": args.eval_seeds,
        "init_and_sampling_seed": args.seed,
        "normalize": f"percentile:{NORMALIZE[0]:g}:{NORMALIZE[1]:g}",
        "architecture": f"U-Net, 3 levels, base {args.base} channels",
        "parameters": n_params,
        "steps_run": step,
        "max_steps": args.steps,
        "wall_time_budget_minutes": args.max_minutes,
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "train_seconds": round(train_seconds, 1),
        "torch": torch.__version__,
        "loss_curve": curve,
        "held_out": held_out,
        "held_out_mean_dice": round(float(np.mean([r["dice"] for r in held_out])), 5),
    }
    shipped = args.out.name == "nuclei-unet.onnx"
    log_path = args.out.with_name("training-log.json") if shipped else args.out.with_suffix(".json")
    log_path.write_text(json.dumps(log, indent=1) + "\n")
    print(f"wrote {log_path}; mean held-out Dice {log['held_out_mean_dice']:.4f}", flush=True)


if __name__ == "__main__":
    main()
