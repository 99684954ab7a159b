"""Occlusion-aware face verification: the seed's Tables 2/4/6 (D3.3 appendix 8.12) at toy scale.

Pairs of HELD-OUT face images (face_sim renders of the project's 3 sample faces at pan -30/0/+30 deg,
1.0/1.6/2.4 m, 3 camera heights: images the occlusion models never saw in training), half of the same
person, half of two people. The reference image stays clean; the query is augmented (lighting, mirror,
blur, noise) and occluded by the 2D generator (an unseen occluder: skimage's chelsea photo or a plain
colour, 20-60% of the face box from one of the 4 sides, or a fixed ``--coverage``). A pair is accepted
when the dlib descriptors are closer than the recogniser's threshold (0.6). Rows:

* clean: the augmented query without occluder;
* occluded: no action;
* D_m iterated, max 1 / max k: the direction net reads the query's face crop; until it says ``none``
  (or k steps), one predefined step in its direction (3D emulator: the occluder slides by the pair's
  "movement impact", 0.5-1.25x its penetration into the face box, i.e. a random occluder depth);
* D_m + R_m (two-step): one step in the predicted direction, the ratio regressor reads the two views
  and the occluder moves (1 + r) x impact in all.

Also: the direction net's accuracy (5 classes, on the occluded and the clean queries) and the ratio
regressor's mean absolute error (on first steps in the correct direction; target clipped to [0, 1]).
With 3 identities this shows the method works end to end on this data, not LFW/CPLFW/AgeDB figures.
"""
from __future__ import annotations

import sys
import time

import numpy as np

NAME = "occlusion"
HELP = "occlusion-aware face verification: clean, occluded, iterated D_m and D_m + R_m moves (3D emulator)"


