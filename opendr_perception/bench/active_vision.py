"""DRL active vision (OpenDR D3.3 §8.11, Tables I-II): static vs rule-based vs a policy, and control FPS.

On :class:`~opendr_perception.sim.active_vision_env.ActiveVisionEnv` (MuJoCo room, one person with a
real face, camera drone). For every start distance x start angle (from the direction the person
faces; 0 = in front) and episode (identity and person yaw drawn from the episode seed; the same
starts for every agent), each agent acts for ``--horizon`` steps; the figure is the FRC of the
correct identity at the FINAL pose (BlazeFace + dlib on the full-resolution frame; 0 = not
recognised or wrong), averaged per cell:

* static: does not move (the FRC at the start pose);
* rule: :class:`~opendr_perception.models.active_vision_policy.RuleBasedAgent` (detector every frame,
  centre the face box, forward while the FRC rises);
* policy: the seed's network (:class:`ActiveVisionNet`, argmax of the softmax) from ``--policy``
  (a registered name such as ``active_vision_policy``, or the ``.safetensors`` + ``.json`` of
  ``opendr-train-active-vision``); without it a randomly
  initialised network, labelled "untrained". Its label says how it was trained: a smoke-trained or
  untrained policy is a harness check, not the seed's DRL result (10M PPO steps).

Control FPS: decisions per second, rendering excluded, on the same frames: the policy network on the
400x300 observation vs the rule-based agent (BlazeFace + dlib recognition) on the 640x480 frame.
The seed: 180 vs 62 FPS on an 8 GB GPU; here torch on the CPU with ``--threads``.
"""
from __future__ import annotations

import statistics
import time

NAME = "active-vision"
HELP = "active face recognition: static vs rule-based vs policy mean FRC per start distance/angle, control FPS"


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def add_arguments(parser) -> None:
    parser.add_argument("--distances", default="1,2,3,5", help="start distances in m (default 1,2,3,5; seed 1-20)")
    parser.add_argument("--angles", default="0,60,120,180,240,300",
                        help="start angles in degrees from the person's facing direction (default 0,60,...,300)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per cell (default 1)")
    parser.add_argument("--horizon", type=int, default=40, help="steps per episode (default 40; seed 1000)")
    parser.add_argument("--policy", default="",
                        help="registered policy name (e.g. active_vision_policy) or .safetensors/.json file "
                             "(default: an untrained network)")
    parser.add_argument("--agents", default="static,rule,policy", help="agents to run (default static,rule,policy)")
    parser.add_argument("--fps-frames", type=int, default=20, help="frames for the FPS measurement (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="episode seeds start here (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _policy(path: str, seed: int):
    import torch

    from opendr_perception.models.active_vision_policy import ActiveVisionNet, load_policy
    if path:
        net, info = load_policy(path)
        meta = info.get("metadata", {})
        imitation = meta.get("imitation") or {}
        label = (f"{meta.get('note', 'trained')} ({imitation.get('episodes', 0)} imitation episodes, "
                 f"{meta.get('steps', '?')} PPO steps)" if imitation else
                 f"{meta.get('note', 'trained')} ({meta.get('steps', '?')} PPO steps)")
        return net, label
    torch.manual_seed(seed)
    return ActiveVisionNet().eval(), "untrained (random init)"


def _episode(env, agent: str, distance: float, angle: float, seed: int, horizon: int, net, rule) -> float:
    obs, _ = env.reset(seed=seed, options={"distance": distance, "angle_deg": angle})
    if agent == "rule":
        rule.reset()
    for _ in range(horizon if agent != "static" else 0):
        action = rule.act(env.frame_bgr) if agent == "rule" else net.act(obs)
        obs, *_ = env.step(action)
    return env.recognise(env.frame_bgr)[0]


def run(args) -> dict:
    import torch

    from opendr_perception.models.active_vision_policy import RuleBasedAgent, decision_fps
    from opendr_perception.sim.active_vision_env import ActiveVisionEnv, perception

    distances, angles = _floats(args.distances), _floats(args.angles)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = set(agents) - {"static", "rule", "policy"}
    if unknown or not agents:
        raise ValueError(f"--agents: unknown {sorted(unknown)} (use static, rule, policy)")
    if args.episodes < 1 or args.horizon < 0 or not distances or not angles:
        raise ValueError("need --episodes >= 1, --horizon >= 0 and at least one distance and angle")
    torch.set_num_threads(max(1, args.threads))
    net, label = _policy(args.policy, args.seed)
    detector, recognizer = perception()
    rule = RuleBasedAgent(detector, recognizer)
    env = ActiveVisionEnv(start_distance=(min(distances), max(distances)), max_steps=max(1, args.horizon))

    table: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    for agent in agents:
        rows = {}
        for distance in distances:
            row = []
            for angle in angles:
                frcs = [_episode(env, agent, distance, angle, args.seed + e, args.horizon, net, rule)
                        for e in range(args.episodes)]
                row.append(statistics.fmean(frcs))
            rows[f"{distance:g}"] = row
        table[agent] = rows
    eval_seconds = time.perf_counter() - start

    # control FPS on the same frames (frontal-ish starts at 1.5-3 m, so the rule agent recognises)
    frames_bgr, observations = [], []
    for i in range(max(1, args.fps_frames)):
        obs, _ = env.reset(seed=args.seed + i, options={"distance": 1.5 + 1.5 * (i % 4) / 3, "angle_deg": 15 * (i % 3)})
        frames_bgr.append(env.frame_bgr)
        observations.append(obs)
    net.act(observations[0])  # warm-up
    rule.reset()
    rule.act(frames_bgr[0])
    fps_policy = decision_fps(net.act, observations, repeats=2)

    def rule_decide(frame):
        rule.reset()  # every frame a fresh decision (no latched STAY)
        return rule.act(frame)

    fps_rule = decision_fps(rule_decide, frames_bgr, repeats=2)
    env.close()

    names = {"static": "Static", "rule": "Rule", "policy": f"Policy [{label}]"}
    print(f"mean FRC at the final pose ({args.episodes} episode(s) per cell, horizon {args.horizon} steps, "
          f"angles {', '.join(f'{a:g}' for a in angles)} deg)")
    for agent in agents:
        print(f"  {names[agent]}")
        for distance, row in table[agent].items():
            print(f"    {distance:>4} m: " + " ".join(f"{v:.2f}" for v in row)
                  + f"   (mean {statistics.fmean(row):.2f})")
    print(f"control FPS (rendering excluded, {len(frames_bgr)} frames x 2, torch threads {args.threads}): "
          f"policy {fps_policy:.1f} | rule-based {fps_rule:.1f} | ratio {fps_policy / fps_rule:.2f}")
    print(f"evaluation took {eval_seconds:.1f} s")
    return {
        "distances_m": distances, "angles_deg": angles, "episodes": args.episodes, "horizon": args.horizon,
        "policy_label": label, "mean_frc": table,
        "fps": {"policy": fps_policy, "rule": fps_rule, "ratio": fps_policy / fps_rule, "threads": args.threads,
                "device": "cpu"},
        "eval_seconds": eval_seconds,
    }
