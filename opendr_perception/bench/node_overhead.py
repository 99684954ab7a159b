"""What a node costs on top of its model: end-to-end latency, fps, drops, CPU, bridge and DDS time.

In the spirit of NVIDIA's ros2_benchmark. Each node runs as its own process
(``publish_performance:=true``, ``publish_annotated:=false``, everything under the
``/opendr_bench`` namespace) and is measured alone, one node after the other:

* warm-up: frames until the first output, then a few more one by one, not counted;
* ``fixed``: ``--frames`` frames at ``--rate`` Hz (a camera);
* ``max``: ``--frames`` frames published back to back (as fast as this process can).

The fixed-rate phase comes first on purpose: a burst of large frames changes the
state of the receiving process's allocator (glibc stops returning the large
buffers to the kernel), after which large images arrive markedly faster (1080p:
~9 -> ~3 ms one way on the development machine); a node fed by a camera never
sees such a burst, so its camera-rate figures are taken before it.

Frames are a real-photo sequence (the ``people`` sample: astronaut, Grace Hopper,
cameraman, two people, an empty scene) composed at ``--size``; every frame gets a
fresh, unique header stamp (wall clock) just before it is published. Outputs are
matched to inputs by header stamp: latency = output receive time - input stamp
(same machine, same clock); inputs without an output are reported as dropped (the
node's depth-1 input skips frames by design when the model is slower than the
input); output fps = (outputs - 1) / (last - first output receive time), the rate
of the output stream (throughput_fps in the JSON: outputs / (last output - first
input stamp)); input fps = what this process published. At max rate the burst of
frames is far faster than any model, so the node answers only a few of them: its
output fps there is its saturated rate, measured on few outputs. CPU % =
the node process's CPU time (all threads: the kernel's per-process CPU clock,
clock_getcpuclockid, in ns; else psutil or /proc/<pid>/stat utime+stime, whose
10 ms ticks are too coarse for a max-rate burst) over [first publish, last
output], in % of one core.

model_ms and bridge_ms come from the node's ``~/performance`` messages, which
carry exponential moving averages; the per-frame values are recovered exactly
from consecutive messages (x_k = e_(k-1) + (e_k - e_(k-1)) / alpha, alpha being
the node's smoothing factor) and averaged over the fixed-rate frames.

dds_ms is measured with an echo process (``python -m
opendr_perception.bench.node_overhead --echo``): an rclpy subscriber with the
node's camera QoS gets the same frames at the same size with the node's history
(warm-up, then ``--dds-frames`` at ``--rate``, before any burst); it
reports its receive time - stamp (image one way: serialisation, shared-memory
transport, rclpy's conversion to a Python message, executor wake-up) and answers
with a small stamped message whose receive time here gives the way back (a small
result message). dds_ms = image one way + result one way (means). bridge_ms is the
node's own figure: image message -> array, and building and publishing the
outputs. The overhead ratio is (bridge_ms + dds_ms) / model_ms; the target (issue)
is <= 10% at 640x480, reported, never tuned for.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

NAME = "node-overhead"
HELP = ("per-node end-to-end latency, fps, dropped frames and CPU at max and fixed rate, and the "
        "(bridge + DDS) / model overhead ratio")

NAMESPACE = "/opendr_bench"
INPUT_TOPIC = f"{NAMESPACE}/image"
ECHO_TOPIC = f"{NAMESPACE}/echo"
TARGET_RATIO = 0.10
TARGET_SIZE = (640, 480)
#: node executable -> (output topic, message module, message class, default frame size)
NODES = {
    "face_detection": ("faces", "vision_msgs.msg", "Detection2DArray", (640, 480)),
    "pose_estimation": ("poses", "opendr_interfaces.msg", "HumanPose2DArray", (640, 480)),
    "high_resolution_pose_estimation": ("poses", "opendr_interfaces.msg", "HumanPose2DArray", (1920, 1080)),
}
DEFAULT_NODES = "face_detection,pose_estimation"
WARMUP_FRAMES = 3
PHASES = ("fixed", "max")  # fixed first: see the module documentation
QUIET_SECONDS = 2.0     # a phase ends when the last frame's output came, or nothing came for this long
PHASE_CAP_SECONDS = 60.0
STOP_TIMEOUT = 10.0


# ------------------------------------------------------------------------------------
# Arguments
# ------------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)x(\d+)\s*", text)
    if not match or int(match.group(1)) < 16 or int(match.group(2)) < 16:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, not '{text}'")
    return int(match.group(1)), int(match.group(2))


def _sizes(text: str) -> list[tuple[int, int]]:
    return [_size(t) for t in text.split(",") if t.strip()]


def size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", default=DEFAULT_NODES,
                        help=f"comma-separated nodes among {', '.join(NODES)} (default: %(default)s)")
    parser.add_argument("--size", type=_sizes, default=None, metavar="WxH[,WxH...]",
                        help="frame size(s) for every node (default: 640x480, 1920x1080 for "
                             "high_resolution_pose_estimation)")
    parser.add_argument("--frames", type=int, default=60, help="frames per phase (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="rate of the fixed-rate phase, Hz (default: 10)")
    parser.add_argument("--dds-frames", type=int, default=30,
                        help="frames sent to the echo process per size, at --rate (default: %(default)s)")
    parser.add_argument("--device", default=None, help="device parameter of the nodes (default: the node's)")
    parser.add_argument("--startup-timeout", type=float, default=60.0,
                        help="seconds a node may take to start and answer its first frame (default: 60)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep the started processes' logs here (default: a temporary directory)")


# ------------------------------------------------------------------------------------
# Frames
# ------------------------------------------------------------------------------------

def scene_frames(size: tuple[int, int], frames_per_scene: int = 4) -> list[np.ndarray]:
    """The ``people`` sample sequence at any size (see :func:`opendr_perception.tools.sample_data.people`)."""
    from ..tools import sample_data
    return list(sample_data.people(frames_per_scene, size))


# ------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------

_CPU_CLOCKS: dict[int, Optional[int]] = {}


def _cpu_clock(pid: int) -> Optional[int]:
    """The kernel's CPU-time clock of process ``pid`` (clock_getcpuclockid), None where there is none."""
    if pid not in _CPU_CLOCKS:
        clock = None
        try:
            import ctypes
            import ctypes.util
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            clock_id = ctypes.c_int()
            if libc.clock_getcpuclockid(int(pid), ctypes.byref(clock_id)) == 0:
                time.clock_gettime_ns(clock_id.value)  # usable?
                clock = clock_id.value
        except (OSError, AttributeError, ValueError):
            clock = None
        _CPU_CLOCKS[pid] = clock
    return _CPU_CLOCKS[pid]


