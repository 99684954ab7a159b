"""opendr-bench node-overhead: the benchmark's mechanics (processes, stamp matching, JSON), not its timings."""
import argparse
import json
import math
import os
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from opendr_perception.bench import cli, node_overhead  # noqa: E402
from opendr_perception.ros.node_base import _RunningStats  # noqa: E402

SMALL = ["--size", "320x240", "--frames", "6", "--rate", "20", "--dds-frames", "5"]


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_one_entry_per_node_with_latencies_matched_by_stamp(tmp_path, capsys):
    out = tmp_path / "figures.json"
    assert cli.main(["--json", str(out), "node-overhead", "--nodes", "face_detection", *SMALL,
                     "--log-dir", str(tmp_path / "logs")]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "node-overhead"
    assert [(r["node"], r["size"]) for r in report["results"]] == [("face_detection", "320x240")]
    r = report["results"][0]
    assert "error" not in r, r["error"]

    stamps = {}
    for mode in ("max", "fixed"):
        phase = r[mode]
        stamps[mode] = [m["stamp_ns"] for m in phase["messages"]]
        assert phase["published"] == 6 and len(stamps[mode]) == 6
        assert stamps[mode] == sorted(set(stamps[mode]))  # fresh, unique, increasing stamps
        latencies = [m["latency_ms"] for m in phase["messages"] if m["latency_ms"] is not None]
        assert latencies and all(0 < lat < 60_000 for lat in latencies)  # output after its own input
        assert phase["outputs"] == len(latencies) and phase["dropped"] == 6 - len(latencies)
        assert phase["unmatched_outputs"] == 0
        lat = phase["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"]
        assert math.isclose(lat["mean"], sum(latencies) / len(latencies), rel_tol=1e-9)
        assert phase["output_fps"] > 0 and phase["throughput_fps"] > 0 and phase["input_fps"] > 0
        assert phase["cpu_percent"] >= 0
        assert phase["timing_source"].startswith("per-frame")
        assert phase["model_ms"] > 0 and phase["bridge_ms"] > 0
    assert stamps["fixed"][-1] < stamps["max"][0]  # phases do not share inputs; fixed rate first
    assert r["fixed"]["messages"][-1]["latency_ms"] is not None  # the last frame is always answered

    dds = report["dds"]["320x240"]
    assert dds["received"] >= 1 and dds["image_one_way_ms"]["mean"] > 0 and dds["result_one_way_ms"]["mean"] > 0
    assert r["dds_ms"] == dds["dds_ms"] > 0
    assert math.isclose(r["overhead_ratio"], (r["bridge_ms"] + r["dds_ms"]) / r["model_ms"], rel_tol=1e-9)
    assert r["target_ratio"] is None and r["target_met"] is None  # the target is stated for 640x480 only

    for pid, returncode in ((r["process"]["pid"], r["process"]["returncode"]),
                            (dds["process"]["pid"], dds["process"]["returncode"])):
        assert returncode is not None and gone(pid)
    table = capsys.readouterr().out
    assert "face_detection" in table and "320x240" in table and "(b+D)/m" in table


def test_processes_are_stopped_when_the_run_is_interrupted(tmp_path, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(node_overhead, "_run_phase", interrupted)
    first = len(node_overhead.ManagedProcess.started)
    parser = argparse.ArgumentParser()
    node_overhead.add_arguments(parser)
    args = parser.parse_args(["--nodes", "face_detection", *SMALL])
    with pytest.raises(KeyboardInterrupt):
        node_overhead.run(args)
    started = node_overhead.ManagedProcess.started[first:]
    assert started  # the echo process had started
    assert all(not p.alive() and gone(p.pid) for p in started)


def test_per_frame_timings_are_recovered_from_the_moving_averages():
    stats = _RunningStats()
    frames = [(12.0, 0.5), (30.0, 0.9), (15.0, 0.4), (16.0, 0.6)]
    messages = []
    for i, (model, bridge) in enumerate(frames):
        stats.update(model_ms=model, bridge_ms=bridge)
        messages.append((i, 1000 + i, SimpleNamespace(model_ms=stats.get("model_ms"),
                                                      bridge_ms=stats.get("bridge_ms")), None))
    recovered = node_overhead.recover_per_frame(messages, stats.alpha)
    assert sorted(recovered) == [1001, 1002, 1003]  # the first message has no predecessor
    for i in (1, 2, 3):
        assert recovered[1000 + i] == pytest.approx(frames[i], rel=1e-9)
