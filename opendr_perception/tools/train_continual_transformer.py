"""Train the demonstration continual transformer classifiers on generated data (CPU, minutes).

  opendr-train-continual-transformer --task audio --output cotrans_audio_synth.safetensors
  opendr-train-continual-transformer --task oad --output cotrans_oad_synth.safetensors

Tasks (both a one-block continual transformer, the seed's CoTrans-b1 / CoOadTR-b1, at toy scale):

* ``audio``: 7 synthesized sound classes at 16 kHz (:mod:`opendr_perception.core.audio_synth`).
  A token is the embedding of the last 1 s of audio (log-mel -> CNN, :class:`AudioFrontend`), one
  every 250 ms; the encoder attends over the last ``--sequence-len`` tokens. The label of a step
  is the class at the centre of its newest window. Stages: a. the frontend with a linear head on
  single windows; b. the transformer and head on the frozen frontend's tokens over streams with
  class changes; c. everything together, briefly, at a lower learning rate.
* ``oad``: online action detection on synthetic per-frame feature streams
  (:mod:`opendr_perception.core.feature_streams`): background + 5 actions that differ in their
  temporal pattern; one token per frame; per-frame labels.

Training data is generated from ``--seed``; held-out streams from ``--eval-seed`` (disjoint). The
held-out streams are run *continually*, one step at a time (``forward_step``), as the nodes run
them; reported: per-step accuracy after warm-up (audio also on steps whose whole receptive field
is one class, and the frontend alone per window; OAD also per-class AP and mAP over frames,
background excluded, the seed's THUMOS'14 metric), and the largest difference between the
continual and the regular (sliding-window) outputs.

Outputs: the ``.safetensors`` weights (metadata ``opendr``: a JSON of the labels and options), a
metrics JSON (``--metrics``, default next to the weights) and, with ``--manifest``, the task's
entry written into (or updated in) a registry manifest YAML.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from opendr_perception.tools.training import run_deterministic, save_weights

ENTRIES = {"audio": "cotrans_audio_synth", "oad": "cotrans_oad_synth"}
DEFAULTS = {  # per task: sequence_len, steps, batch, lr
    "audio": dict(sequence_len=8, steps=600, batch_size=24, lr=3e-3),
    "oad": dict(sequence_len=16, steps=1200, batch_size=16, lr=3e-3),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opendr-train-continual-transformer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(ENTRIES), required=True, help="audio or oad")
    p.add_argument("--output", default=None, help="weights file (default: <entry>.safetensors)")
    p.add_argument("--metrics", default=None, help="metrics JSON (default: the weights path with .json)")
    p.add_argument("--manifest", default=None, help="write/update the task's entry in this registry manifest (YAML)")
    p.add_argument("--manifest-path", default=None,
                   help="the entry's 'project:' path, relative to models/ (default: weights/<entry>.safetensors)")
    p.add_argument("--seed", type=int, default=0, help="training seed: weights init and data (default: 0)")
    p.add_argument("--eval-seed", type=int, default=1000, help="held-out data seed (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--sequence-len", type=int, default=None, help="attention window n in tokens "
                   "(default: audio 8 = 2 s of hops, oad 16 frames)")
    p.add_argument("--d-model", type=int, default=32, help="token size (default: 32)")
    p.add_argument("--nhead", type=int, default=4, help="attention heads (default: 4)")
    p.add_argument("--dim-feedforward", type=int, default=64, help="MLP width (default: 64)")
    p.add_argument("--num-layers", type=int, default=1, help="1: single-output (b1), 2: retroactive + single-output")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (audio: stage b; stage a and c are fractions of it) "
                        "(default: audio 600, oad 1200)")
    p.add_argument("--batch-size", type=int, default=None, help="streams per step (default: audio 24, oad 16)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 3e-3)")
    p.add_argument("--train-streams", type=int, default=400,
                   help="audio: generated training streams of --stream-seconds (default: 400)")
    p.add_argument("--stream-seconds", type=float, default=12.0, help="audio training stream length (default: 12)")
    p.add_argument("--train-frames", type=int, default=160, help="oad: frames per training stream (default: 160)")
    p.add_argument("--eval-streams", type=int, default=60, help="held-out streams (default: 60)")
    p.add_argument("--eval-length", type=float, default=None,
                   help="held-out stream length: audio seconds (default 20), oad frames (default 400)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


# --------------------------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------------------------

def _optimise(params, steps: int, lr: float, batch_fn, loss_fn, args, desc: str) -> dict:
    import torch
    from tqdm import tqdm

    params = [p for p in params if p.requires_grad]
    if steps <= 0:
        return {"steps": 0, "wall_s": 0.0, "cpu_s": 0.0, "final_loss": None}
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    wall, cpu = time.perf_counter(), time.process_time()
    losses, ema = [], None
    bar = tqdm(range(steps), desc=desc, disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        loss = loss_fn(*batch_fn(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        ema = losses[-1] if ema is None else 0.95 * ema + 0.05 * losses[-1]
        bar.set_postfix(loss=f"{ema:.3f}")
    return {"steps": steps, "peak_lr": lr, "wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "final_loss": round(float(np.mean(losses[-50:])), 4)}


def _confusion(pred: np.ndarray, labels: np.ndarray, k: int) -> list:
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm.tolist()


def _continual_logits(model, steps):
    """Run ``forward_step`` over ``steps (B, T, ...)`` from a clean state: logits ``(B, T - delay, C)``,
    seconds per step (batch B), and the regular outputs' largest difference from them."""
    import torch

    model.clean_state()
    outs, started = [], time.perf_counter()
    with torch.no_grad():
        for t in range(steps.shape[1]):
            y = model.forward_step(steps[:, t])
            if y is not None:
                outs.append(y)
        per_step = (time.perf_counter() - started) / steps.shape[1]
        model.clean_state()
        logits = torch.stack(outs, 1)
        regular = torch.cat([model.forward_steps(steps[i:i + 4]) for i in range(0, len(steps), 4)])
    return logits, per_step, float((regular - logits).abs().max())


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------