def cpu_source() -> str:
    if _cpu_clock(os.getpid()) is not None:
        return "clock_getcpuclockid (kernel CPU time of all threads, ns)"
    try:
        import psutil  # noqa: F401
        return "psutil cpu_times user+system"
    except ImportError:
        return "/proc/<pid>/stat utime+stime (clock ticks)"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads).

    The kernel's per-process CPU clock where it exists (nanoseconds: /proc/<pid>/stat counts
    10 ms ticks, too coarse for a burst of a few tens of ms), else psutil, else /proc/<pid>/stat.
    """
    clock = _cpu_clock(pid)
    if clock is not None:
        return time.clock_gettime_ns(clock) / 1e9
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()  # fields[0] is field 3 (state) of proc(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def executable(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        raise SystemExit(f"opendr-bench: executable '{name}' is not installed (run scripts/setup.sh)")
    return found


class ManagedProcess:
    """A process started for the benchmark; :meth:`stop` sends SIGINT, then kills after a timeout."""

    started: list["ManagedProcess"] = []  # every instance, for tests and for the last-resort cleanup

    def __init__(self, name: str, cmd: list[str], log_dir: Path):
        self.name = name
        self.cmd = cmd
        self.log_path = Path(log_dir) / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        try:
            self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy())
        except BaseException:
            self._log.close()
            raise
        self.pid = self.popen.pid
        ManagedProcess.started.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        if self.alive():
            try:
                self.popen.send_signal(signal.SIGINT)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            except BaseException:
                self.popen.kill()
                self.popen.wait()
                raise
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


def start_node(name: str, log_dir: Path, device: Optional[str]) -> ManagedProcess:
    params = {"publish_performance": "true", "publish_annotated": "false"}
    if device:
        params["device"] = device
    cmd = [executable(name), "--ros-args", "-r", f"__ns:={NAMESPACE}"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    return ManagedProcess(name, cmd, log_dir)


def start_echo(log_dir: Path) -> ManagedProcess:
    cmd = [sys.executable, "-m", "opendr_perception.bench.node_overhead", "--echo", INPUT_TOPIC, ECHO_TOPIC]
    return ManagedProcess("echo", cmd, log_dir)


# ------------------------------------------------------------------------------------
# The benchmark's own ROS side
# ------------------------------------------------------------------------------------

def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Received:
    """What one subscription received: (receive wall ns, header stamp ns, message, node CPU s or None)."""

    def __init__(self, cpu_of: Optional[Callable[[], float]] = None, keep_messages: bool = False):
        self.items: list[tuple[int, int, object, Optional[float]]] = []
        self.cpu_of, self.keep = cpu_of, keep_messages
        self.last_mono = 0.0

    def __call__(self, msg) -> None:
        now = time.time_ns()
        cpu = None
        if self.cpu_of is not None:
            try:
                cpu = self.cpu_of()
            except (OSError, ValueError, ProcessLookupError):
                cpu = None
        self.items.append((now, stamp_ns(msg.header), msg if self.keep else None, cpu))
        self.last_mono = time.monotonic()

    def stamps(self) -> set[int]:
        return {s for _, s, _, _ in list(self.items)}


class Session:
    """An rclpy node with a private context, spun in a background thread."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self._last_stamp = 0

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down under the executor at the end
            pass

    def fresh_stamp(self) -> int:
        """A wall-clock stamp, strictly larger than every stamp given before."""
        stamp = max(time.time_ns(), self._last_stamp + 1)
        self._last_stamp = stamp
        return stamp

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=2.0)
        except Exception:  # noqa: BLE001
            pass
        self.thread.join(timeout=5.0)
        try:
            self.node.destroy_node()
        finally:
            self.context.try_shutdown()


