"""Occlusion-aware face recognition (seed section 2.3) in closed loop with the simulated room, viewed in rviz.

    ros2 launch opendr_bringup occlusion_aware_face_recognition_sim.launch.py scene:=occluded_face rviz:=false

The default scene hides part of Eileen Collins' face behind a panel; the wheeled robot steps sideways
(turn, drive, turn back) until it recognises her. Enrol the person first (the gallery is shared with
face_recognition), e.g. `ros2 run opendr_perception face_recognition --ros-args -p enroll_dir:=<folder>`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("opendr_bringup")
    config = PathJoinSubstitution([share, "config"])
    profile = PathJoinSubstitution([config, "fastdds_large_data.xml"])
    return LaunchDescription([
        DeclareLaunchArgument("scene", default_value="occluded_face", description="Scene file or shipped scene name"),
        DeclareLaunchArgument("rviz", default_value="true", description="Start rviz2"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="face_sim", name="face_sim", output="screen",
             parameters=[PathJoinSubstitution([config, "face_sim.yaml"]), {"scene": LaunchConfiguration("scene")}],
             remappings=[("image", "/sim/camera/image_raw"), ("camera_info", "/sim/camera/camera_info"),
                         ("cmd_vel", "/sim/cmd_vel")]),
        Node(package="opendr_perception", executable="occlusion_aware_face_recognition",
             name="occlusion_aware_face_recognition", output="screen",
             parameters=[PathJoinSubstitution([config, "occlusion_aware_face_recognition.yaml"])],
             remappings=[("image", "/sim/camera/image_raw"), ("cmd_vel", "/sim/cmd_vel")]),
        Node(package="rviz2", executable="rviz2", name="rviz2", condition=IfCondition(LaunchConfiguration("rviz")),
             arguments=["-d", PathJoinSubstitution([share, "rviz", "perception.rviz"])]),
    ])
