"""CoX3D vs X3D online video recognition, side by side in one run (CPU, batch 1).

A stream of frames; a prediction is wanted for every new frame (seed 8.1, Table 1 / Table 7
protocol):

* ``X3D``: the published network (temporal padding, clip-wide SE) re-run on the sliding window of
  the last ``T`` frames (13 for S, 16 for M/L): one clip forward per prediction, window assembly
  included.
* ``CoX3D``: one ``forward_step`` per prediction (the continual network predicts at every frame
  once warmed up; warm-up is not timed).

Reported per variant: predictions/s (timed in alternating rounds), the speed-up, multiply-
accumulates per prediction (core.flops convention: convolutions and matrix products) and the
seed's FLOPs convention (``x3d.seed_flops``: ptflops-style, MACs plus bias/BN/ReLU/pooling
elements), and memory: persistent buffers (the frame window, resp. the continual state), the peak
of the memory allocated while one prediction is computed (torch profiler CPU allocation events:
allocations minus frees, so weights and persistent buffers are excluded; frees of tensors
allocated before the profiled prediction are invisible to the profiler, so the peak is an upper
bound), and the weights. Random weights: speed and memory do not depend on them. Float32.

Seed figures for comparison (Table 1, one CPU core of a 2019 MacBook Pro): X3D-S 2.23 clips/s vs
CoX3D-S 13.16 preds/s (5.91x), X3D-M 0.83 vs CoX3D-M 7.57 (9.05x), X3D-L 0.25 vs CoX3D-L 2.30
(9.20x).
"""
from __future__ import annotations

import argparse
import collections
import platform

from opendr_perception.bench.measure import mb, model_bytes, peak_allocated, tensor_bytes, time_alternating

NAME = "continual-video"
HELP = ("CoX3D frame steps vs X3D re-run on a sliding clip: predictions/s, speed-up, MACs and memory "
        "(CPU, batch 1; X3D-S by default, --variants s,m,l for more)")

_SEED = {  # Table 1 (CPU preds/s) and Table 7 (CPU throughput ratio)
    "s": (2.23, 13.16, 5.91), "m": (0.83, 7.57, 9.05), "l": (0.25, 2.30, 9.20), "xs": (8.26, None, None)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants", default="s",
                        help="X3D sizes among xs, s, m, l, comma-separated (default: %(default)s; "
                             "'m' takes about a minute more)")
    parser.add_argument("--size", type=int, default=None,
                        help="frame size S (default: the variant's 160/160/224/312)")
    parser.add_argument("--clip-len", type=int, default=None,
                        help="sliding-window length of X3D (default: the variant's 4/13/16/16)")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="CoX3D temporal pool (default: the clip length; the seed's extended pool: 64)")
    parser.add_argument("--classes", type=int, default=400, help="classes (default: 400)")
    parser.add_argument("--predictions", type=int, default=20, help="timed X3D predictions (default: 20)")
    parser.add_argument("--steps", type=int, default=200, help="timed CoX3D predictions (default: 200)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")