def _audio_streams(count: int, seconds: float, seed: int, frontend, quiet: bool, desc: str, keep_waves: bool = False):
    """Generated streams -> waveforms ``(count, samples)`` (None unless ``keep_waves``), dB spectrograms
    ``(count, mels, frames)``, per-window labels (class at the window centre) and purity (one class)."""
    import torch
    from tqdm import tqdm

    from opendr_perception.core import audio_synth

    rng = np.random.default_rng(seed)
    W, H = frontend.window_samples, frontend.hop_samples
    T = frontend.num_windows(int(seconds * audio_synth.SAMPLE_RATE))
    length = W + (T - 1) * H
    specs, labels, pure, waves = [], [], [], []
    for _ in tqdm(range(count), desc=desc, disable=quiet, file=sys.stderr, dynamic_ncols=True):
        wave, segments = audio_synth.render_stream(rng, length / audio_synth.SAMPLE_RATE + 1.0)
        wave = wave[:length]
        ends = W + H * np.arange(T)
        centre, whole = audio_synth.window_labels(segments, ends, W)
        with torch.no_grad():
            specs.append(frontend.spectrogram(torch.from_numpy(wave)[None])[0])
        if keep_waves:
            waves.append(wave)
        labels.append(centre)
        pure.append(whole)
    waves = torch.from_numpy(np.stack(waves)) if keep_waves else None
    return waves, torch.stack(specs), torch.from_numpy(np.stack(labels)), torch.from_numpy(np.stack(pure))


