"""Launch files: every Node names an executable that exists, every parameter file exists and holds only
parameters the node declares; loaded for real where launch_ros imports; and the demo graph is started
as the launch file describes it, as plain processes, and produces its outputs."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

pytest.importorskip("opendr_perception.ros.node_base")
from opendr_interfaces.msg import HumanPose2DArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from conftest import REPO  # noqa: E402
from e2e_support import Probe, image_message, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.ros.node_base import camera_qos  # noqa: E402

BRINGUP = REPO / "opendr_bringup"
LAUNCH_FILES = sorted((BRINGUP / "launch").glob("*.launch.py"))
EXTERNAL_PACKAGES = {"rviz2"}  # nodes of other packages the launch files may start


def console_scripts() -> dict[str, str]:
    """The node executables setup.py installs: name -> 'module:function'."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NODES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no NODES table")


class LaunchFile:
    """What a launch file says, read from its source: Nodes and launch arguments."""

    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.arguments = {}
        self.nodes = []
        for call in (n for n in ast.walk(self.tree) if isinstance(n, ast.Call)):
            name = getattr(call.func, "id", getattr(call.func, "attr", ""))
            if name == "DeclareLaunchArgument":
                default = next((k.value for k in call.keywords if k.arg == "default_value"), None)
                self.arguments[ast.literal_eval(call.args[0])] = default
            elif name == "Node":
                self.nodes.append({k.arg: k.value for k in call.keywords})

    def files(self, expr) -> list[str]:
        """The share-relative files a substitution expression points at (e.g. ['config', 'x.yaml'])."""
        if isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "PathJoinSubstitution":
            return [self.part(p) for p in expr.args[0].elts]
        if isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "LaunchConfiguration":
            return self.files(self.arguments[ast.literal_eval(expr.args[0])])
        return []

    def part(self, expr) -> str:
        if isinstance(expr, ast.Constant):
            return expr.value
        if isinstance(expr, ast.Name):  # a variable holding a path: resolve its assignment
            return "/".join(p for p in self.files(self.assigned(expr.id)) if p)
        return ""  # FindPackageShare(...): the share directory itself

    def assigned(self, name: str):
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
                return node.value
        raise AssertionError(f"{self.path.name}: no assignment of {name}")

    def value(self, expr) -> str:
        """A string or a LaunchConfiguration (possibly through a variable) resolved to its default."""
        if isinstance(expr, ast.Name):
            expr = self.assigned(expr.id)
        if isinstance(expr, ast.Constant):
            return expr.value
        if isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "LaunchConfiguration":
            return ast.literal_eval(self.arguments[ast.literal_eval(expr.args[0])])
        raise AssertionError(f"{self.path.name}: cannot resolve {ast.dump(expr)}")

    def parameter_files(self, node) -> list[Path]:
        out = []
        for element in node.get("parameters", ast.List(elts=[])).elts:
            parts = [p for p in self.files(element) if p]
            if parts:
                out.append(BRINGUP / "/".join(parts))
        return out

    def inline_parameters(self, node) -> dict:
        """Parameters given as a dict in the launch file (LaunchConfiguration values at their defaults)."""
        out = {}
        for element in node.get("parameters", ast.List(elts=[])).elts:
            if isinstance(element, ast.Dict):
                for key, value in zip(element.keys, element.values):
                    out[ast.literal_eval(key)] = (value.value if isinstance(value, ast.Constant)
                                                  else self.value(value))
        return out

    def remappings(self, node) -> dict:
        return {self.value(t.elts[0]): self.value(t.elts[1]) for t in node.get("remappings", ast.List(elts=[])).elts}


def node_class(executable: str):
    module = importlib.import_module(console_scripts()[executable].split(":")[0])
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Node) and c.__module__ == module.__name__]
    assert len(classes) == 1, f"{module.__name__} should define exactly one node class"
    return classes[0]


