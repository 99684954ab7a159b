"""Transfer-prune a small Sequential model to a new task with SPLoRA or fine-pruning (CPU).

  transfer-prune --dataset digits --density 0.3 --method splora --rank 8 --output digits_pruned.safetensors

The seed's section 3.4 recipe at toy scale: the source model (``--model W.safetensors`` plus its
architecture JSON, or a built-in small CNN/MLP trained here on the source classes) gets a new head
for the target classes and is wrapped with adapters (``splora``: frozen source weights, low-rank
adapters, BatchNorms and head learned; ``fine-prune``: every weight learned). It is trained for
``--epochs``, then pruned iteratively (``--step`` of the remaining channels per step, ranked
globally by ``--criterion``) with ``--epochs-per-step`` of training after each step, until the
weight density (kept / original weights of the source's Linear/Conv2d layers, head included)
reaches ``--density``; no layer keeps fewer than ``--min-keep`` of its channels. Then the model
trains ``--final-epochs`` more, the adapters are fused and pruned channels physically removed.

Data: scikit-learn's bundled ``load_digits`` (8x8 images, pixel values / 16). ``--source-classes``
and ``--target-classes`` split the ten digits (default: pre-train on 0-4, transfer to 5-9; target
labels are renumbered 0..k-1 in the given order). The target digits are split into train/test
(``--test-fraction``, stratified, fixed ``--seed``).

Outputs: the fused, pruned plain state dict as ``.safetensors`` (readable with
``safetensors.torch.load_file`` / ``opendr_perception.core.registry.load_state_dict``) and a JSON
(``--metadata``, default next to the weights) with ``architecture`` (for
``pruning_adapters.build_sequential``), ``classes``, ``density``, ``accuracy``,
``learned_parameters`` and the run settings. The architecture JSON for ``--model`` has the same
format: a list of layers, or an object with an ``architecture`` key.

Registering the result (``--register NAME``): the weights go to ``<model-dir>/weights/NAME.safetensors``
and a registry manifest entry (sha256, architecture, classes, scores) to
``<model-dir>/manifest/NAME.yaml``. With ``OPENDR_MODEL_MANIFESTS=<model-dir>/manifest`` every node
and tool finds it by name like a shipped model, e.g. ``pruning_adapters.load_registered(NAME)``;
``--model NAME`` also takes a registered model as the source, so transfer-pruned models can be
transferred again.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from opendr_perception.models import pruning_adapters as spa

METHODS = ("splora", "fine-prune")


# ------------------------------------------------------------------------------------------
# data and models
# ------------------------------------------------------------------------------------------
def load_digits_split(classes, test_fraction=0.3, seed=0, image=True, dtype=torch.float32):
    """``(x_train, y_train, x_test, y_test)`` of the given digits, labels renumbered 0..k-1."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    classes = list(classes)
    sel = np.isin(d.target, classes)
    x = d.images[sel].astype(np.float64) / 16.0
    lut = {c: i for i, c in enumerate(classes)}
    y = np.array([lut[t] for t in d.target[sel]])
    x = x[:, None] if image else x.reshape(len(x), -1)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return t(xtr), torch.as_tensor(ytr), t(xte), torch.as_tensor(yte)


def build_model(arch: str = "cnn", num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """Built-in source models for 8x8 digits: ``cnn`` (input (B,1,8,8)) or ``mlp`` (input (B,64))."""
    if arch == "cnn":
        w = width
        return nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * w * 4, 4 * w), nn.ReLU(),
            nn.Linear(4 * w, num_classes))
    if arch == "mlp":
        w = 4 * width
        return nn.Sequential(nn.Linear(64, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(),
                             nn.Linear(w, num_classes))
    raise ValueError(f"unknown built-in architecture {arch!r}")


def replace_head(model: nn.Sequential, num_classes: int, seed: int = 0) -> nn.Sequential:
    """Swap the last Linear for a fresh one with ``num_classes`` outputs (in place)."""
    last = max(i for i, m in enumerate(model) if isinstance(m, nn.Linear))
    old = model[last]
    g = torch.Generator().manual_seed(seed)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, dtype=old.weight.dtype)
    with torch.no_grad():
        bound = 1 / math.sqrt(old.in_features)
        new.weight.copy_(torch.empty_like(new.weight).uniform_(-bound, bound, generator=g))
        if new.bias is not None:
            new.bias.zero_()
    model[last] = new
    return model