def add_arguments(parser) -> None:
    parser.add_argument("--pairs", type=int, default=120, help="pairs, half same and half different (default %(default)s)")
    parser.add_argument("--max-steps", type=int, default=5, help="k for 'D_m iterated, max k' (default %(default)s)")
    parser.add_argument("--coverage", type=float, default=None,
                        help="fixed occluded fraction of the face box (default: uniform 0.2-0.6)")
    parser.add_argument("--weights", default="", help="occlusion-removal .safetensors (default: the registry's)")
    parser.add_argument("--seed", type=int, default=7, help="pairs and occlusions seed (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _pairs(views, n: int, rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    by_id = {}
    for i, v in enumerate(views):
        by_id.setdefault(v.identity, []).append(i)
    ids = sorted(by_id)
    pairs = []
    for k in range(n):
        same = k % 2 == 0
        if same:
            a = ids[int(rng.integers(len(ids)))]
            i, j = rng.choice(by_id[a], 2, replace=False)
        else:
            a, b = rng.choice(len(ids), 2, replace=False)
            i, j = rng.choice(by_id[ids[a]]), rng.choice(by_id[ids[b]])
        pairs.append((int(i), int(j), same))
    return pairs


def run(args) -> dict:
    import torch
    from tqdm import tqdm

    from opendr_perception.core import occlusion as occ
    from opendr_perception.core.types import BoundingBox
    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    from opendr_perception.models.occlusion_removal import OcclusionRemover
    from opendr_perception.tools import train_occlusion_removal as data

    if args.pairs < 2 or args.max_steps < 1:
        raise ValueError("--pairs must be >= 2 and --max-steps >= 1")
    torch.set_num_threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    remover = OcclusionRemover.from_file(args.weights) if args.weights else OcclusionRemover.from_registry()
    embedder = DlibResNetEmbedder()
    tau = embedder.default_threshold
    views = data.face_views("heldout")
    photos = data.occluder_photos("heldout")
    rng = np.random.default_rng(args.seed)
    pairs = _pairs(views, args.pairs, rng)
    refs = {}

    def embed(image, box):
        return embedder.embed(image, BoundingBox(*box))

    rows = ("clean", "occluded", "D_m iterated, max 1", f"D_m iterated, max {args.max_steps}", "D_m + R_m (two-step)")
    correct = {r: [] for r in rows}
    moves = {r: [] for r in rows[2:]}
    dir_true, dir_pred, ratio_err = [], [], []
    for i, j, same in tqdm(pairs, desc="pairs", disable=args.quiet, file=sys.stderr, dynamic_ncols=True):
        if i not in refs:
            refs[i] = embed(views[i].image, views[i].box)
        ref, view = refs[i], views[j]
        side = occ.OCCLUDER_SIDES[int(rng.integers(4))]
        clean, s = data.occluded_sample(view, rng, photos, direction=side, coverage=args.coverage)
        impact = float(rng.uniform(*data.IMPACT_FRACTION)) * max(1, occ.penetration(s.mask, s.box, side))

        def verify(row, emb):
            correct[row].append(bool(np.linalg.norm(emb - ref) < tau) == same)

        e_clean, e_occ = embed(clean, view.box), embed(s.image, view.box)
        verify("clean", e_clean)
        verify("occluded", e_occ)
        for image, label in ((s.image, side), (clean, "none")):
            dir_true.append(label)
            dir_pred.append(remover.direction(image)[0])
        # iterated D_m: step while it sees an occluder
        offset, current, e, n = np.zeros(2), s.image, e_occ, 0
        for step in range(args.max_steps):
            d = remover.direction(current)[0]
            if d == "none":
                break
            offset = offset + impact * np.asarray(occ.SIDE_VECTOR[d], float)
            current = occ.shifted_view(clean, s, offset)
            e, n = embed(current, view.box), n + 1
            if step == 0:
                verify(rows[2], e)
                moves[rows[2]].append(n)
        if n == 0:
            verify(rows[2], e_occ)
            moves[rows[2]].append(0)
        verify(rows[3], e)
        moves[rows[3]].append(n)
        # two-step: one predefined step, the regressed remainder in one move
        d = remover.direction(s.image)[0]
        if d == "none":
            verify(rows[4], e_occ)
            moves[rows[4]].append(0)
        else:
            unit = np.asarray(occ.SIDE_VECTOR[d], float)
            view2 = occ.shifted_view(clean, s, impact * unit)
            r = remover.ratio(s.image, view2)
            if d == side:
                target = min(1.0, occ.remaining_ratio(occ.penetration(s.mask, s.box, side), impact))
                ratio_err.append(abs(r - target))
            verify(rows[4], embed(occ.shifted_view(clean, s, (1.0 + r) * impact * unit), view.box))
            moves[rows[4]].append(2 if r * impact >= 0.5 else 1)

    dir_true, dir_pred = np.array(dir_true), np.array(dir_pred)
    result = {
        "identities": len({v.identity for v in views}), "heldout_images": len(views),
        "pairs": len(pairs), "same_pairs": sum(p[2] for p in pairs),
        "coverage": args.coverage if args.coverage is not None else list(occ.COVERAGE_RANGE),
        "threshold": tau, "max_steps": args.max_steps,
        "verification_accuracy": {r: round(float(np.mean(v)), 4) for r, v in correct.items()},
        "mean_moves": {r: round(float(np.mean(v)), 3) for r, v in moves.items()},
        "direction_accuracy": round(float((dir_true == dir_pred).mean()), 4),
        "direction_accuracy_occluded": round(float((dir_true == dir_pred)[dir_true != "none"].mean()), 4),
        "direction_samples": int(len(dir_true)),
        "ratio_mae": round(float(np.mean(ratio_err)), 4) if ratio_err else None,
        "ratio_samples": len(ratio_err),
        "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
    }
    cov = f"{args.coverage:.0%}" if args.coverage is not None else "20-60%"
    print(f"\nOcclusion-aware face verification: {result['identities']} identities, {len(views)} held-out "
          f"images, {len(pairs)} pairs ({result['same_pairs']} same), occlusion {cov} from one side, "
          f"dlib threshold {tau}")
    print(f"{'':28s} {'accuracy':>9s} {'mean moves':>11s}")
    for r in rows:
        m = result["mean_moves"].get(r)
        print(f"{r:28s} {result['verification_accuracy'][r]:9.3f} {'' if m is None else f'{m:11.2f}'}")
    print(f"D_m accuracy {result['direction_accuracy']:.3f} on {len(dir_true)} queries (occluded only: "
          f"{result['direction_accuracy_occluded']:.3f}); R_m MAE "
          f"{result['ratio_mae'] if result['ratio_mae'] is not None else float('nan'):.3f} on {len(ratio_err)} "
          f"correct-direction steps; {result['cpu_s']} s CPU")
    return result