@pytest.fixture(scope="module")
def declared_parameters(rclpy_context):
    """Parameter names each node executable declares (the node is built in-process, its model not loaded)."""
    declared = {}
    for executable in console_scripts():
        node = node_class(executable)()
        declared[executable] = set(node.list_parameters([], 0).names)
        node.destroy_node()
    return declared


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path, declared_parameters):
    launch = LaunchFile(path)
    assert launch.nodes, f"{path.name} starts no Node"
    for node in launch.nodes:
        package, executable = launch.value(node["package"]), launch.value(node["executable"])
        if package in EXTERNAL_PACKAGES:
            continue
        assert package == "opendr_perception", f"{path.name}: unknown package {package}"
        assert executable in console_scripts(), f"{path.name}: opendr_perception has no executable {executable}"
        name = launch.value(node["name"])
        declared = declared_parameters[executable]
        files = launch.parameter_files(node)
        assert files, f"{path.name}: {name} loads no parameter file"
        for params_file in files:
            assert params_file.is_file(), f"{path.name}: {params_file} does not exist"
            content = yaml.safe_load(params_file.read_text())
            assert set(content) == {name}, f"{params_file.name} must hold the parameters of node '{name}' only"
            unknown = set(content[name]["ros__parameters"]) - declared
            assert not unknown, f"{params_file.name}: {name} declares no parameter {sorted(unknown)}"
        unknown = set(launch.inline_parameters(node)) - declared
        assert not unknown, f"{path.name}: {name} declares no parameter {sorted(unknown)}"
        if hasattr(node_class(executable), "input_encoding"):  # a camera node
            assert "image" in launch.remappings(node), f"{path.name}: {name}'s camera input is not remappable"
    for call in ast.walk(launch.tree):  # every file a substitution names (rviz configs, profiles) exists
        parts = [p for p in launch.files(call) if p] if isinstance(call, ast.Call) else []
        if len(parts) > 1:
            assert (BRINGUP / "/".join(parts)).exists(), f"{path.name}: {'/'.join(parts)} does not exist"


def test_bringup_installs_what_the_launch_files_use():
    cmake = (BRINGUP / "CMakeLists.txt").read_text()
    assert "install(DIRECTORY launch config rviz" in cmake


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_loads_with_launch_ros(path):
    """Only where a system ROS 2 provides launch_ros (not on PyPI)."""
    pytest.importorskip("launch_ros")
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch_ros.actions import Node
    description = get_launch_description_from_python_launch_file(str(path))
    assert any(isinstance(e, Node) for e in description.entities)


def test_demo_graph_runs_as_processes(start_process, test_node):
    """perception_demo.launch.py's opendr nodes, started with its parameter files and remappings."""
    launch = LaunchFile(BRINGUP / "launch" / "perception_demo.launch.py")
    processes = []
    camera_topic = None
    for node in launch.nodes:
        if launch.value(node["package"]) in EXTERNAL_PACKAGES:
            continue
        args = ["--ros-args", "-r", f"__node:={launch.value(node['name'])}"]
        for params_file in launch.parameter_files(node):
            args += ["--params-file", str(params_file)]
        for key, value in launch.inline_parameters(node).items():
            args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        for source, target in launch.remappings(node).items():
            args += ["-r", f"{source}:={target}"]
            camera_topic = target if source == "image" else camera_topic
        processes.append(start_process(launch.value(node["executable"]), args))
    publisher = test_node.create_publisher(Image, camera_topic, camera_qos())
    faces = Probe(test_node, Detection2DArray, "/faces")
    poses = Probe(test_node, HumanPose2DArray, "/poses")
    markers = Probe(test_node, MarkerArray, "/pose_estimation/markers")
    wait_for_subscriber(test_node, publisher, 60, processes, count=len(processes))
    spin_for(test_node, 0.5)
    publisher.publish(image_message(samples.astronaut(), test_node))
    for probe in (faces, poses, markers):
        probe.wait_for(1, 30)
    assert len(faces.messages[0].detections) == 1
    assert len(poses.messages[0].poses) == 1
    assert any(m.type == m.LINE_LIST and m.points for m in markers.messages[0].markers)
