"""DRL active vision control (seed section 2.2) in closed loop with the simulated room and camera drone.

    ros2 launch opendr_bringup active_face_drone_control_sim.launch.py scene:=one_person rviz:=false

The node moves the drone with the shipped policy (models/cards/active_vision_policy.md) and recognises
on STAY. Enrol the person first (the gallery is shared with face_recognition), e.g. with
`ros2 run opendr_perception face_recognition --ros-args -p enroll_dir:=<folder>`.
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
        DeclareLaunchArgument("scene", default_value="one_person", description="Scene file or shipped scene name"),
        DeclareLaunchArgument("policy", default_value="active_vision_policy",
                              description="Registered policy name or .safetensors file"),
        DeclareLaunchArgument("rviz", default_value="true", description="Start rviz2"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="face_sim", name="face_sim", output="screen",
             parameters=[PathJoinSubstitution([config, "face_sim.yaml"]), {"scene": LaunchConfiguration("scene")}],
             remappings=[("image", "/sim/camera/image_raw"), ("camera_info", "/sim/camera/camera_info"),
                         ("cmd_vel", "/sim/cmd_vel")]),
        Node(package="opendr_perception", executable="active_face_drone_control", name="active_face_drone_control",
             output="screen", parameters=[PathJoinSubstitution([config, "active_face_drone_control.yaml"]),
                                          {"platform": "drone", "policy": LaunchConfiguration("policy")}],
             remappings=[("image", "/sim/camera/image_raw"), ("camera_info", "/sim/camera/camera_info"),
                         ("cmd_vel", "/sim/cmd_vel")]),
        Node(package="rviz2", executable="rviz2", name="rviz2", condition=IfCondition(LaunchConfiguration("rviz")),
             arguments=["-d", PathJoinSubstitution([share, "rviz", "perception.rviz"])]),
    ])
