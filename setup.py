"""opendr_perception: an ament_python package (colcon on a system ROS 2) and a pip package (scripts/setup.sh)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "opendr_perception"

NODES = {
    "active_face_recognition": "opendr_perception.nodes.active_face_recognition:main",
    "face_detection": "opendr_perception.nodes.face_detection:main",
    "face_recognition": "opendr_perception.nodes.face_recognition:main",
    "face_sim": "opendr_perception.nodes.face_sim:main",
    "pose_estimation": "opendr_perception.nodes.pose_estimation:main",
    "skeleton_action_recognition": "opendr_perception.nodes.skeleton_action_recognition:main",
    "high_resolution_pose_estimation": "opendr_perception.nodes.high_resolution_pose_estimation:main",
    "video_activity_recognition": "opendr_perception.nodes.video_activity_recognition:main",
    "continual_audio_classification": "opendr_perception.nodes.continual_audio_classification:main",
    "online_action_detection": "opendr_perception.nodes.online_action_detection:main",
    "active_face_drone_control": "opendr_perception.nodes.active_face_drone_control:main",
    "occlusion_aware_face_recognition": "opendr_perception.nodes.occlusion_aware_face_recognition:main",
}
TOOLS = {
    "opendr-bag": "opendr_perception.tools.bag:main",
    "opendr-bench": "opendr_perception.bench.cli:main",
    "opendr-demo": "opendr_perception.tools.demo:main",
    "opendr-models": "opendr_perception.tools.models:main",
    "opendr-train-skeleton-actions": "opendr_perception.tools.train_skeleton_actions:main",
    "opendr-train-active-vision": "opendr_perception.tools.train_active_vision:main",
    "opendr-train-video-activity": "opendr_perception.tools.train_video_activity:main",
    "opendr-train-continual-transformer": "opendr_perception.tools.train_continual_transformer:main",
    "opendr-train-occlusion-removal": "opendr_perception.tools.train_occlusion_removal:main",
    "transfer-prune": "opendr_perception.tools.transfer_prune:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/models/manifest", glob("models/manifest/*.yaml")),
        ("share/" + PACKAGE + "/models/weights", glob("models/weights/*")),
        ("share/" + PACKAGE + "/models/cards", glob("models/cards/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="opendr-ros2 maintainers",
    maintainer_email="opendr-ros2@users.noreply.github.com",
    description="Human-centric robot perception nodes after the OpenDR toolkit",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in {**NODES, **TOOLS}.items()]},
)