def _batches(x, y, batch_size, generator=None):
    idx = torch.randperm(len(x), generator=generator) if generator is not None else torch.arange(len(x))
    for s in range(0, len(x), batch_size):
        j = idx[s:s + batch_size]
        yield x[j], y[j]


def train(model, x, y, epochs, lr=3e-3, batch_size=64, seed=0, progress=None):
    params = [p for p in model.parameters() if p.requires_grad]
    if epochs <= 0 or not params:
        return
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for xb, yb in _batches(x, y, batch_size, g):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
        if progress is not None:
            progress.update(1)


@torch.no_grad()
def accuracy(model, x, y, batch_size=512) -> float:
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in _batches(x, y, batch_size))
    return correct / len(x)


# ------------------------------------------------------------------------------------------
# the procedure
# ------------------------------------------------------------------------------------------
def transfer_prune(source: nn.Sequential, data, num_classes: int, method: str = "splora",
                   densities=(0.3,), rank: int = 8, criterion: str = "weight", epochs: int = 10,
                   epochs_per_step: int = 1, final_epochs: int = 5, step: float = 0.05,
                   lr: float = 3e-3, batch_size: int = 64, seed: int = 0, score_batches: int = 4,
                   min_keep: float = 0.1, progress: bool = False):
    """Run transfer-pruning; yields one result dict per density (descending), each with the fused
    model. The same pruning trajectory serves all densities (the seed's incremental pruning).
    """
    import copy

    from tqdm import tqdm

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = replace_head(copy.deepcopy(source), num_classes, seed)
    spa.add_adapters(model, kind="splora" if method == "splora" else "masked", rank=rank)
    bar = tqdm(total=epochs, desc=f"{method} train", disable=not progress, leave=False)
    train(model, xtr, ytr, epochs, lr, batch_size, seed, bar)
    bar.close()
    results = []
    densities = sorted(densities, reverse=True)
    g = torch.Generator().manual_seed(seed + 1)
    steps = 0
    bar = tqdm(desc=f"{method} prune", disable=not progress, leave=False)
    for target in densities:
        while spa.weight_density(model) > target + 1e-12:
            score_data = list(_batches(xtr, ytr, batch_size, g))[:score_batches]
            scores = spa.channel_scores(model, criterion, score_data)
            if spa.prune_step(model, scores, step, target, min_keep=min_keep) == 0:
                break  # every layer is down to its minimum
            steps += 1
            train(model, xtr, ytr, epochs_per_step, lr, batch_size, seed + steps)
            bar.update(1)
            bar.set_postfix(density=f"{spa.weight_density(model):.3f}")
        final = copy.deepcopy(model)
        train(final, xtr, ytr, final_epochs, lr, batch_size, seed + 10_000)
        masked_acc = accuracy(final, xte, yte)
        fused = spa.fuse_adapters(final)
        results.append({
            "method": method, "target_density": target, "density": spa.weight_density(final),
            "accuracy": accuracy(fused, xte, yte), "masked_accuracy": masked_acc,
            "learned_parameters": spa.learned_parameter_count(final),
            "fused_parameters": sum(p.numel() for p in fused.parameters()),
            "pruning_steps": steps, "model": fused})
    bar.close()
    return results


