"""Test isolation for real DDS: a test-local ROS_DOMAIN_ID and localhost-only discovery.

Every test process and every node it starts share one domain id derived from
the pytest process id, so parallel runs on one machine never see each other.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ["ROS_DOMAIN_ID"] = str(os.environ.get("OPENDR_TEST_DOMAIN_ID", 10 + os.getpid() % 90))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("OPENDR_OFFLINE", "1")  # tests never download
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rclpy_context():
    """rclpy initialised once for the test process (with the suite's FastDDS profile)."""
    rclpy = pytest.importorskip("rclpy")
    from opendr_perception.ros.node_base import apply_fastdds_profile
    apply_fastdds_profile()
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture
def test_node(rclpy_context):
    node = rclpy_context.create_node(f"test_{os.getpid()}_{time.monotonic_ns() % 100000}")
    yield node
    node.destroy_node()


def executable(name: str) -> str:
    """Path of an installed console script (node or tool) of this project."""
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.fail(f"executable '{name}' is not installed: run scripts/setup.sh")
    return found


class NodeProcess:
    """A node or tool started as its own process; stopped with SIGINT like ros2 launch does."""

    def __init__(self, name: str, args=(), params=None, remaps=None, log_dir: Path = Path(".")):
        cmd = [executable(name), *args]
        ros_args = []
        for key, value in (params or {}).items():
            value = str(value).lower() if isinstance(value, bool) else value
            ros_args += ["-p", f"{key}:={value}"]
        for source, target in (remaps or {}).items():
            ros_args += ["-r", f"{source}:={target}"]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy())

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def start_process(tmp_path):
    """Start node/tool processes; all are stopped at the end of the test, their logs shown on failure."""
    started = []

    def start(name, args=(), params=None, remaps=None):
        proc = NodeProcess(name, args, params, remaps, tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        sys.stdout.write(f"\n----- log of {proc.name} -----\n{proc.log()[-4000:]}\n")


@pytest.fixture
def float64_default():
    """torch's default dtype is float64 inside the test (numerical equivalence tests)."""
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def portrait_faces():
    """{photo name: (BGR image, its one BlazeFace short-range face)} for the astronaut and Grace Hopper."""
    from opendr_perception.core import samples
    from opendr_perception.models.face_detection import FaceDetector
    detector = FaceDetector("short_range")
    out = {}
    for name in ("astronaut", "grace_hopper"):
        image = getattr(samples, name)()
        found = detector.detect(image)
        assert len(found) == 1, f"{name}: expected one face, found {len(found)}"
        out[name] = (image, found[0])
    return out
