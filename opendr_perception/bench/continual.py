"""Continual vs regular online inference, side by side in one run (CPU, batch 1).

Skeletons (seed 3.3, Table II protocol): a stream of skeletons (NTU-25 by default, 2 persons);
a prediction is wanted for every new frame.

* ``regular``: the published ST-GCN (temporal padding, strides) on the sliding window of the last
  ``clip_len`` (300) frames: one clip forward per prediction (window assembly included).
* ``CoST-GCN*``: one ``forward_step`` per prediction (stride 1). ``CoST-GCN``: a prediction every
  4 steps, so one prediction costs 4 steps.

Reported: predictions/s (mean over the timed predictions, timed in alternating rounds), the
speed-up, MACs per prediction (core.flops convention) and memory: persistent buffers (the frame
window, resp. the continual state), the peak of the memory allocated while one prediction is
computed (from the torch profiler's CPU allocation events: the running sum of allocations minus
frees, so it excludes weights and persistent buffers; frees of tensors allocated before the
profiled prediction are invisible to the profiler, which it reports with a "Memory block of
unknown size" warning, so the peak is an upper bound), and the weights. Random weights: speed and
memory do not depend on them.

Transformers (seed 3.1): per-step wall time of ``torch.nn.TransformerEncoder`` over the window of
the last ``n`` tokens (its fused inference path) vs the project's vectorised continual encoder and
the ``continual`` library's reference implementation, one and two blocks, ``n`` in 16/64/120,
``d = 192``, 16 heads, MLP 384 (the seed's audio setting); plus matrix MACs per step (measured)
and their ratio.
"""
from __future__ import annotations

import argparse
import collections
import copy
import platform
import time
import warnings

from opendr_perception.bench.measure import mb, model_bytes, peak_allocated, tensor_bytes, time_alternating

NAME = "continual"
HELP = ("continual vs regular online inference: CoST-GCN* steps vs ST-GCN on a 300-frame sliding window, "
        "continual transformer steps vs a regular encoder")