def _train_audio(args, metrics):
    """Stages a, b, c and the held-out evaluation of the audio task; returns (model, manifest extras)."""
    import torch
    import torch.nn.functional as F

    from opendr_perception.core import audio_synth
    from opendr_perception.models.continual_classifiers import AudioFrontend, ContinualSequenceClassifier

    k = len(audio_synth.CLASSES)
    frontend_options = dict(sample_rate=audio_synth.SAMPLE_RATE, window_s=1.0, hop_s=0.25, n_fft=400, frame_hop=250,
                            n_mels=32, fmin=50.0, fmax=8000.0, channels=[16, 32, 48], embed_dim=32)
    model_options = dict(num_classes=k, input_dim=frontend_options["embed_dim"], d_model=args.d_model,
                         nhead=args.nhead, sequence_len=args.sequence_len, dim_feedforward=args.dim_feedforward,
                         num_layers=args.num_layers, dropout=0.1)
    frontend = AudioFrontend(**frontend_options)
    model = ContinualSequenceClassifier(frontend=frontend, **model_options)
    _, specs, labels, _ = _audio_streams(args.train_streams, args.stream_seconds, args.seed, frontend, args.quiet,
                                         "generating training audio")
    windows = frontend.window_spectrograms(specs)  # (N, T, mels, frames), a view
    N, T = labels.shape
    n = args.sequence_len
    gen = torch.Generator().manual_seed(args.seed)

    # a. frontend + linear head on single windows
    probe = torch.nn.Linear(frontend.embed_dim, k)

    def window_batch(step):
        i = torch.randint(N, (args.batch_size * 8,), generator=gen)
        j = torch.randint(T, (args.batch_size * 8,), generator=gen)
        return windows[i, j], labels[i, j]

    def window_loss(x, y):
        return F.cross_entropy(probe(frontend.embed_spectrograms(x)), y, label_smoothing=0.05)

    model.train()
    metrics["train_a_frontend"] = _optimise(list(frontend.parameters()) + list(probe.parameters()),
                                            args.steps // 2, args.lr, window_batch, window_loss, args,
                                            "a: frontend on windows")

    # b. transformer on the frozen frontend's tokens (clips of 3n tokens from the streams)
    frontend.eval()
    with torch.no_grad():
        tokens = torch.cat([frontend.embed_spectrograms(windows[i:i + 16].flatten(0, 1))
                            .reshape(-1, T, frontend.embed_dim) for i in range(0, N, 16)])
    clip = min(T, 3 * n)

    def clip_indices(size):
        i = torch.randint(N, (size,), generator=gen)
        s = torch.randint(T - clip + 1, (size,), generator=gen)
        j = s[:, None] + torch.arange(clip)
        return i[:, None], j

    def token_batch(step):
        i, j = clip_indices(args.batch_size)
        return tokens[i, j], labels[i, j][:, n - 1:]

    def sequence_loss(x, y):
        logits = model.classify_windows(x, tau0=None)
        return F.cross_entropy(logits.reshape(-1, k), y.reshape(-1), label_smoothing=0.05)

    head_params = [p for name, p in model.named_parameters() if not name.startswith("frontend.")]
    metrics["train_b_transformer"] = _optimise(head_params, args.steps, args.lr, token_batch, sequence_loss, args,
                                               "b: transformer on tokens")

    # c. everything together (BatchNorm in eval mode: statistics of stage a)
    c_batch = max(2, args.batch_size // 3)

    def spectrogram_batch(step):
        i, j = clip_indices(c_batch)
        return windows[i, j], labels[i, j][:, n - 1:]

    def joint_loss(x, y):
        B = x.shape[0]
        tok = frontend.embed_spectrograms(x.flatten(0, 1)).reshape(B, -1, frontend.embed_dim)
        return sequence_loss(tok, y)

    metrics["train_c_joint"] = _optimise(list(model.parameters()), args.steps // 4, args.lr / 5, spectrogram_batch,
                                         joint_loss, args, "c: joint fine-tuning")
    model.eval()
    metrics["train_a_frontend"]["batch_size"] = args.batch_size * 8
    metrics["train_b_transformer"]["batch_size"] = f"{args.batch_size} clips of {clip} tokens"
    metrics["train_c_joint"]["batch_size"] = f"{c_batch} clips of {clip} tokens"

    # held-out: continual stepping over 1 s windows every 250 ms
    seconds = args.eval_length or 20.0
    waves, specs, y, pure = _audio_streams(args.eval_streams, seconds, args.eval_seed, frontend, args.quiet,
                                           "generating held-out audio", keep_waves=True)
    steps = waves.unfold(1, frontend.window_samples, frontend.hop_samples)  # (B, T, W)
    logits, per_step_s, diff = _continual_logits(model, steps)
    pred = logits.argmax(-1).numpy()
    y_all, pure_steps = y.numpy(), pure.numpy()
    y_steps = y_all[:, n - 1:]
    # steps whose whole receptive field (the last n windows) is one segment
    steady = np.stack([pure_steps[:, t - n + 1:t + 1].all(1) & (y_all[:, t - n + 1:t + 1] == y_all[:, t:t + 1]).all(1)
                       for t in range(n - 1, pure_steps.shape[1])], 1)
    with torch.no_grad():
        win_pred = probe(frontend.embed_spectrograms(frontend.window_spectrograms(specs).flatten(0, 1)))
    win_pred = win_pred.argmax(-1).reshape(y.shape).numpy()
    ok = pred == y_steps
    metrics["heldout"] = {
        "set": f"{args.eval_streams} streams of {seconds:g} s, seed {args.eval_seed}, segments 2-5 s",
        "per_step_accuracy": round(float(ok.mean()), 4),
        "predictions": int(ok.size),
        "steady_state_accuracy": round(float(ok[steady].mean()), 4),
        "steady_state_predictions": int(steady.sum()),
        "frontend_only_window_accuracy": round(float((win_pred == y.numpy()).mean()), 4),
        "frontend_only_pure_window_accuracy": round(float((win_pred == y.numpy())[pure_steps].mean()), 4),
        "confusion": _confusion(pred.ravel(), y_steps.ravel(), k),
        "continual_vs_regular_max_abs_diff": diff,
        "continual_ms_per_step_batch": round(per_step_s * 1e3, 2),
    }
    extra = {"task": "audio", "labels": list(audio_synth.CLASSES), "model": {**model_options, "dropout": 0.0},
             "frontend": frontend_options}
    return model, extra


# --------------------------------------------------------------------------------------------
# online action detection
# --------------------------------------------------------------------------------------------

def _train_oad(args, metrics):
    """Training and held-out evaluation of the OAD task; returns (model, manifest extras)."""
    import torch
    import torch.nn.functional as F

    from opendr_perception.core import feature_streams as fs
    from opendr_perception.models.continual_classifiers import ContinualSequenceClassifier

    k = len(fs.LABELS)
    n = args.sequence_len
    model_options = dict(num_classes=k, input_dim=fs.FEATURE_DIM, d_model=args.d_model, nhead=args.nhead,
                         sequence_len=n, dim_feedforward=args.dim_feedforward, num_layers=args.num_layers,
                         dropout=0.1)
    model = ContinualSequenceClassifier(**model_options)

    def batch(step):
        x, y = fs.generate_streams(args.batch_size, args.train_frames, seed=args.seed * 1_000_003 + step)
        return torch.from_numpy(x), torch.from_numpy(y)[:, n - 1:]

    def loss(x, y):
        logits = model.classify_windows(x, tau0=None)
        return F.cross_entropy(logits.reshape(-1, k), y.reshape(-1), label_smoothing=0.05)

    model.train()
    metrics["train"] = _optimise(model.parameters(), args.steps, args.lr, batch, loss, args, "oad transformer")
    metrics["train"]["batch_size"] = f"{args.batch_size} streams of {args.train_frames} frames"
    model.eval()

    frames = int(args.eval_length or 400)
    x, y = fs.generate_streams(args.eval_streams, frames, seed=args.eval_seed)
    logits, per_step_s, diff = _continual_logits(model, torch.from_numpy(x))
    prob = torch.softmax(logits, -1).reshape(-1, k).numpy()
    labels = y[:, n - 1:].reshape(-1)
    pred = prob.argmax(1)
    ap = fs.per_class_ap(prob, labels)
    metrics["heldout"] = {
        "set": f"{args.eval_streams} streams of {frames} frames, seed {args.eval_seed}",
        "per_frame_accuracy": round(float((pred == labels).mean()), 4),
        "predictions": int(labels.size),
        "action_frames_accuracy": round(float((pred == labels)[labels > 0].mean()), 4),
        "per_class_ap": {name: round(v, 4) for name, v in ap.items() if name != "mAP"},
        "mAP": round(ap["mAP"], 4),
        "confusion": _confusion(pred, labels, k),
        "continual_vs_regular_max_abs_diff": diff,
        "continual_ms_per_step_batch": round(per_step_s * 1e3, 2),
    }
    metrics["heldout"]["single_frame_baseline"] = _single_frame_baseline(args, x, y, n)
    extra = {"task": "oad", "labels": list(fs.LABELS), "model": {**model_options, "dropout": 0.0},
             "fps": fs.FPS, "feature_dim": fs.FEATURE_DIM}
    return model, extra


def _single_frame_baseline(args, x, y, n) -> dict:
    """A reference without temporal context: an MLP (32-64-64-classes) on the newest frame only, trained
    like the transformer (same steps, streams and schedule; not shipped); scored on the same held-out frames."""
    import torch
    import torch.nn.functional as F

    from opendr_perception.core import feature_streams as fs

    torch.manual_seed(args.seed + 1)
    k = len(fs.LABELS)
    mlp = torch.nn.Sequential(torch.nn.Linear(fs.FEATURE_DIM, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, k))

    def batch(step):
        xs, ys = fs.generate_streams(args.batch_size, args.train_frames, seed=args.seed * 1_000_003 + step)
        return torch.from_numpy(xs).reshape(-1, fs.FEATURE_DIM), torch.from_numpy(ys).reshape(-1)

    def loss(xb, yb):
        return F.cross_entropy(mlp(xb), yb, label_smoothing=0.05)

    train = _optimise(mlp.parameters(), args.steps, args.lr, batch, loss, args, "single-frame baseline")
    with torch.no_grad():
        prob = torch.softmax(mlp(torch.from_numpy(x[:, n - 1:]).reshape(-1, fs.FEATURE_DIM)), -1).numpy()
    labels = y[:, n - 1:].reshape(-1)
    ap = fs.per_class_ap(prob, labels)
    accuracy = round(float((prob.argmax(1) == labels).mean()), 4)
    return {"model": "MLP on the newest frame only", "per_frame_accuracy": accuracy,
            "mAP": round(ap["mAP"], 4), "per_class_ap": {a: round(ap[a], 4) for a in fs.ACTIONS},
            "train_wall_s": train["wall_s"]}


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.sequence_len < 2 or args.steps < 1 or args.batch_size < 1:
        print("--sequence-len must be >= 2, --steps and --batch-size >= 1", file=sys.stderr)
        return 2
    return run_deterministic(_run, args, args.threads)


def _run(args) -> int:
    import torch

    torch.manual_seed(args.seed)
    entry = ENTRIES[args.task]
    t_start, c_start = time.perf_counter(), time.process_time()
    metrics = {"entry": entry, "task": args.task, "args": vars(args).copy(), "torch": torch.__version__,
               "python": platform.python_version()}
    model, extra = (_train_audio if args.task == "audio" else _train_oad)(args, metrics)
    metrics["parameters"] = sum(p.numel() for p in model.parameters())
    metrics["delay_steps"] = model.delay
    metrics["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    metrics["total_cpu_s"] = round(time.process_time() - c_start, 1)

    out = Path(args.output or f"{entry}.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {**extra, "trained_by": "opendr_perception/tools/train_continual_transformer.py"}
    digest = save_weights(model.state_dict(), out, meta)
    metrics["weights"] = {"file": out.name, "sha256": digest, "bytes": out.stat().st_size}
    metrics["extra"] = extra
    metrics_path = Path(args.metrics) if args.metrics else out.with_suffix(".json")
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.manifest:
        write_manifest_entry(Path(args.manifest), metrics, args.manifest_path or f"weights/{entry}.safetensors")

    h = metrics["heldout"]
    print(f"weights  {out} ({out.stat().st_size} bytes, sha256 {digest})")
    print(f"metrics  {metrics_path}")
    print("held-out " + ", ".join(f"{key} {value}" for key, value in h.items()
                                  if isinstance(value, (int, float)) and not isinstance(value, bool)))
    print(f"time     {metrics['total_wall_s']} s wall, {metrics['total_cpu_s']} s CPU")
    return 0


def manifest_entry(metrics: dict, project_path: str) -> dict:
    """The registry entry (a dict) for the weights the metrics describe."""
    extra, h, task = metrics["extra"], metrics["heldout"], metrics["task"]
    m = extra["model"]
    arch = (f"one-block continual transformer (single-output attention), d_model {m['d_model']}, {m['nhead']} heads, "
            f"MLP {m['dim_feedforward']}, window of {m['sequence_len']} tokens"
            if m["num_layers"] == 1 else f"{m['num_layers']}-block continual transformer")
    if task == "audio":
        stages = (metrics["train_a_frontend"], metrics["train_b_transformer"], metrics["train_c_joint"])
        description = ("Demo continual transformer audio classifier (CoTrans-b1 at toy scale): 7 synthesized sound "
                       "classes, a prediction every 250 ms from the last 1 s windows; not trained on real recordings")
        training_data = (
            "Synthesized only (opendr_perception.core.audio_synth): streams of 2-5 s segments of tone, chirp_up, "
            "chirp_down, tremolo, clicks, chord, noise_bursts at 16 kHz with random pitch 200-2000 Hz, rates, level "
            "-30..-6 dBFS, background noise at 10-30 dB SNR. "
            f"{metrics['args']['train_streams']} streams of {metrics['args']['stream_seconds']:g} s (seed "
            f"{metrics['args']['seed']}); stage a {stages[0]['steps']} steps (frontend on windows), stage b "
            f"{stages[1]['steps']} steps (transformer on frozen tokens), stage c {stages[2]['steps']} steps "
            f"(joint). Model: log-mel (32 bands) -> 3-layer CNN -> 32-d token; {arch}.")
        scores = {
            "note": "accuracy on synthesized held-out audio (another seed); a demo, not GTZAN or real-world accuracy",
            "heldout_streams": {
                "set": h["set"], "per_step_accuracy": h["per_step_accuracy"], "predictions": h["predictions"],
                "steady_state_accuracy": h["steady_state_accuracy"],
                "frontend_only_window_accuracy": h["frontend_only_window_accuracy"]}}
    else:
        description = ("Demo continual transformer online action detector (CoOadTR-b1 at toy scale): per-frame "
                       "background / 5 actions from synthetic 32-d feature vectors; not trained on video features")
        training_data = (
            "Synthetic only (opendr_perception.core.feature_streams): 32-d per-frame feature streams, background "
            "(6-30 frames, drifting distractors) alternating with 5 actions (12-40 frames) that differ in their "
            "temporal pattern (reach, wave, bend cycle between two of three shared key states; pulse oscillates; "
            "ramp progresses), Gaussian noise sigma 0.25-0.5. "
            f"{metrics['train']['steps']} steps, each on {metrics['train']['batch_size']} freshly generated "
            f"(seed {metrics['args']['seed']}). Model: {arch}.")
        scores = {
            "note": "per-frame scores on synthetic held-out streams (another seed); a demo, not THUMOS'14 mAP",
            "heldout_streams": {"set": h["set"], "per_frame_accuracy": h["per_frame_accuracy"], "mAP": h["mAP"],
                                "per_class_ap": h["per_class_ap"]},
            "single_frame_mlp_reference": {key: h["single_frame_baseline"][key]
                                           for key in ("per_frame_accuracy", "mAP")}}
    return {
        "project": project_path,
        "sha256": metrics["weights"]["sha256"],
        "license": "Apache-2.0",
        "origin": "trained by opendr-ros2 with tools/train_continual_transformer.py",
        "description": description,
        "training_data": training_data,
        "scores": scores,
        **extra,
        "delay": metrics["delay_steps"],
        "parameters": metrics["parameters"],
        "card": f"cards/{metrics['entry']}.md",
    }


def write_manifest_entry(path: Path, metrics: dict, project_path: str) -> None:
    """Write the task's entry into the manifest at ``path``, keeping its other entries."""
    import yaml

    entries = yaml.safe_load(path.read_text()) if path.is_file() else None
    entries = dict(entries or {})
    entries[metrics["entry"]] = manifest_entry(metrics, project_path)
    header = ("# Demonstration continual transformer weights trained here on generated data (no dataset).\n"
              "# Written by opendr_perception/tools/train_continual_transformer.py --manifest; see the model cards.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump({k: entries[k] for k in sorted(entries)}, sort_keys=False, width=100))


if __name__ == "__main__":
    sys.exit(main())