def _messages(frames: list[np.ndarray]) -> list:
    from ..ros.bridge import numpy_to_image
    messages = []
    for frame in frames:
        msg = numpy_to_image(frame, "bgr8")
        msg.header.frame_id = "camera"
        messages.append(msg)
    return messages


def _publish(session: Session, publisher, msg) -> int:
    stamp = session.fresh_stamp()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    publisher.publish(msg)
    return stamp


def _wait(condition: Callable[[], bool], timeout: float, what: str, process: Optional[ManagedProcess] = None,
          poll: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None:
            process.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}"
                               + (f"; log of {process.name}:\n{process.log_tail()}" if process else ""))
        time.sleep(poll)


def _warm_up(session: Session, publisher, messages: list, received: Received, process: ManagedProcess,
             timeout: float) -> None:
    """Frames until the first answer (the node may still be loading its model), then a few more, one by one."""
    deadline = time.monotonic() + timeout
    i = 0
    while not received.items:
        process.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer from {process.name} within {timeout:.0f} s:\n{process.log_tail()}")
        _publish(session, publisher, messages[i % len(messages)])
        i += 1
        next_try = time.monotonic() + 0.5
        while not received.items and time.monotonic() < next_try:
            time.sleep(0.005)
    for _ in range(WARMUP_FRAMES):
        stamp = _publish(session, publisher, messages[i % len(messages)])
        i += 1
        _wait(lambda: stamp in received.stamps(), timeout, f"a warm-up answer of {process.name}", process)


def _settle(received: Received, last_stamp: int, last_publish: float, process: ManagedProcess) -> None:
    """Wait for the output of the last frame, or until nothing came for QUIET_SECONDS."""
    started = time.monotonic()
    while last_stamp not in received.stamps():
        process.check_alive()
        now = time.monotonic()
        if now - max(last_publish, received.last_mono) > QUIET_SECONDS or now - started > PHASE_CAP_SECONDS:
            return
        time.sleep(0.002)
    time.sleep(0.05)  # the node's performance message for the last frame follows its output


def _distribution(values: list[float]) -> dict:
    if not values:
        return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan"), "min": float("nan"),
                "max": float("nan")}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "min": float(a.min()), "max": float(a.max())}


