"""Train the demonstration CoX3D video-activity model on procedural moving-shape videos (CPU, minutes).

  opendr-train-video-activity --output cox3d_xs_moving_shapes.safetensors --manifest video_activity.yaml

Data: :mod:`opendr_perception.core.moving_shapes` (8 classes of shape motion that no single frame
tells apart: static, move left/right/up/down, grow, shrink, blink), RGB frames at ``--size`` pixels,
normalised with X3D's Kinetics statistics. Every training batch is generated fresh from (seed, step);
held-out sets come from other seeds.

Model: the X3D-XS layout of :mod:`opendr_perception.models.x3d` (stem, bottleneck blocks of widths
24/48/96/192 with SE every other block and swish, conv5 432, fc 2048) with fewer blocks per stage
(``--depths``, default 1,2,3,2 instead of XS's 3,5,11,7: the full depth has a 60-frame receptive field
and does not train in the CPU budget). It is trained as a *regular* X3D over clips of exactly one
receptive field, without temporal padding and with the per-frame squeeze-and-excitation: the network
that the continual CoX3D equals exactly. The same weights are then evaluated

  * as the clip model on held-out clips, and
  * as CoX3D, frame by frame, over longer held-out streams (every prediction after the warm-up counts),
    together with the largest difference between its step outputs and the clip model on the same
    windows (the two must agree to float rounding).

The weights are stored in float16 (``--dtype``) and every evaluation uses the stored, rounded weights.
Everything runs single-threaded by default and is deterministic for a given seed and machine.

Outputs: the ``.safetensors`` weights (metadata key ``opendr``: one JSON of labels and model options),
a metrics JSON (``--metrics``, default next to the weights) and, with ``--manifest``, a YAML registry
entry for the weights.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from opendr_perception.core import moving_shapes as ms
from opendr_perception.tools.training import add_output_arguments, run_deterministic, save_weights

ENTRY_NAME = "cox3d_xs_moving_shapes"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opendr-train-video-activity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(p, ENTRY_NAME)
    p.add_argument("--seed", type=int, default=0, help="training seed: weights init and data (default: 0)")
    p.add_argument("--eval-seed", type=int, default=1000,
                   help="held-out clips use seed eval-seed+1, streams eval-seed+2 (default: %(default)s)")
    p.add_argument("--size", type=int, default=48, help="frame side in pixels (default: 48; X3D-XS: 160)")
    p.add_argument("--depths", default="1,2,3,2", help="blocks per stage (default: %(default)s; X3D-XS: 3,5,11,7)")
    p.add_argument("--pool-size", type=int, default=4,
                   help="frames of the final temporal average (default: 4, X3D-XS's clip length)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per step, a multiple of 8 (default: 16)")
    p.add_argument("--steps", type=int, default=720, help="training steps (default: 720)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate, one-cycle AdamW (default: 3e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default: 1e-4)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the last layer (default: 0.2; "
                   "published: 0.5)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="stored weights (default: float16)")
    p.add_argument("--eval-per-class", type=int, default=50, help="held-out clips per class (default: 50)")
    p.add_argument("--stream-per-class", type=int, default=8, help="held-out streams per class (default: 8)")
    p.add_argument("--stream-frames", type=int, default=48, help="frames per held-out stream (default: 48)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def model_options(args) -> tuple[dict, dict]:
    """The keyword arguments of ``build_x3d`` for the continual and for the regular (clip) model."""
    depths = [int(d) for d in str(args.depths).split(",")]
    return ({"depths": list(depths), "pool_size": args.pool_size},
            {"depths": list(depths), "temporal_padding": False, "se_scope": "frame"})


def _batch(per_class: int, seed, frames: int, size: int):
    import torch

    clips, labels = ms.generate_dataset(per_class, seed, frames, size)
    return ms.to_clip_tensor(clips), torch.from_numpy(labels)


def _train(model, args, frames: int) -> dict:
    import torch
    from tqdm import tqdm

    per_class = args.batch_size // len(ms.CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(args.steps, 1), pct_start=0.15)
    model.train()
    wall, cpu = time.perf_counter(), time.process_time()
    losses, ema = [], None
    bar = tqdm(range(args.steps), desc="training X3D (clips)", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        x, y = _batch(per_class, (args.seed, step), frames, args.size)
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        ema = losses[-1] if ema is None else 0.95 * ema + 0.05 * losses[-1]
        bar.set_postfix(loss=f"{ema:.3f}")
    model.eval()
    return {"steps": args.steps, "batch_size": per_class * len(ms.CLASSES), "peak_lr": args.lr,
            "clips": args.steps * per_class * len(ms.CLASSES),
            "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "final_loss": round(float(np.mean(losses[-30:])), 4) if losses else None}


def _confusion(pred: np.ndarray, labels: np.ndarray) -> list:
    k = len(ms.CLASSES)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm.tolist()


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1e3, 2)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size % len(ms.CLASSES) or args.batch_size <= 0:
        print(f"--batch-size must be a positive multiple of {len(ms.CLASSES)}", file=sys.stderr)
        return 2
    return run_deterministic(_run, args, args.threads)


def _run(args) -> int:
    import torch
    from tqdm import tqdm

    from opendr_perception.models.x3d import build_x3d

    torch.manual_seed(args.seed)
    t_start, c_start = time.perf_counter(), time.process_time()
    k = len(ms.CLASSES)
    co_options, clip_options = model_options(args)
    model = build_x3d("x3d_xs", k, dropout=args.dropout, **clip_options)
    co = build_x3d("cox3d_xs", k, **co_options)
    frames = co.receptive_field  # one clip = one receptive field: the clip model equals one CoX3D step
    metrics = {"entry": ENTRY_NAME, "labels": list(ms.CLASSES), "args": vars(args),
               "model_options": co_options, "regular_options": clip_options,
               "receptive_field": frames, "delay": co.delay,
               "parameters": sum(p.numel() for p in model.parameters()),
               "torch": torch.__version__, "python": platform.python_version()}

    metrics["train"] = _train(model, args, frames)

    # store, then evaluate exactly what is stored (float16 rounding included)
    dtype = getattr(torch, args.dtype)
    state = {n: (t.to(dtype) if t.is_floating_point() else t) for n, t in model.state_dict().items()}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"labels": list(ms.CLASSES), "architecture": "cox3d_xs", "regular_architecture": "x3d_xs",
            "model_options": co_options, "regular_options": clip_options, "input_size": args.size,
            "trained_by": "opendr_perception/tools/train_video_activity.py"}
    digest = save_weights(state, out, meta)
    model.load_state_dict(state)
    co.load_state_dict(state)
    model.eval(), co.eval()

    # held-out clips, clip model
    x, y = _batch(args.eval_per_class, args.eval_seed + 1, frames, args.size)
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 50]).argmax(1) for i in range(0, len(x), 50)]).numpy()
    metrics["heldout_clips"] = {"seed": args.eval_seed + 1, "clips": int(len(y)), "frames": frames,
                                "clip_model_accuracy": round(float((pred == y.numpy()).mean()), 4),
                                "confusion": _confusion(pred, y.numpy())}

    # held-out streams, CoX3D frame by frame vs the clip model on the same windows
    xs, ys = _batch(args.stream_per_class, args.eval_seed + 2, args.stream_frames, args.size)
    co.clean_state()
    step_logits = []
    with torch.no_grad():
        for t in tqdm(range(xs.shape[2]), desc="CoX3D streaming", disable=args.quiet, file=sys.stderr):
            out_t = co.forward_step(xs[:, :, t])
            if out_t is not None:
                step_logits.append(out_t)
        co.clean_state()
        steps = torch.stack(step_logits, 2)  # (N, k, n)
        windows = torch.stack([model(xs[:, :, t - frames + 1:t + 1]) for t in range(frames - 1, xs.shape[2])], 2)
    ok = (steps.argmax(1) == ys[:, None]).numpy()
    ok_clip = (windows.argmax(1) == ys[:, None]).numpy()
    metrics["heldout_streams"] = {
        "seed": args.eval_seed + 2, "streams": int(len(ys)), "frames": args.stream_frames,
        "predictions": int(ok.size), "cox3d_per_step_accuracy": round(float(ok.mean()), 4),
        "clip_model_same_windows_accuracy": round(float(ok_clip.mean()), 4),
        "worst_stream_accuracy": round(float(ok.mean(1).min()), 4),
        "max_abs_logit_difference": float((steps - windows).abs().max()),
        "confusion": _confusion(steps.argmax(1).flatten().numpy(),
                                ys[:, None].expand(-1, steps.shape[2]).flatten().numpy())}

    # cost at batch 1 on this CPU: one CoX3D step vs one clip of a receptive field
    frame = xs[:1, :, 0]
    clip = xs[:1, :, :frames]
    with torch.no_grad():
        co.clean_state()
        for t in range(frames):
            co.forward_step(xs[:1, :, t])
        step_ms = _median_ms(lambda: co.forward_step(frame), 30)
        co.clean_state()
        clip_ms = _median_ms(lambda: model(clip), 5)
    metrics["timing_batch1"] = {"threads": torch.get_num_threads(), "cox3d_step_ms": step_ms, "x3d_clip_ms": clip_ms,
                                "size": args.size, "clip_frames": frames}
    metrics["weights"] = {"file": out.name, "sha256": digest, "bytes": out.stat().st_size, "dtype": args.dtype}
    metrics["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    metrics["total_cpu_s"] = round(time.process_time() - c_start, 1)

    metrics_path = Path(args.metrics) if args.metrics else out.with_suffix(".json")
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.manifest:
        Path(args.manifest).write_text(manifest_yaml(metrics, args.manifest_path))
    hs, hc = metrics["heldout_streams"], metrics["heldout_clips"]
    print(f"weights  {out} ({out.stat().st_size} bytes, sha256 {digest})")
    print(f"metrics  {metrics_path}")
    print(f"held-out clips   clip model accuracy {hc['clip_model_accuracy']:.3f} ({hc['clips']} clips)")
    print(f"held-out streams CoX3D per-step accuracy {hs['cox3d_per_step_accuracy']:.3f} over "
          f"{hs['predictions']} predictions (clip model on the same windows "
          f"{hs['clip_model_same_windows_accuracy']:.3f}, "
          f"max |logit difference| {hs['max_abs_logit_difference']:.2e})")
    print(f"batch-1 cost     CoX3D step {step_ms} ms, X3D clip of {frames} frames {clip_ms} ms")
    print(f"time     {metrics['total_wall_s']} s wall, {metrics['total_cpu_s']} s CPU")
    return 0


def manifest_yaml(metrics: dict, project_path: str) -> str:
    """A registry manifest (YAML) with one entry for the weights the metrics describe."""
    import yaml

    args, train = metrics["args"], metrics["train"]
    hc, hs = metrics["heldout_clips"], metrics["heldout_streams"]
    depths = ",".join(str(d) for d in metrics["model_options"]["depths"])
    entry = {
        "project": project_path,
        "sha256": metrics["weights"]["sha256"],
        "license": "Apache-2.0",
        "origin": "trained by opendr-ros2 with tools/train_video_activity.py",
        "description": (f"Demo CoX3D (continual X3D, a prediction per frame) with the X3D-XS layout at reduced "
                        f"depth ({depths} blocks per stage) for 8 procedural moving-shape activities; not "
                        "trained on real video"),
        "training_data": (
            "Procedural only (opendr_perception.core.moving_shapes): one circle/square/diamond/cross of random "
            "colour, size and position on a random gradient background with 0-4 static clutter blobs and "
            "per-frame noise (std 0-8); classes static, move_left/right/up/down (2.5-5% of the side per frame, "
            "wrapping), grow/shrink (sawtooth ramps of 8-16 frames), blink (2-5 frames on/off); "
            f"{args['size']}x{args['size']} RGB at a nominal {ms.FPS:g} frames/s. Regular X3D without temporal "
            f"padding, per-frame SE, trained on clips of {hc['frames']} frames: {train['steps']} steps of "
            f"{train['batch_size']} fresh clips ({train['clips']} clips, seed {args['seed']})."),
        "scores": {
            "note": ("top-1 accuracy on procedurally generated held-out data (other seeds); a demo, not "
                     "Kinetics accuracy"),
            "heldout_clips": {"set": f"seed {hc['seed']}, {hc['clips']} clips of {hc['frames']} frames",
                              "clip_model": hc["clip_model_accuracy"]},
            "heldout_streams": {
                "set": (f"seed {hs['seed']}, {hs['streams']} streams of {hs['frames']} frames; every "
                        "prediction after warm-up"),
                "cox3d_per_step": hs["cox3d_per_step_accuracy"],
                "clip_model_same_windows": hs["clip_model_same_windows_accuracy"],
                "max_abs_logit_difference": float(f"{hs['max_abs_logit_difference']:.3g}")},
        },
        "architecture": "cox3d_xs",
        "regular_architecture": "x3d_xs",
        "model_options": metrics["model_options"],
        "regular_options": metrics["regular_options"],
        "num_classes": len(metrics["labels"]),
        "labels": list(metrics["labels"]),
        "input_size": args["size"],
        "fps": ms.FPS,
        "receptive_field": metrics["receptive_field"],
        "delay": metrics["delay"],
        "normalization": {"color": "rgb", "mean": ms.MEAN, "std": ms.STD, "scale": "x / 255",
                          "resize": "centre square crop, then resize to input_size"},
        "dtype": metrics["weights"]["dtype"],
        "parameters": metrics["parameters"],
        "card": f"cards/{ENTRY_NAME}.md",
    }
    header = ("# Demonstration video-activity weights trained here on procedural moving shapes (no dataset).\n"
              "# Written by opendr_perception/tools/train_video_activity.py --manifest; see the model card.\n")
    return header + yaml.safe_dump({ENTRY_NAME: entry}, sort_keys=False, width=100, allow_unicode=False)


if __name__ == "__main__":
    sys.exit(main())
