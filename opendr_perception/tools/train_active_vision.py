"""Train the seed's active-vision policy with PPO (stable-baselines3) on the MuJoCo face simulator.

The seed (OpenDR D3.3 §8.11): PPO, Adam lr 3e-4, 10M steps, 1,000-step episodes, random start
around the person, random person yaw per episode. The defaults here are the seed's except the step
count (``--steps``, default 256: a smoke run of seconds on a CPU); a real run wants a GPU
(``--device cuda``) and days of simulation (each step renders a 640x480 frame, ~15 ms, and a STAY
runs BlazeFace + dlib, ~60 ms).

Writes ``<out>.safetensors`` + ``<out>.json`` (the plain :class:`ActiveVisionNet`, loadable without
stable-baselines3 by :func:`opendr_perception.models.active_vision_policy.load_policy`).

Example::

    opendr-train-active-vision --steps 10000000 --n-steps 2048 --device cuda --out models/active_vision
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def train(args) -> dict:
    import torch
    from stable_baselines3 import PPO

    from opendr_perception.models.active_vision_policy import (SeedActorCriticPolicy, count_parameters,
                                                                net_from_sb3, save_policy)
    from opendr_perception.sim.active_vision_env import ActiveVisionEnv

    if args.steps < 1 or args.n_steps < 2 or args.batch_size < 2:
        raise ValueError("--steps must be >= 1, --n-steps and --batch-size >= 2")
    torch.set_num_threads(max(1, args.threads))
    env = ActiveVisionEnv(start_distance=(args.min_distance, args.max_distance), max_steps=args.episode_steps)
    model = PPO(SeedActorCriticPolicy, env, learning_rate=args.lr, n_steps=args.n_steps,
                batch_size=min(args.batch_size, args.n_steps), n_epochs=args.epochs, seed=args.seed,
                device=args.device, verbose=0)
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=args.steps, unit="step", desc="PPO", file=sys.stderr)
        except ImportError:
            print(f"training {args.steps} steps (no tqdm: no progress bar)", file=sys.stderr)
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
    seconds = time.perf_counter() - start
    net = net_from_sb3(model.policy)
    metadata = {
        "algorithm": "PPO (stable-baselines3)", "steps": len(rewards), "requested_steps": args.steps,
        "episode_steps": args.episode_steps, "n_steps": args.n_steps, "batch_size": model.batch_size,
        "epochs": args.epochs, "learning_rate": args.lr, "seed": args.seed, "device": str(model.device),
        "start_distance_m": [args.min_distance, args.max_distance], "train_seconds": round(seconds, 2),
        "mean_reward": sum(rewards) / max(1, len(rewards)),
        "note": "smoke-trained" if args.steps < 100_000 else "trained",
    }
    weights, info = save_policy(net, args.out, metadata)
    env.close()
    result = {"weights": str(weights), "json": str(info), "parameters": count_parameters(net), **metadata}
    print(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