def _run_phase(mode: str, session: Session, publisher, messages: list, received: Received,
               process: ManagedProcess, frames: int, rate: float) -> dict:
    """Publish ``frames`` frames (back to back, or at ``rate``) and match the outputs by stamp."""
    first_item = len(received.items)
    cpu0 = cpu_seconds(process.pid)
    stamps, publish_times = [], []
    # While this thread publishes back to back, the receiving thread must get the GIL at once, or the
    # receive times of outputs that arrive during the burst are late by up to the 5 ms switch interval.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.0002))
    try:
        start = time.monotonic()
        for i in range(frames):
            if mode == "fixed":
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            stamps.append(_publish(session, publisher, messages[i % len(messages)]))
            publish_times.append(time.monotonic())
            if i % 10 == 9:
                process.check_alive()
    finally:
        sys.setswitchinterval(switch_interval)
    end_publish = time.monotonic()
    _settle(received, stamps[-1], end_publish, process)
    sent = set(stamps)
    outputs = [item for item in received.items[first_item:] if item[1] in sent]
    unmatched = len(received.items[first_item:]) - len(outputs)
    latency = {s: (recv - s) / 1e6 for recv, s, _, _ in outputs}
    recv_times = [recv for recv, _, _, _ in outputs]
    last_cpu = next((cpu for _, _, _, cpu in reversed(outputs) if cpu is not None), None)
    cpu_percent = float("nan")
    if outputs and last_cpu is not None:
        wall = (recv_times[-1] - stamps[0]) / 1e9
        if wall > 0:
            cpu_percent = 100.0 * (last_cpu - cpu0) / wall
    publish_span = publish_times[-1] - publish_times[0]
    # throughput: outputs over [first input stamp, last output]; output fps: the rate of the output
    # stream itself, (outputs - 1) over [first, last output] (the throughput when there is one output)
    throughput_fps = len(outputs) / ((recv_times[-1] - stamps[0]) / 1e9) if outputs else 0.0
    output_fps = ((len(outputs) - 1) / ((recv_times[-1] - recv_times[0]) / 1e9)
                  if len(outputs) > 1 and recv_times[-1] > recv_times[0] else throughput_fps)
    dropped = [s for s in stamps if s not in latency]
    return {
        "mode": mode,
        "rate_hz": rate if mode == "fixed" else None,
        "published": frames,
        "input_fps": (frames - 1) / publish_span if frames > 1 and publish_span > 0 else float("nan"),
        "outputs": len(outputs),
        "output_fps": output_fps,
        "throughput_fps": throughput_fps,
        "dropped": len(dropped),
        "dropped_fraction": len(dropped) / frames,
        "unmatched_outputs": unmatched,
        "latency_ms": _distribution(list(latency.values())),
        "cpu_percent": cpu_percent,
        "messages": [{"stamp_ns": s, "latency_ms": latency.get(s)} for s in stamps],
    }


def recover_per_frame(perf: list, alpha: float) -> dict[int, tuple[float, float]]:
    """Per-frame (model_ms, bridge_ms) by stamp from consecutive moving-average messages.

    e_k = e_(k-1) + alpha (x_k - e_(k-1))  =>  x_k = e_(k-1) + (e_k - e_(k-1)) / alpha.
    The first message has no predecessor and is left out.
    """
    out = {}
    for (_, _, prev, _), (_, stamp, msg, _) in zip(perf, perf[1:]):
        model = prev.model_ms + (msg.model_ms - prev.model_ms) / alpha
        bridge = prev.bridge_ms + (msg.bridge_ms - prev.bridge_ms) / alpha
        out[stamp] = (float(model), float(bridge))
    return out


def _node_timings(phase: dict, per_frame: dict, perf_by_stamp: dict) -> tuple[dict, str]:
    stamps = [m["stamp_ns"] for m in phase["messages"] if m["latency_ms"] is not None]
    recovered = [per_frame[s] for s in stamps if s in per_frame]
    if recovered and len(recovered) == len(stamps) and all(m > 0 and b >= 0 for m, b in recovered):
        values, source = recovered, "per-frame (recovered from the moving averages)"
    else:  # a performance message was lost: the averages as published
        values = [(perf_by_stamp[s].model_ms, perf_by_stamp[s].bridge_ms) for s in stamps if s in perf_by_stamp]
        source = "moving averages as published (a performance message was missing)"
    return ({"model_ms": statistics.mean(v[0] for v in values) if values else float("nan"),
             "bridge_ms": statistics.mean(v[1] for v in values) if values else float("nan"),
             "frames": len(values)}, source)


