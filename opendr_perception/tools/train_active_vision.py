"""Train the seed's active-vision policy on the MuJoCo face simulator: an optional imitation warm
start, then PPO (stable-baselines3).

The seed (OpenDR D3.3 §8.11): PPO, Adam lr 3e-4, 10M steps, 1,000-step episodes, random start
around the person, random person yaw per episode. 10M steps at 400x300 are not CPU-feasible (each
step renders a 640x480 frame, ~15 ms, a STAY runs BlazeFace + dlib, ~60 ms, and a PPO update of the
14.2M-parameter network costs ~7 ms per sample and epoch), so a CPU run starts from an imitation of
the rule-based baseline:

1. ``--imitate-episodes N``: roll out :class:`RuleBasedAgent` (the teacher) in the env for N
   episodes (each at most ``--imitate-steps`` steps, ended early once the teacher has STAYed
   ``--imitate-stays`` times in a row: it settled, or sees no face; the repeated STAY frames weight
   "stay here" against the FORWARD labels the same view got on the way in), record its
   (observation, action) pairs, and behaviour-clone the seed network's ACTOR on them with
   cross-entropy (Adam ``--lr``, ``--bc-epochs``, minibatch ``--batch-size``). The last
   ``--bc-val`` share of the episodes is held out: its accuracy is reported. The critic is left
   as initialised (PPO fits it).
2. ``--steps``: PPO fine-tuning from those weights (``0``: ship the cloned network).

The teacher is stateful (it remembers the best FRC and backs up to it) while the network sees one
frame, so the clone can only learn the frame-to-action part of the rule ("face small and centred:
forward; off-centre: arc; no face: stay").

Writes ``<out>.safetensors`` + ``<out>.json`` (the plain :class:`ActiveVisionNet`, loadable without
stable-baselines3 by :func:`opendr_perception.models.active_vision_policy.load_policy`; ``--half``
stores the weights as float16).

Examples (the first made the shipped ``active_vision_policy``, see its card)::

    opendr-train-active-vision --imitate-episodes 240 --imitate-stays 8 --bc-epochs 5 --steps 768 \\
        --n-steps 128 --episode-steps 200 --room-sizes 8,12,18 --min-angle -90 --max-angle 90 --half \\
        --out models/weights/active_vision_policy
    opendr-train-active-vision --steps 10000000 --n-steps 2048 --device cuda --out active_vision
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opendr-train-active-vision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="active_vision_policy",
                   help="output path without extension (default active_vision_policy)")
    p.add_argument("--steps", type=int, default=256, help="PPO environment steps (seed: 10,000,000; default 256)")
    p.add_argument("--episode-steps", type=int, default=1000, help="episode length (seed: 1000)")
    p.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per update (SB3 default 2048)")
    p.add_argument("--batch-size", type=int, default=64, help="PPO minibatch size (SB3 default 64)")
    p.add_argument("--epochs", type=int, default=10, help="PPO epochs per update (SB3 default 10)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (seed: 3e-4)")
    p.add_argument("--min-distance", type=float, default=1.0, help="start distance low (m, default 1)")
    p.add_argument("--max-distance", type=float, default=5.0, help="start distance high (m, default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--room-sizes", default="",
                   help="comma-separated room sides (m) to train in, one env each, episodes spread over them; "
                        "the start distance is capped at side/2 - 1 (default: one room, 2 x max distance + 2)")
    p.add_argument("--min-angle", type=float, default=-180.0,
                   help="start angle low (deg from the person's facing direction, default -180)")
    p.add_argument("--max-angle", type=float, default=180.0, help="start angle high (deg, default 180)")
    p.add_argument("--imitate-episodes", type=int, default=0,
                   help="episodes of the rule-based teacher to behaviour-clone before PPO (default 0: none)")
    p.add_argument("--imitate-steps", type=int, default=80, help="steps at most per imitation episode (default 80)")
    p.add_argument("--imitate-stays", type=int, default=3,
                   help="end an imitation episode after this many STAYs in a row (default 3)")
    p.add_argument("--bc-epochs", type=int, default=8, help="behaviour-cloning epochs (default 8)")
    p.add_argument("--bc-val", type=float, default=0.1, help="share of imitation episodes held out (default 0.1)")
    p.add_argument("--save-imitation", default="",
                   help="also write the cloned network (before PPO) to this path without extension")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _bar(args, total: int, desc: str, unit: str):
    if args.no_progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"{desc}: {total} {unit}s (no tqdm: no progress bar)", file=sys.stderr)
        return None
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)


def collect_demonstrations(envs, teacher, episodes: int, max_steps: int, stays: int, seed: int, bar=None):
    """Roll out ``teacher`` (a :class:`RuleBasedAgent`) for ``episodes`` episodes (env seeds ``seed``,
    ``seed + 1``, ...; episode i in ``envs[i % len(envs)]``):
    ``(observations uint8 (N, H, W, 3), actions (N,), episode index (N,))``."""
    import numpy as np

    from opendr_perception.models.active_vision_policy import STAY

    observations, actions, index = [], [], []
    for episode in range(episodes):
        env = envs[episode % len(envs)]
        obs, _ = env.reset(seed=seed + episode)
        teacher.reset()
        in_row = 0
        for _ in range(max_steps):
            action = teacher.act(env.frame_bgr)
            observations.append(obs)
            actions.append(action)
            index.append(episode)
            in_row = in_row + 1 if action == STAY else 0
            if in_row >= stays:
                break
            obs, *_ = env.step(action)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(samples=len(actions), refresh=False)
    return np.stack(observations), np.asarray(actions, dtype=np.int64), np.asarray(index)


def behaviour_clone(net, observations, actions, epochs: int, batch_size: int, lr: float, seed: int,
                    bar=None) -> list[float]:
    """Train ``net``'s trunk and actor (not the critic) with cross-entropy on (observation, action)
    pairs; returns the mean loss per epoch."""
    import torch
    from torch.nn import functional as F

    from opendr_perception.models.active_vision_policy import to_tensor

    generator = torch.Generator().manual_seed(seed)
    params = [p for name, p in net.named_parameters() if not name.startswith("critic.")]
    optimizer = torch.optim.Adam(params, lr=lr)
    target = torch.as_tensor(actions)
    losses = []
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(actions), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            x = to_tensor(observations[batch.numpy()])
            logits = net.actor(net.fc(net.cnn(x)))
            loss = F.cross_entropy(logits, target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            if bar is not None:
                bar.update(len(batch))
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        losses.append(total / len(actions))
    return losses


def clone_accuracy(net, observations, actions, batch_size: int = 64) -> dict:
    """Share of the teacher's actions the network's argmax reproduces, overall and per action."""
    import numpy as np
    import torch

    from opendr_perception.models.active_vision_policy import ACTION_NAMES, to_tensor

    net.eval()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(actions), batch_size):
            probs, _ = net(to_tensor(observations[start:start + batch_size]))
            predicted.append(probs.argmax(1).numpy())
    predicted = np.concatenate(predicted) if predicted else np.zeros(0, dtype=np.int64)
    result = {"samples": int(len(actions)), "accuracy": float(np.mean(predicted == actions)) if len(actions) else 0.0}
    for i, name in enumerate(ACTION_NAMES):
        mask = actions == i
        result[f"{name}_samples"] = int(mask.sum())
        if mask.any():
            result[f"{name}_recall"] = round(float(np.mean(predicted[mask] == i)), 4)
    return result


def imitate(args, envs) -> tuple:
    """Collect the teacher's demonstrations and behaviour-clone a fresh network; ``(net, metrics)``."""
    import numpy as np
    import torch

    from opendr_perception.models.active_vision_policy import ActiveVisionNet, RuleBasedAgent
    from opendr_perception.sim.active_vision_env import perception

    detector, recognizer = perception()
    teacher = RuleBasedAgent(detector, recognizer)
    start = time.perf_counter()
    bar = _bar(args, args.imitate_episodes, "teacher", "episode")
    try:
        observations, actions, index = collect_demonstrations(
            envs, teacher, args.imitate_episodes, args.imitate_steps, args.imitate_stays, args.seed, bar)
    finally:
        if bar is not None:
            bar.close()
    collect_seconds = time.perf_counter() - start
    n_val = int(round(args.imitate_episodes * args.bc_val))
    train = index < args.imitate_episodes - n_val
    torch.manual_seed(args.seed)
    net = ActiveVisionNet(envs[0].obs_size[0], envs[0].obs_size[1])
    start = time.perf_counter()
    bar = _bar(args, args.bc_epochs * int(train.sum()), "cloning", "sample")
    try:
        losses = behaviour_clone(net, observations[train], actions[train], args.bc_epochs, args.batch_size,
                                 args.lr, args.seed, bar)
    finally:
        if bar is not None:
            bar.close()
    metrics = {
        "teacher": "RuleBasedAgent (BlazeFace full range + dlib, seed's rule-based baseline)",
        "episodes": args.imitate_episodes, "max_steps": args.imitate_steps, "stop_after_stays": args.imitate_stays,
        "samples": int(len(actions)), "train_samples": int(train.sum()), "val_episodes": n_val,
        "action_counts": np.bincount(actions, minlength=5).tolist(),
        "epochs": args.bc_epochs, "loss_per_epoch": [round(v, 4) for v in losses],
        "train": clone_accuracy(net, observations[train], actions[train]),
        "val": clone_accuracy(net, observations[~train], actions[~train]),
        "collect_seconds": round(collect_seconds, 1), "clone_seconds": round(time.perf_counter() - start, 1),
    }
    print(f"imitation: {len(actions)} samples, held-out accuracy {metrics['val']['accuracy']:.3f}", file=sys.stderr)
    return net.eval(), metrics