def save(fused: nn.Sequential, path: Path, metadata: dict, metadata_path: Path | None = None):
    from safetensors.torch import save_file
    state = {k: v.detach().contiguous().cpu() for k, v in fused.state_dict().items()}
    meta = {"architecture": spa.describe_sequential(fused), **metadata}
    save_file(state, str(path), metadata={"opendr": json.dumps(meta)})
    metadata_path = metadata_path or path.with_suffix(".json")
    metadata_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return metadata_path


def load(path, architecture=None) -> nn.Sequential:
    """A plain Sequential from ``.safetensors`` weights and an architecture (list, JSON path or
    ``None``: the JSON next to the weights, else the ``opendr`` metadata of the file)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    path = Path(path)
    if architecture is None:
        side = path.with_suffix(".json")
        if side.exists():
            architecture = side
        else:
            with safe_open(str(path), "pt") as f:
                architecture = json.loads(f.metadata()["opendr"])
    if isinstance(architecture, (str, Path)):
        architecture = json.loads(Path(architecture).read_text(encoding="utf-8"))
    if isinstance(architecture, dict):
        architecture = architecture["architecture"]
    model = spa.build_sequential(architecture)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def register(fused: nn.Sequential, name: str, model_dir: Path, metadata: dict) -> tuple[Path, Path]:
    """Write ``model_dir/weights/<name>.safetensors`` and its manifest ``model_dir/manifest/<name>.yaml``."""
    import yaml

    from opendr_perception.core.registry import sha256_of
    if not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"--register: '{name}' is not a valid model name (letters, digits, _ and -)")
    weights = model_dir / "weights" / f"{name}.safetensors"
    manifest = model_dir / "manifest" / f"{name}.yaml"
    weights.parent.mkdir(parents=True, exist_ok=True)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    save(fused, weights, metadata)
    entry = {
        "project": f"weights/{name}.safetensors",
        "sha256": sha256_of(weights),
        "license": "as the source model's weights",
        "origin": f"transfer-prune --method {metadata['method']} --density {metadata['target_density']}",
        "description": f"{metadata['method']} transfer of a Sequential classifier to {metadata['dataset']} "
                       f"classes {metadata['classes']}, fused and pruned",
        "training_data": f"{metadata['dataset']} (scikit-learn), classes {metadata['classes']}",
        "scores": {"test_accuracy": round(float(metadata["accuracy"]), 4),
                   "density": round(float(metadata["density"]), 4)},
        "architecture": spa.describe_sequential(fused),
        "classes": list(metadata["classes"]),
    }
    manifest.write_text(yaml.safe_dump({name: entry}, sort_keys=False), encoding="utf-8")
    return weights, manifest


def _source_model(ref: str, architecture=None) -> nn.Sequential:
    """``--model``: a ``.safetensors`` path, else the name of a registered transfer-pruned model."""
    if Path(ref).exists():
        return load(ref, architecture)
    from opendr_perception.core.registry import ModelError
    try:
        return spa.load_registered(ref)
    except ModelError as e:
        raise SystemExit(f"--model: '{ref}' is neither a file nor a usable registered model ({e})") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="transfer-prune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="source weights (.safetensors, plain state dict of an nn.Sequential) "
                                                  "or the name of a registered transfer-pruned model")
    p.add_argument("--architecture", default=None,
                   help="architecture JSON of --model (default: the .json next to it or the file's metadata)")
    p.add_argument("--builtin", choices=("cnn", "mlp"), default="cnn",
                   help="built-in source model trained here on --source-classes when --model is not given "
                        "(default %(default)s)")
    p.add_argument("--source-epochs", type=int, default=20,
                   help="epochs to pre-train the built-in source (default %(default)s)")
    p.add_argument("--dataset", choices=("digits",), default="digits", help="dataset (default %(default)s)")
    p.add_argument("--source-classes", default="0,1,2,3,4", help="digits the built-in source is trained on")
    p.add_argument("--target-classes", default="5,6,7,8,9", help="digits to transfer to")
    p.add_argument("--test-fraction", type=float, default=0.3, help="held-out share of the target digits")
    p.add_argument("--density", type=float, default=0.3, help="target weight density in (0, 1] (default %(default)s)")
    p.add_argument("--method", choices=METHODS, default="splora", help="default %(default)s")
    p.add_argument("--rank", type=int, default=8, help="SPLoRA rank (default %(default)s)")
    p.add_argument("--criterion", choices=spa.CRITERIA, default="weight", help="channel ranking (default %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs before pruning (default %(default)s)")
    p.add_argument("--epochs-per-step", type=int, default=1, help="epochs after each pruning step")
    p.add_argument("--final-epochs", type=int, default=5, help="epochs after the last pruning step")
    p.add_argument("--step", type=float, default=0.05, help="share of the remaining channels pruned per step")
    p.add_argument("--min-keep", type=float, default=0.1,
                   help="fewest channels kept per layer, as a share of its original channels (default %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    p.add_argument("--output", default="transfer_pruned.safetensors", help="fused weights (default %(default)s)")
    p.add_argument("--metadata", default=None, help="JSON output (default: the weights path with .json)")
    p.add_argument("--register", metavar="NAME", default=None,
                   help="write the result as registry model NAME under --model-dir instead of --output")
    p.add_argument("--model-dir", default="opendr_models",
                   help="models folder of --register (weights/ and manifest/; default %(default)s); "
                        "point OPENDR_MODEL_MANIFESTS at its manifest/ to use the model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _classes(text):
    out = [int(c) for c in text.split(",") if c.strip()]
    if not out or any(not 0 <= c <= 9 for c in out) or len(set(out)) != len(out):
        raise SystemExit(f"bad class list {text!r}")
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.density <= 1:
        raise SystemExit("--density must be in (0, 1]")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    source_cls, target_cls = _classes(args.source_classes), _classes(args.target_classes)
    if args.model:
        source = _source_model(args.model, args.architecture)
        image = any(isinstance(m, nn.Conv2d) for m in source)
        source_acc = None
    else:
        from tqdm import tqdm
        source = build_model(args.builtin, len(source_cls))
        image = args.builtin == "cnn"
        sdata = load_digits_split(source_cls, args.test_fraction, args.seed, image)
        with tqdm(total=args.source_epochs, desc="source", disable=args.quiet, leave=False) as bar:
            train(source, sdata[0], sdata[1], args.source_epochs, args.lr, args.batch_size, args.seed, bar)
        source_acc = accuracy(source, sdata[2], sdata[3])
    data = load_digits_split(target_cls, args.test_fraction, args.seed, image)
    (res,) = transfer_prune(source, data, len(target_cls), args.method, (args.density,), args.rank,
                            args.criterion, args.epochs, args.epochs_per_step, args.final_epochs,
                            args.step, args.lr, args.batch_size, args.seed, min_keep=args.min_keep,
                            progress=not args.quiet)
    fused = res.pop("model")
    meta = {**res, "classes": target_cls, "source_accuracy": source_acc,
            "dataset": args.dataset, "rank": args.rank if args.method == "splora" else None,
            "criterion": args.criterion, "epochs": args.epochs, "min_keep": args.min_keep, "seed": args.seed,
            "wall_s": round(time.perf_counter() - t0, 2)}
    print(f"{args.method}: density {res['density']:.3f}, accuracy {res['accuracy']:.4f}, "
          f"learned parameters {res['learned_parameters']}, fused parameters {res['fused_parameters']}")
    if args.register:
        weights, manifest = register(fused, args.register, Path(args.model_dir), meta)
        print(f"registered '{args.register}': {weights} and {manifest}\n"
              f"use it with OPENDR_MODEL_MANIFESTS={manifest.parent}")
    else:
        out = Path(args.output)
        meta_path = save(fused, out, meta, Path(args.metadata) if args.metadata else None)
        print(f"wrote {out} and {meta_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