def measure_node(name: str, size: tuple[int, int], messages: list, args, log_dir: Path) -> dict:
    import importlib

    from opendr_interfaces.msg import NodePerformance
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ..ros.node_base import _RunningStats, camera_qos

    topic, module, cls, _ = NODES[name]
    output_type = getattr(importlib.import_module(module), cls)
    output_topic, perf_topic = f"{NAMESPACE}/{topic}", f"{NAMESPACE}/{name}/performance"
    entry: dict = {"node": name, "size": size_name(size), "output_topic": output_topic}
    process = session = None
    try:
        process = start_node(name, log_dir, args.device)
        entry["process"] = {"pid": process.pid}
        session = Session(f"opendr_bench_{os.getpid()}")
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        outputs = Received(cpu_of=lambda: cpu_seconds(process.pid))
        perf = Received(keep_messages=True)
        session.node.create_subscription(output_type, output_topic, outputs, reliable)
        session.node.create_subscription(NodePerformance, perf_topic, perf, reliable)
        publisher = session.node.create_publisher(Image, INPUT_TOPIC, camera_qos())
        _wait(lambda: publisher.get_subscription_count() >= 1 and session.node.count_publishers(output_topic) >= 1
              and session.node.count_publishers(perf_topic) >= 1, args.startup_timeout,
              f"{name} to start", process)
        time.sleep(0.5)  # let the node's writers match our readers too
        _warm_up(session, publisher, messages, outputs, process, args.startup_timeout)
        phases = {mode: _run_phase(mode, session, publisher, messages, outputs, process, args.frames, args.rate)
                  for mode in PHASES}
        _wait(lambda: perf.stamps() >= outputs.stamps(), 2.0, "the last performance messages", process)
        perf_items = list(perf.items)  # receive order = publication order (reliable, one writer)
        per_frame = recover_per_frame(perf_items, _RunningStats().alpha)
        perf_by_stamp = {s: m for _, s, m, _ in perf_items}
        for mode, phase in phases.items():
            timings, source = _node_timings(phase, per_frame, perf_by_stamp)
            phase.update(timings, timing_source=source)
        entry.update(phases)
        entry["model_ms"] = phases["fixed"]["model_ms"]
        entry["bridge_ms"] = phases["fixed"]["bridge_ms"]
        entry["errors_reported"] = int(perf_items[-1][2].errors) if perf_items else None
    except Exception as e:  # noqa: BLE001 - one node failing must not hide the others' figures
        entry["error"] = f"{type(e).__name__}: {e}"
    finally:
        if session is not None:
            session.close()
        if process is not None:
            entry.setdefault("process", {})["returncode"] = process.stop()
    return entry


