"""The demo: segment a large synthetic nuclei image end to end and say how it went.

1. generate (or reuse, when complete) a synthetic image with its ground-truth
   labels as OME-Zarr, chunk by chunk;
2. run the shipped U-Net on the embedded cluster (probability map as OME-Zarr);
3. label nuclei across blocks into the image's NGFF ``labels`` group;
4. measure every object into a Parquet table;
5. draw a PNG preview from the pyramids and print a summary with the numbers.

Every step checks its output first, so a second run reuses everything.
"""

from __future__ import annotations

import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dask
import dask.array as da
import numpy as np

from .. import io
from ..model import load_model
from ._image import SegmentOptions, priority_executor, segment_image

__all__ = ["run_demo", "DemoSummary", "shipped_model_path"]


def shipped_model_path() -> Path:
    """The shipped nuclei U-Net (``data/models/nuclei-unet.onnx`` of the repository)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "models" / "nuclei-unet.onnx"
        if candidate.exists():
            return candidate
    from ..errors import StorageError

    raise StorageError("The shipped model data/models/nuclei-unet.onnx was not found next to the package; "
                       "pass --model.")


@dataclass
class DemoSummary:
    size: int
    blocks: int
    seconds_generate: float
    seconds_segment: float
    megapixels_per_second: float
    peak_worker_mib: float
    objects: int
    objects_truth: int
    dice: float
    image: Path
    prediction: Path
    labels: Path
    table: Path
    preview: Path
    reused: bool

    def text(self) -> str:
        mpix = self.size * self.size / 1e6
        return "\n".join([
            "pipeline demo: synthetic fluorescence nuclei, shipped U-Net",
            f"  image            {self.size} x {self.size} ({mpix:,.0f} MPix)  {self.image}",
            f"  blocks           {self.blocks}",
            f"  generate         {self.seconds_generate:8.1f} s" + ("  (reused)" if self.seconds_generate < 1 else ""),
            f"  segment          {self.seconds_segment:8.1f} s" + ("  (reused)" if self.reused else "")
            + f"  (predict + label + measure + preview)",
            f"  throughput       {self.megapixels_per_second:8.2f} MPix/s end to end",
            f"  peak worker RSS  {self.peak_worker_mib:8.0f} MiB",
            f"  objects          {self.objects:,} found, {self.objects_truth:,} in the ground truth",
            f"  Dice             {self.dice:.4f} (foreground vs ground truth)",
            f"  probabilities    {self.prediction}",
            f"  labels           {self.labels}  (NGFF labels group of the image)",
            f"  object table     {self.table}",
            f"  preview          {self.preview}",
        ])


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _generate(image_url: Path, size: int, seed: int, chunk: int, client, log) -> float:
    if io.output_state(image_url).state == "complete" and \
            io.output_state(image_url / "labels" / "truth").state == "complete":
        log(f"reusing {image_url}")
        return 0.0
    from ..synthetic import nuclei

    t0 = time.perf_counter()
    img, truth = nuclei((size, size), seed=seed, chunks=chunk)
    state = io.output_state(image_url).state
    truth_url = image_url / "labels" / "truth"
    log(f"generating a {size} x {size} synthetic nuclei image into {image_url}")

    def write_truth() -> None:
        # the labels group needs the image group; once it exists, image and truth are computed
        # side by side so the scheduler renders each chunk once for both
        meta = image_url / "zarr.json"
        while not image_done.is_set() and not (meta.exists() and b"multiscales" in meta.read_bytes()):
            time.sleep(0.05)
        truth_state = io.output_state(truth_url).state
        io.write_labels(truth, image_url, "truth", axes=("y", "x"), resume=truth_state == "partial",
                        executor=priority_executor(client, 1, progress="generate truth"))

    image_done = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        truth_job = pool.submit(write_truth)
        try:
            io.write_image(img, image_url, axes=("y", "x"), name="nuclei", resume=state == "partial",
                           overwrite=state == "external",
                           source={"generator": "pipeline.synthetic.nuclei", "seed": seed},
                           executor=priority_executor(client, 1, progress="generate image"))
        finally:
            image_done.set()
        truth_job.result()
    return time.perf_counter() - t0


def _foreground_ids(block: np.ndarray) -> np.ndarray:
    return np.unique(block[block > 0])


def _dice_and_counts(labels_url: Path, truth_url: Path) -> tuple[float, int]:
    pred = io.open_image(labels_url).data > 0
    truth_labels = io.open_image(truth_url).data
    truth = truth_labels > 0
    inter, s_pred, s_truth = da.compute((pred & truth).sum(), pred.sum(), truth.sum())
    # unique ids per block, then across blocks (objects spanning blocks appear in several)
    uniq = dask.compute(*[dask.delayed(_foreground_ids)(b) for b in truth_labels.to_delayed().ravel()])
    count = len(np.unique(np.concatenate(uniq))) if uniq else 0
    denom = float(s_pred + s_truth)
    return (2.0 * float(inter) / denom if denom else 1.0), count


def run_demo(
    *,
    size: int = 16384,
    data_dir: Path = Path("demo-data"),
    model: Path | None = None,
    seed: int = 2026,
    chunks: int = 1024,
    client,
    log: Callable[[str], None] = print,
) -> DemoSummary:
    """Run the demo on ``client``; returns the summary (and leaves every output on disk)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    model_path = Path(model) if model else shipped_model_path()
    net = load_model(model_path)
    stride = max(net.geometry.stride)
    size = max(stride, size // stride * stride)
    image_url = data_dir / f"nuclei-{size}.ome.zarr"
    t_gen = _generate(image_url, size, seed, chunks, client, log)
    from ..cluster import warm_up

    warm_up(client, net)

    opts = SegmentOptions(model=net, chunks=chunks, normalize="percentile", label=True, threshold=0.5,
                          label_channel=int(net.metadata.get("pipeline.foreground_channel", 1)), measure=True,
                          intensity=True, preview=True, label_name="nuclei", labels_into_input=True)
    from ._image import is_complete, output_paths

    outputs = output_paths(image_url, data_dir, f"nuclei-{size}.prediction", opts)
    reused = is_complete(outputs, opts)
    t0 = time.perf_counter()
    record = segment_image(image_url, data_dir, f"nuclei-{size}.prediction", opts,
                           executor=priority_executor(client, 0, progress="segment"), log=log)
    t_seg = time.perf_counter() - t0
    if record.status == "failed":
        from ..errors import ExecutionError

        raise ExecutionError(f"demo segmentation failed: {record.error}")
    dice, n_truth = _dice_and_counts(outputs.labels, image_url / "labels" / "truth")
    peak = max(client.run(_peak_rss_mib).values())
    pred = io.open_image(outputs.prediction)
    return DemoSummary(
        size=size,
        blocks=int(np.prod(pred.data.numblocks[-2:])),
        seconds_generate=t_gen,
        seconds_segment=t_seg,
        megapixels_per_second=size * size / 1e6 / t_seg if not reused else float("nan"),
        peak_worker_mib=peak,
        objects=int(record.objects or 0),
        objects_truth=n_truth,
        dice=dice,
        image=image_url,
        prediction=outputs.prediction,
        labels=outputs.labels,
        table=outputs.table,
        preview=outputs.preview,
        reused=reused,
    )