_REGULAR_OF = {"costgcn": "stgcn", "costgcn*": "stgcn", "coagcn": "agcn", "coagcn*": "agcn",
               "costr": "str", "costr*": "str"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="costgcn*,costgcn",
                        help="continual skeleton models, each against its regular published model, among "
                             f"{', '.join(_REGULAR_OF)} (default: %(default)s)")
    parser.add_argument("--layout", choices=("ntu25", "coco18"), default="ntu25", help="skeleton (default: ntu25)")
    parser.add_argument("--persons", type=int, default=2, help="persons per frame (default: 2, as NTU)")
    parser.add_argument("--classes", type=int, default=60, help="action classes (default: 60)")
    parser.add_argument("--clip-len", type=int, default=300, help="sliding-window length (default: 300)")
    parser.add_argument("--predictions", type=int, default=8,
                        help="timed predictions of each regular model (default: 8)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each continual model (default: 200)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds (default: 2)")
    parser.add_argument("--tokens", default="16,64,120", help="transformer window lengths n (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=192, help="transformer width (default: 192)")
    parser.add_argument("--heads", type=int, default=16, help="attention heads (default: 16)")
    parser.add_argument("--ff", type=int, default=384, help="feed-forward width (default: 384)")
    parser.add_argument("--transformer-steps", type=int, default=200,
                        help="timed steps per transformer variant (library: a quarter) (default: 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--skip-transformer", action="store_true", help="only the skeleton part")


# ------------------------------------------------------------------------------------
# measurement helpers
# ------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------
# skeletons
# ------------------------------------------------------------------------------------


def _skeleton_pair(name: str, args):
    import torch

    from ..core.flops import count_macs, macs_per_prediction
    from ..models.skeleton_gcn import build_skeleton_model

    torch.manual_seed(0)
    regular = build_skeleton_model(_REGULAR_OF[name], args.classes, args.layout, num_persons=args.persons).eval()
    co = build_skeleton_model(name, args.classes, args.layout, num_persons=args.persons,
                              clip_len=args.clip_len).eval()
    V = regular.layout.num_nodes
    frames = torch.randn(1, 3, args.clip_len + co.delay + args.steps * co.stride + 8, V, args.persons)

    # MACs per prediction: regular on the meta device (no arithmetic); continual steady state
    with torch.device("meta"):
        meta_regular = build_skeleton_model(_REGULAR_OF[name], args.classes, args.layout,
                                            num_persons=args.persons).eval()
    reg_macs = count_macs(meta_regular, torch.empty(1, 3, args.clip_len, V, args.persons, device="meta")).total
    co_macs = macs_per_prediction(copy.deepcopy(co), frames[:, :, 0]).total

    # regular: sliding window of the last clip_len frames, one forward per new frame
    window = collections.deque((frames[:, :, t] for t in range(args.clip_len)), maxlen=args.clip_len)
    t_reg = [args.clip_len]

    def regular_prediction():
        window.append(frames[:, :, t_reg[0] % frames.shape[2]])
        t_reg[0] += 1
        return regular(torch.stack(tuple(window), dim=2))

    # continual: warm-up (not timed), then one prediction = `stride` steps
    t_co = [0]

    def co_step():
        y = co.forward_step(frames[:, :, t_co[0] % frames.shape[2]])
        t_co[0] += 1
        return y

    with torch.no_grad():
        while co_step() is None:
            pass

        def co_prediction():
            out = None
            for _ in range(co.stride):
                out = co_step()
            assert out is not None
            return out

        regular_prediction()  # first-touch allocations, not timed
        co_prediction()
        rounds = max(1, args.rounds)
        sec, count = time_alternating(
            {"regular": regular_prediction, "continual": co_prediction},
            [{"regular": args.predictions // rounds + (r < args.predictions % rounds),
              "continual": max(1, args.steps // co.stride) // rounds + 1} for r in range(rounds)])

        peak_reg = peak_allocated(regular_prediction)
        peak_co = peak_allocated(co_prediction)
    weights = model_bytes(regular)
    res_reg = {"preds_per_s": count["regular"] / sec["regular"], "macs": reg_macs,
               "persistent_bytes": tensor_bytes(tuple(window)), "peak_transient_bytes": peak_reg,
               "weights_bytes": weights, "frames_per_prediction": 1, "timed_predictions": count["regular"]}
    res_co = {"preds_per_s": count["continual"] / sec["continual"], "macs": co_macs,
              "persistent_bytes": tensor_bytes(co.get_state()), "peak_transient_bytes": peak_co,
              "weights_bytes": weights, "steps_per_prediction": co.stride, "delay": co.delay,
              "receptive_field": co.receptive_field, "timed_predictions": count["continual"]}
    for res in (res_reg, res_co):
        res["total_bytes"] = res["persistent_bytes"] + res["peak_transient_bytes"] + res["weights_bytes"]
    return res_reg, res_co


# ------------------------------------------------------------------------------------
# transformers
# ------------------------------------------------------------------------------------


def _time_per_call(fn, calls: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def _transformer(n: int, layers: int, args) -> dict:
    import torch

    from ..core.flops import count_macs
    from ..models.continual_transformer import ContinualTransformerEncoder, library_encoder

    torch.manual_seed(0)
    d = args.d_model
    enc = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(d, args.heads, args.ff, dropout=0.0, batch_first=True), layers,
        enable_nested_tensor=False).eval()
    ours = ContinualTransformerEncoder.from_regular(enc, n).eval()
    lib = library_encoder(enc, n).eval()
    tokens = torch.randn(1, n + 4 * args.transformer_steps + 8, d)
    pos = {"reg": n, "ours": 0, "lib": 0}

    def regular_step():
        t = pos["reg"] = pos["reg"] + 1
        return enc(tokens[:, (t - n) % (tokens.shape[1] - n):][:, :n])[:, -1]

    def ours_step():
        pos["ours"] += 1
        return ours.forward_step(tokens[:, pos["ours"] % tokens.shape[1]])

    def lib_step():
        pos["lib"] += 1
        return lib.forward_step(tokens[:, pos["lib"] % tokens.shape[1]])

    with torch.no_grad():
        for _ in range(n):
            ours_step()
            lib_step()
        steps = max(1, args.transformer_steps)
        t_reg = _time_per_call(regular_step, steps)
        t_ours = _time_per_call(ours_step, steps)
        t_lib = _time_per_call(lib_step, max(1, steps // 4))
        macs_ours = count_macs(ours_step).total
    macs_reg = count_macs(enc, tokens[:, :n]).total  # gradients on: the counted, non-fused path
    return {"n": n, "blocks": layers, "regular_us": t_reg * 1e6, "continual_us": t_ours * 1e6,
            "library_us": t_lib * 1e6, "speedup": t_reg / t_ours, "library_speedup": t_reg / t_lib,
            "regular_macs": macs_reg, "continual_macs": macs_ours, "mac_ratio": macs_reg / macs_ours}


# ------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------


def run(args) -> dict:
    import torch

    names = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in _REGULAR_OF]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose among {', '.join(_REGULAR_OF)}")
    if min(args.predictions, args.steps, args.clip_len, args.persons) < 1:
        raise SystemExit("--predictions, --steps, --clip-len and --persons must be >= 1")
    torch.set_num_threads(max(1, args.threads))
    warnings.filterwarnings("ignore", category=FutureWarning, module="continual")
    figures: dict = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                     "torch": torch.__version__, "threads": torch.get_num_threads(), "skeleton": {},
                     "transformer": []}

    print(f"Continual vs regular inference, CPU, batch 1, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}, float32, random weights")
    print(f"\nSkeletons: {args.layout}, {args.persons} persons, {args.classes} classes, sliding window "
          f"{args.clip_len} frames (memory: torch profiler CPU allocation events)")
    head = (f"{'model':<11}{'preds/s':>9}{'speed-up':>9}{'GMACs/pred':>11}{'MAC ratio':>10}"
            f"{'buffers MB':>11}{'peak MB':>9}{'weights MB':>11}{'total MB':>9}")
    print(head)
    print("-" * len(head))
    done_regular = {}
    for name in names:
        reg, co = _skeleton_pair(name, args)
        reg_name = _REGULAR_OF[name]
        co["speedup"] = co["preds_per_s"] / reg["preds_per_s"]
        co["mac_ratio"] = reg["macs"] / co["macs"]
        co["memory_ratio"] = co["total_bytes"] / reg["total_bytes"]
        figures["skeleton"][name] = {"continual": co, "regular": reg, "regular_name": reg_name}
        rows = [] if reg_name in done_regular else [(reg_name, reg, 1.0, 1.0)]
        done_regular[reg_name] = reg
        rows.append((name, co, co["speedup"], co["mac_ratio"]))
        for label, r, sp, mr in rows:
            print(f"{label:<11}{r['preds_per_s']:>9.1f}{sp:>8.1f}x{r['macs'] / 1e9:>11.3f}{mr:>9.1f}x"
                  f"{mb(r['persistent_bytes']):>11.2f}{mb(r['peak_transient_bytes']):>9.2f}"
                  f"{mb(r['weights_bytes']):>11.2f}{mb(r['total_bytes']):>9.2f}")
    print("(seed Table II, NTU-60, CPU: ST-GCN 2.3 preds/s, CoST-GCN* 46.1 (20.0x), CoST-GCN 32.3 (14.0x);"
          " 16.73 vs 0.16 / 0.27 GFLOPs)")

    if not args.skip_transformer:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
        print(f"\nTransformer encoders: d={args.d_model}, {args.heads} heads, MLP {args.ff}; per-step wall time "
              "(regular = nn.TransformerEncoder on the last n tokens)")
        head = (f"{'n':>4}{'blocks':>7}{'regular us':>11}{'continual us':>13}{'speed-up':>9}"
                f"{'library us':>11}{'lib speed-up':>13}{'MACs reg':>10}{'MACs co':>9}{'MAC ratio':>10}")
        print(head)
        print("-" * len(head))
        for n in tokens:
            for layers in (1, 2):
                r = _transformer(n, layers, args)
                figures["transformer"].append(r)
                print(f"{n:>4}{layers:>7}{r['regular_us']:>11.0f}{r['continual_us']:>13.0f}{r['speedup']:>8.1f}x"
                      f"{r['library_us']:>11.0f}{r['library_speedup']:>12.2f}x{r['regular_macs'] / 1e6:>9.2f}M"
                      f"{r['continual_macs'] / 1e6:>8.3f}M{r['mac_ratio']:>9.1f}x")
        print("(seed, GTZAN n=120: FLOPs 51.5x fewer for one block, 1.76x for two; the seed's own per-step "
              "formulas give ratio = n for one block)")
    return figures