def measure_dds(size: tuple[int, int], messages: list, args, log_dir: Path) -> dict:
    """One-way image and result transport times through the echo process, at ``args.rate``."""
    from opendr_interfaces.msg import NodePerformance
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ..ros.node_base import camera_qos

    entry: dict = {"size": size_name(size)}
    process = session = None
    try:
        process = start_echo(log_dir)
        entry["process"] = {"pid": process.pid}
        session = Session(f"opendr_bench_dds_{os.getpid()}")
        echoes = Received(keep_messages=True)
        session.node.create_subscription(NodePerformance, ECHO_TOPIC, echoes,
                                         QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        publisher = session.node.create_publisher(Image, INPUT_TOPIC, camera_qos())
        _wait(lambda: publisher.get_subscription_count() >= 1 and session.node.count_publishers(ECHO_TOPIC) >= 1,
              args.startup_timeout, "the echo process to start", process)
        time.sleep(0.5)
        _warm_up(session, publisher, messages, echoes, process, args.startup_timeout)
        phase = _run_phase("fixed", session, publisher, messages, echoes, process, args.dds_frames, args.rate)
        sent = {m["stamp_ns"] for m in phase["messages"]}
        image_ms, result_ms = [], []
        for recv, stamp, msg, _ in echoes.items:
            if stamp in sent:
                image_ms.append(float(msg.latency_ms))
                result_ms.append((recv - stamp) / 1e6 - float(msg.latency_ms))
        entry.update(frames=args.dds_frames, received=len(image_ms), rate_hz=args.rate,
                     image_one_way_ms=_distribution(image_ms), result_one_way_ms=_distribution(result_ms),
                     dds_ms=(statistics.mean(image_ms) + statistics.mean(result_ms)) if image_ms else float("nan"))
    except Exception as e:  # noqa: BLE001
        entry["error"] = f"{type(e).__name__}: {e}"
        entry["dds_ms"] = float("nan")
    finally:
        if session is not None:
            session.close()
        if process is not None:
            entry.setdefault("process", {})["returncode"] = process.stop()
    return entry


# ------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------

def _plan(args) -> list[tuple[str, tuple[int, int]]]:
    names = [n.strip() for n in args.nodes.split(",") if n.strip()]
    unknown = [n for n in names if n not in NODES]
    if not names or unknown:
        raise SystemExit(f"--nodes: unknown {unknown}; choose among {', '.join(NODES)}")
    if args.frames < 2 or args.dds_frames < 2:
        raise SystemExit("--frames and --dds-frames must be >= 2")
    if args.rate <= 0:
        raise SystemExit("--rate must be positive")
    return [(n, s) for n in names for s in (args.size or [NODES[n][3]])]


def run(args) -> dict:
    from ..ros.node_base import apply_fastdds_profile

    plan = _plan(args)
    load_before = list(os.getloadavg())
    apply_fastdds_profile()
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops the nodes like Ctrl-C
        previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    temporary = None
    if args.log_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="opendr-bench-")
        log_dir = Path(temporary.name)
    else:
        log_dir = Path(args.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
    first_process = len(ManagedProcess.started)
    dds, results = {}, []
    try:
        for size in dict.fromkeys(s for _, s in plan):
            frames = scene_frames(size)
            messages = _messages(frames)
            del frames
            dds[size_name(size)] = measure_dds(size, messages, args, log_dir)
            for name, node_size in plan:
                if node_size != size:
                    continue
                entry = measure_node(name, size, messages, args, log_dir)
                dds_ms = dds[size_name(size)]["dds_ms"]
                entry["dds_ms"] = dds_ms
                if "error" not in entry:
                    ratio = (entry["bridge_ms"] + dds_ms) / entry["model_ms"]
                    entry["overhead_ratio"] = ratio
                    applies = size == TARGET_SIZE
                    entry["target_ratio"] = TARGET_RATIO if applies else None
                    entry["target_met"] = bool(ratio <= TARGET_RATIO) if applies and np.isfinite(ratio) else None
                results.append(entry)
            del messages
    finally:
        for process in ManagedProcess.started[first_process:]:  # last resort: nothing outlives the run
            process.stop()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if temporary is not None:
            temporary.cleanup()
    report = {
        "benchmark": NAME,
        "settings": {
            "nodes": list(dict.fromkeys(n for n, _ in plan)), "frames": args.frames, "rate_hz": args.rate,
            "dds_frames": args.dds_frames, "warmup_frames": f"until the first answer + {WARMUP_FRAMES}",
            "frames_source": "people sample sequence (real photos) composed at the size",
            "device": args.device or "node default",
            "rmw": os.environ.get("RMW_IMPLEMENTATION", "default"),
            "fastdds_profile": Path(os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", "")).name or None,
            "cpu_source": cpu_source(),
            "cpu_count": os.cpu_count(), "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "python": platform.python_version(), "target": f"(bridge + DDS) / model <= {TARGET_RATIO:.0%} at "
                                                           f"{size_name(TARGET_SIZE)}",
        },
        "dds": dds,
        "results": results,
    }
    print_table(report)
    return report


def _raise_keyboard_interrupt(*_):
    raise KeyboardInterrupt


def _f(value, fmt: str = "7.1f") -> str:
    width = int(re.match(r"\d+", fmt).group()) if re.match(r"\d+", fmt) else 0
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-".rjust(width)
    return format(value, fmt)


def print_table(report: dict) -> None:
    s = report["settings"]
    print(f"node overhead: {s['frames']} frames per phase ({s['rate_hz']:g} Hz, then max rate), "
          f"{s['dds_frames']} echo frames, rmw {s['rmw']}, {s['cpu_count']} CPU(s), device {s['device']}, "
          f"load average {s['load_average_before'][0]:.2f} before, {s['load_average_after'][0]:.2f} after")
    header = (f"{'node':<32} {'size':>9} {'mode':>5} {'in fps':>7} {'out fps':>7} {'lat ms':>7} {'p50':>7} "
              f"{'p95':>7} {'dropped':>8} {'CPU %':>6}")
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        if "error" in r:
            print(f"{r['node']:<32} {r['size']:>9} ERROR {r['error'].splitlines()[0][:200]}")
            continue
        for mode in PHASES:
            p = r[mode]
            lat = p["latency_ms"]
            print(f"{r['node']:<32} {r['size']:>9} {mode:>5} {_f(p['input_fps'])} {_f(p['output_fps'])} "
                  f"{_f(lat['mean'])} {_f(lat['p50'])} {_f(lat['p95'])} {p['dropped']:>4}/{p['published']:<3} "
                  f"{_f(p['cpu_percent'], '6.0f')}")
    print()
    header = (f"{'node':<32} {'size':>9} {'model ms':>8} {'bridge ms':>9} {'DDS ms':>7} {'(b+D)/m':>8} "
              f"{'target':>7} {'result':>6}")
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        if "error" in r:
            continue
        target = "-" if r["target_ratio"] is None else f"<={r['target_ratio']:.0%}"
        verdict = "-" if r["target_met"] is None else ("pass" if r["target_met"] else "FAIL")
        print(f"{r['node']:<32} {r['size']:>9} {_f(r['model_ms'], '8.2f')} {_f(r['bridge_ms'], '9.2f')} "
              f"{_f(r['dds_ms'], '7.2f')} {_f(100 * r['overhead_ratio'], '7.1f')}% {target:>7} {verdict:>6}")
    for name, d in report["dds"].items():
        if "error" in d:
            print(f"DDS echo {name}: ERROR {d['error'].splitlines()[0][:200]}")
        else:
            print(f"DDS echo {name}: image one way {d['image_one_way_ms']['mean']:.2f} ms "
                  f"(p95 {d['image_one_way_ms']['p95']:.2f}), result one way {d['result_one_way_ms']['mean']:.2f} ms, "
                  f"{d['received']}/{d['frames']} frames echoed")
    print("lat: output receive time - input header stamp, per matched message; dropped: inputs without an "
          "output (depth-1 input: a slower model skips frames); CPU %: the node process, % of one core; "
          "model/bridge ms: node's ~/performance, fixed-rate frames; DDS ms: echo process, image + result one way; "
          "max: the frames go out in a few ms and the node answers the newest one whenever it is free, so the "
          "max-rate figures rest on the few frames it answered")


# ------------------------------------------------------------------------------------
# The echo process
# ------------------------------------------------------------------------------------

def echo_main(input_topic: str, output_topic: str) -> int:
    """Receive images with the nodes' camera QoS and allocator settings; answer each with its stamp and the
    one-way time."""
    import rclpy
    from opendr_interfaces.msg import NodePerformance
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ..ros.node_base import apply_fastdds_profile, camera_qos, keep_image_buffers_in_heap

    keep_image_buffers_in_heap()  # as run_node does for every node
    apply_fastdds_profile()
    rclpy.init()
    node = None
    try:
        node = rclpy.create_node("opendr_bench_echo")
        pub = node.create_publisher(NodePerformance, output_topic,
                                    QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

        def on_image(msg):
            now = time.time_ns()
            pub.publish(NodePerformance(header=msg.header, latency_ms=(now - stamp_ns(msg.header)) / 1e6))

        node.create_subscription(Image, input_topic, on_image, camera_qos())
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--echo":
        sys.exit(echo_main(sys.argv[2], sys.argv[3]))
    print("usage: python -m opendr_perception.bench.node_overhead --echo INPUT_TOPIC OUTPUT_TOPIC "
          "(the benchmark itself: opendr-bench node-overhead)", file=sys.stderr)
    sys.exit(2)