def _pair(variant: str, args) -> tuple:
    import torch

    from ..core.flops import count_macs
    from ..models.x3d import VARIANTS, CoX3D, X3D, seed_flops

    spec = VARIANTS[variant]
    S = args.size or spec.crop_size
    T = args.clip_len or spec.clip_length
    pool = args.pool_size or T
    torch.manual_seed(0)
    regular = X3D(variant, args.classes).eval()
    co = CoX3D(variant, args.classes, pool_size=pool).eval()
    co.load_state_dict(regular.state_dict())
    n_frames = T + co.delay + args.steps + 8
    frames = torch.randn(n_frames, 1, 3, S, S)

    with torch.device("meta"):
        meta_regular = X3D(variant, args.classes).eval()
    reg_macs = count_macs(meta_regular, torch.empty(1, 3, T, S, S, device="meta")).total
    # one continual step = every temporal tap of every kernel applied to one frame once: the MACs
    # of the padded network on a one-frame clip (tests check this against real stepping)
    co_macs = count_macs(meta_regular, torch.empty(1, 3, 1, S, S, device="meta")).total
    reg_flops, co_flops = seed_flops(regular, S, T), seed_flops(co, S)

    window = collections.deque((frames[t] for t in range(T)), maxlen=T)
    pos = {"reg": T, "co": 0}

    def regular_prediction():
        window.append(frames[pos["reg"] % n_frames])
        pos["reg"] += 1
        return regular(torch.stack(tuple(window), dim=2))

    def co_prediction():
        y = co.forward_step(frames[pos["co"] % n_frames])
        pos["co"] += 1
        return y

    with torch.no_grad():
        while co_prediction() is None:  # warm-up, not timed
            pass
        regular_prediction()  # first-touch allocations, not timed
        co_prediction()
        rounds = max(1, args.rounds)

        def checked_co_prediction():
            assert co_prediction() is not None  # past the warm-up every step predicts
        sec, count = time_alternating(
            {"regular": regular_prediction, "continual": checked_co_prediction},
            [{"regular": args.predictions // rounds + (r < args.predictions % rounds),
              "continual": args.steps // rounds + (r < args.steps % rounds)} for r in range(rounds)])
        peak_reg = peak_allocated(regular_prediction)
        peak_co = peak_allocated(co_prediction)
    weights = model_bytes(regular)
    res_reg = {"model": f"X3D-{variant.upper()}", "input": f"{T}x{S}^2",
               "preds_per_s": count["regular"] / sec["regular"], "macs": reg_macs, "seed_flops": reg_flops,
               "persistent_bytes": tensor_bytes(tuple(window)), "peak_transient_bytes": peak_reg,
               "weights_bytes": weights, "timed_predictions": count["regular"]}
    res_co = {"model": f"CoX3D-{variant.upper()}{pool}", "input": f"1x{S}^2",
              "preds_per_s": count["continual"] / sec["continual"], "macs": co_macs, "seed_flops": co_flops,
              "persistent_bytes": tensor_bytes(co.get_state()), "peak_transient_bytes": peak_co,
              "weights_bytes": weights, "timed_predictions": count["continual"], "delay": co.delay,
              "receptive_field": co.receptive_field, "pool_size": pool}
    for res in (res_reg, res_co):
        res["total_bytes"] = res["persistent_bytes"] + res["peak_transient_bytes"] + res["weights_bytes"]
    res_co["speedup"] = res_co["preds_per_s"] / res_reg["preds_per_s"]
    res_co["mac_ratio"] = reg_macs / co_macs
    res_co["flops_ratio"] = reg_flops / co_flops
    res_co["memory_ratio"] = res_co["total_bytes"] / res_reg["total_bytes"]
    return res_reg, res_co


def run(args) -> dict:
    import torch

    from ..models.x3d import VARIANTS

    variants = [v.strip().lower() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise SystemExit(f"unknown variant(s) {unknown}; choose among {', '.join(VARIANTS)}")
    if min(args.predictions, args.steps, args.rounds, args.classes) < 1:
        raise SystemExit("--predictions, --steps, --rounds and --classes must be >= 1")
    if (args.size is not None and args.size < 32) or (args.clip_len is not None and args.clip_len < 1):
        raise SystemExit("--size must be >= 32 and --clip-len >= 1")
    torch.set_num_threads(max(1, args.threads))
    figures: dict = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                     "torch": torch.__version__, "threads": torch.get_num_threads(), "variants": {}}
    print(f"CoX3D vs X3D online inference, CPU, batch 1, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, float32, random weights; X3D re-runs its clip on every new frame")
    head = (f"{'model':<11}{'input':>10}{'preds/s':>9}{'speed-up':>9}{'GMACs/pred':>11}{'MAC ratio':>10}"
            f"{'seed GFLOPs':>12}{'buffers MB':>11}{'peak MB':>9}{'weights MB':>11}{'total MB':>9}")
    print(head)
    print("-" * len(head))
    for v in variants:
        reg, co = _pair(v, args)
        figures["variants"][v] = {"regular": reg, "continual": co}
        for r, sp, mr in ((reg, 1.0, 1.0), (co, co["speedup"], co["mac_ratio"])):
            print(f"{r['model']:<11}{r['input']:>10}{r['preds_per_s']:>9.2f}{sp:>8.2f}x{r['macs'] / 1e9:>11.3f}"
                  f"{mr:>9.1f}x{r['seed_flops'] / 1e9:>12.3f}{mb(r['persistent_bytes']):>11.2f}"
                  f"{mb(r['peak_transient_bytes']):>9.2f}{mb(r['weights_bytes']):>11.2f}"
                  f"{mb(r['total_bytes']):>9.2f}")
        print(f"  CoX3D: receptive field {co['receptive_field']} frames, warm-up {co['delay']} frames; "
              f"memory CoX3D/X3D {co['memory_ratio']:.2f}")
    seeds = [f"{v.upper()} {_SEED[v][0]} vs {_SEED[v][1]} preds/s ({_SEED[v][2]}x)" for v in variants
             if _SEED.get(v, (None, None))[1] is not None]
    if seeds:
        print("(seed Table 1/7, one CPU core: " + "; ".join(seeds) + ")")
    return figures