def train(args) -> dict:
    import torch

    from opendr_perception.models.active_vision_policy import count_parameters, save_policy
    from opendr_perception.sim.active_vision_env import ActiveVisionEnv

    if args.steps < 0 or args.n_steps < 2 or args.batch_size < 2 or args.imitate_episodes < 0:
        raise ValueError("--steps and --imitate-episodes must be >= 0, --n-steps and --batch-size >= 2")
    if args.steps == 0 and args.imitate_episodes == 0:
        raise ValueError("nothing to train: give --steps and/or --imitate-episodes")
    torch.set_num_threads(max(1, args.threads))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rooms = [float(v) for v in args.room_sizes.split(",") if v.strip()] or [None]
    envs = [ActiveVisionEnv(start_distance=(args.min_distance,
                                            args.max_distance if room is None else min(args.max_distance, room / 2 - 1)),
                            start_angle_deg=(args.min_angle, args.max_angle), room_size=room,
                            max_steps=args.episode_steps) for room in rooms]
    imitation, cloned = None, None
    if args.imitate_episodes:
        cloned, imitation = imitate(args, envs)
        if args.save_imitation:
            save_policy(cloned, args.save_imitation, {"algorithm": "imitation of the rule-based agent",
                                                      "imitation": imitation, "steps": 0, "note": "imitation only"},
                        dtype=torch.float16 if args.half else torch.float32)
    metadata = {"algorithm": ("imitation of the rule-based agent" if imitation else "")
                + (" + " if imitation and args.steps else "") + ("PPO (stable-baselines3)" if args.steps else ""),
                "imitation": imitation}
    net = cloned
    if args.steps:
        net, ppo = _ppo(args, envs, cloned)
        metadata.update(ppo)
    metadata.update({
        "steps": metadata.get("steps", 0), "episode_steps": args.episode_steps, "learning_rate": args.lr,
        "seed": args.seed, "start_distance_m": [args.min_distance, args.max_distance],
        "start_angle_deg": [args.min_angle, args.max_angle],
        "room_sizes_m": [env.room_size for env in envs],
        "wall_seconds": round(time.perf_counter() - wall0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
        "torch_threads": max(1, args.threads),
        "note": ("smoke-trained" if args.steps < 100_000 and not imitation else
                 "imitation + short PPO (CPU)" if imitation else "trained"),
    })
    weights, info = save_policy(net, args.out, metadata, dtype=torch.float16 if args.half else torch.float32)
    for env in envs:
        env.close()
    result = {"weights": str(weights), "json": str(info), "parameters": count_parameters(net), **metadata}
    print(json.dumps(result, indent=2))
    return result


def _ppo(args, envs, cloned) -> tuple:
    """PPO on ``envs`` (one vectorised env each; from the ``cloned`` network's weights when given);
    ``(net, metadata)``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from opendr_perception.models.active_vision_policy import SeedActorCriticPolicy, net_from_sb3, net_to_sb3

    env = envs[0] if len(envs) == 1 else DummyVecEnv([lambda e=e: e for e in envs])
    model = PPO(SeedActorCriticPolicy, env, learning_rate=args.lr, n_steps=args.n_steps,
                batch_size=min(args.batch_size, args.n_steps), n_epochs=args.epochs, seed=args.seed,
                device=args.device, verbose=0)
    if cloned is not None:
        net_to_sb3(cloned, model.policy)
    bar = _bar(args, args.steps, "PPO", "step")
    start = time.perf_counter()
    rewards = []
    from stable_baselines3.common.callbacks import BaseCallback

    class _Progress(BaseCallback):
        def _on_step(self) -> bool:
            rewards.extend(float(r) for r in self.locals["rewards"])
            if bar is not None:
                bar.update(len(self.locals["rewards"]))
                bar.set_postfix(mean_reward=f"{sum(rewards) / len(rewards):.3f}", refresh=False)
            return True

    try:
        model.learn(total_timesteps=args.steps, callback=_Progress())
    finally:
        if bar is not None:
            bar.close()
    return net_from_sb3(model.policy), {
        "steps": len(rewards), "requested_steps": args.steps, "n_steps": args.n_steps,
        "batch_size": model.batch_size, "epochs": args.epochs, "device": str(model.device),
        "train_seconds": round(time.perf_counter() - start, 2),
        "mean_reward": sum(rewards) / max(1, len(rewards)),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
