"""A PyTorch example: a small CNN on scikit-learn's bundled 8x8 digits, through loopml.

1. the 1,797 digit images become a dataset version (one row per image: 64 pixels + label);
2. a pipeline prepares seeded train/val/holdout splits, trains a two-layer CNN (on the GPU
   when ``torch.cuda.is_available()``, else on the CPU), logging loss and accuracy per epoch,
   evaluates it on the holdout and registers it as ``production`` only if it beats the
   champion; the pipeline runs twice, and the second run is served from the step cache;
3. ``torch-digits@production`` is served in this process (the loopml model server, on a free
   local port) and answers a few requests;
4. when ``loopml.monitoring.compare`` exists, the holdout images are compared with noisy
   copies of them (drift per pixel).

    python examples/torch_digits.py                     # store: ./.loopml-torch
    python examples/torch_digits.py --store /tmp/s --epochs 3

Run it again on the same store: the dataset version is unchanged, every step is cached and
the register step is skipped (the challenger does not beat the champion). It exits non-zero
if anything in the loop fails.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from torch import nn

import loopml
from loopml.client.fluent import set_default_client

DATASET = "digits"
MODEL = "torch-digits"
PIXELS = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
GPU = torch.cuda.is_available()


def device() -> torch.device:
    """The GPU when one is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_text(where: torch.device) -> str:
    if where.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(where)})"
    return f"cpu ({torch.get_num_threads()} threads)"


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions (16 and 32 channels), one 2x2 max-pool, one linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2))
        self.classifier = nn.Linear(32 * 4 * 4, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: (batch, 1, 8, 8) floats in [0, 1] → (batch, 10) logits."""
        return self.classifier(self.features(images).flatten(1))


def images_of(frame: pd.DataFrame) -> np.ndarray:
    """The (n, 1, 8, 8) float32 images of a frame of pixel columns (scaled to [0, 1])."""
    return (frame[PIXELS].to_numpy(np.float32) / 16.0).reshape(-1, 1, 8, 8)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray,
             where: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(images, device=where))
    return float((logits.argmax(1).cpu().numpy() == labels).mean())


# -- the pipeline --------------------------------------------------------------------------

@loopml.step
def prepare(data: loopml.Dataset, *, seed: int) -> pd.DataFrame:
    """The images with a ``split`` column: 70% train, 15% val, 15% holdout (seeded)."""
    frame = data.to_pandas()
    order = np.random.default_rng(seed).permutation(len(frame))
    split = np.empty(len(frame), dtype=object)
    train_end, val_end = int(0.7 * len(frame)), int(0.85 * len(frame))
    split[order[:train_end]] = "train"
    split[order[train_end:val_end]] = "val"
    split[order[val_end:]] = "holdout"
    return frame.assign(split=split)


@loopml.step(resources={"gpu": 1} if GPU else None)
def train(frame: pd.DataFrame, *, epochs: int, learning_rate: float, batch_size: int,
          seed: int) -> nn.Module:
    """Adam on the train split; loss and val accuracy logged per epoch; returned on the CPU."""
    where = device()
    print(f"training on {device_text(where)}", flush=True)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    train_rows, val_rows = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    images = torch.tensor(images_of(train_rows), device=where)
    labels = torch.tensor(train_rows["target"].to_numpy(np.int64), device=where)
    val_images, val_labels = images_of(val_rows), val_rows["target"].to_numpy()
    model = DigitsCNN().to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    shuffle = torch.Generator().manual_seed(seed)
    loopml.log_params({"device": where.type, "train_rows": len(train_rows),
                       "val_rows": len(val_rows)})
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(images), generator=shuffle).split(batch_size):
            batch = batch.to(where)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        val_accuracy = accuracy(model, val_images, val_labels, where)
        loopml.log_metrics({"train_loss": total / len(images), "val_accuracy": val_accuracy},
                           step=epoch)
        print(f"  epoch {epoch + 1}/{epochs}: loss={total / len(images):.4f} "
              f"val_accuracy={val_accuracy:.4f}", flush=True)
    return model.cpu().eval()


@loopml.step
def evaluate(model: nn.Module, frame: pd.DataFrame) -> dict[str, float]:
    """Accuracy on the holdout split (on the CPU: 270 images)."""
    holdout = frame[frame["split"] == "holdout"]
    score = accuracy(model, images_of(holdout), holdout["target"].to_numpy(),
                     torch.device("cpu"))
    loopml.log_metric("accuracy", score)
    return {"accuracy": score}


@loopml.step
def input_example(frame: pd.DataFrame) -> np.ndarray:
    """Five training images: stored with the model, they give it a signature to serve by."""
    return images_of(frame[frame["split"] == "train"].head(5))


@loopml.pipeline(name="torch-digits")
def digits_pipeline(data: loopml.Dataset = loopml.Dataset(f"{DATASET}@latest"),
                    epochs: int = 8, learning_rate: float = 3e-3, batch_size: int = 64,
                    seed: int = 0) -> None:
    frame = prepare(data, seed=seed)
    model = train(frame, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                  seed=seed)
    metrics = evaluate(model, frame)
    loopml.register(model, name=MODEL, metrics=metrics, alias="production",
                    when="metrics['accuracy'] > champion['accuracy']",
                    input_example=input_example(frame))


# -- the script ----------------------------------------------------------------------------

def register_data() -> str:
    frame = load_digits(as_frame=True).frame
    frame.columns = [*PIXELS, "target"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.parquet"
        frame.to_parquet(path, index=False)
        version = loopml.datasets.add(path, DATASET, message="scikit-learn's 8x8 digits")
    state = "unchanged" if version.unchanged else "new"
    print(f"dataset {version.ref} ({state}): {version.rows} images of 8x8 pixels")
    return version.ref


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def serve_and_query(client: loopml.Client, holdout: pd.DataFrame) -> float:
    """Serve ``MODEL@production`` in this process, send a few requests, stop the server;
    the accuracy of the answers."""
    import uvicorn

    from loopml.serving import ServeOptions
    from loopml.serving.server import uvicorn_config

    # The CNN's class lives in this script (__main__), so the package holds TorchScript,
    # which torch unpickles: we trust it, we trained it a moment ago.
    options = ServeOptions(model=f"{MODEL}@production", port=free_port(), trusted=True)
    server = uvicorn.Server(uvicorn_config(options, client.settings))
    thread = threading.Thread(target=server.run, name="model-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{options.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the model server at {base} did not get ready")
            time.sleep(0.1)
        images, labels = images_of(holdout), holdout["target"].to_numpy()
        correct = 0
        for start in range(0, 40, 8):  # five requests of eight images
            answer = post(f"{base}/predict", {"inputs": images[start:start + 8].tolist()})
            predicted = np.asarray(answer["predictions"]).argmax(1)
            correct += int((predicted == labels[start:start + 8]).sum())
        print(f"served {MODEL}/{answer['version']} at {base}: {correct}/40 holdout images "
              f"right in 5 requests")
        return correct / 40
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def compare_noisy(frame: pd.DataFrame) -> bool:
    """Drift of the holdout pixels, and of noisy copies of them, against the training
    pixels (``loopml.monitoring.compare``, when this loopml has it); False when the noise
    goes unnoticed."""
    try:
        from loopml.monitoring import compare
    except ImportError:
        print("monitoring comparison skipped: loopml.monitoring.compare is not available")
        return True
    pixels = frame[PIXELS].astype(np.float64)
    train, holdout = pixels[frame["split"] == "train"], pixels[frame["split"] == "holdout"]
    noise = np.random.default_rng(1).normal(scale=4.0, size=holdout.shape)
    noisy = (holdout + noise).clip(0, 16)
    print("\nmonitoring: pixels of the training images against")
    reports = {}
    for name, current in (("the holdout images", holdout), ("noisy holdout images", noisy)):
        report = reports[name] = compare(train, current)
        drift = report.drift
        assert drift is not None
        print(f"  {name:21s} drift={'yes' if drift.drifted else 'no ':3s} "
              f"score={drift.score:.2f} (threshold {drift.threshold:.2f}), "
              f"{len(drift.drifted_columns)} of {len(drift.columns)} pixels drifted")
    noisy_drift = reports["noisy holdout images"].drift
    return noisy_drift is not None and noisy_drift.drifted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", type=Path, default=Path(".loopml-torch"),
                        help="the loopml home (metadata + blobs); default ./.loopml-torch")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    where = device()
    print(f"device: {device_text(where)}"
          + ("" if GPU else " (no GPU found: training on the CPU)"))
    client = loopml.Client(loopml.load_settings(home=args.store, progress=False))
    set_default_client(client)
    try:
        return run_example(client, epochs=args.epochs)
    except loopml.LoopmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        set_default_client(None)
        client.close()


def run_example(client: loopml.Client, *, epochs: int) -> int:
    register_data()
    print(f"\npipeline {digits_pipeline.name}, twice (the second run reuses every cached step):")
    first = digits_pipeline.run(epochs=epochs, client=client)
    again = digits_pipeline.run(epochs=epochs, client=client)
    for run in (first, again):
        print(f"  run {run.run_id}: " + ", ".join(
            f"{s.step} {s.status.value}" + (f" on {s.device}" if s.device and s.step == "train"
                                             and s.status.value == "completed" else "")
            for s in run.steps))
    if not first.succeeded or not again.succeeded:
        print("a pipeline run did not finish", file=sys.stderr)
        return 1
    if again.step("train").status.value != "cached":
        print("the second run trained again instead of reusing the cached model",
              file=sys.stderr)
        return 1
    register = again.step("register")
    print(f"  second run's register step: {register.status.value} ({register.reason})")
    production = client.get_model_version(f"{MODEL}@production")
    score = production.metrics.get("accuracy", 0.0)
    print(f"\nmodels:/{MODEL}@production is {production.ref} ({production.flavor}); "
          f"holdout accuracy {score:.4f}")
    if score < 0.85:
        print(f"holdout accuracy {score:.4f} is below 0.85: something is wrong",
              file=sys.stderr)
        return 1
    frame = prepare.fn(loopml.Dataset(f"{DATASET}@latest"), seed=0)
    if serve_and_query(client, frame[frame["split"] == "holdout"]) < 0.8:
        print("the served model got fewer than 80% of the holdout images right",
              file=sys.stderr)
        return 1
    if not compare_noisy(frame):
        print("monitoring did not flag the noisy images as drifted", file=sys.stderr)
        return 1
    print("\ndone: data → pipeline → registry → serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
