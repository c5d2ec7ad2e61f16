"""Launch the hpe head pose node: `ros2 launch hpe_ros head_pose.launch.py`.

Arguments:
  camera_namespace  namespace of the camera driver's topics (default /camera)
  image_topic       image topic inside it (default image_raw); its /compressed and the
                    namespace's camera_info are remapped alongside
  backend           onnxruntime (default, CPU) | torch | tensorrt
  model_path        model directory; empty = the shipped default model
  params_file       parameter YAML (default: share/hpe_ros/config/head_pose.yaml)
  namespace         namespace of the node
  autostart         configure and activate the lifecycle node at start-up (default true)
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    camera_ns = LaunchConfiguration("camera_namespace")
    image_topic = LaunchConfiguration("image_topic")
    arguments = [
        DeclareLaunchArgument("camera_namespace", default_value="/camera",
                              description="namespace of the camera driver's topics"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="image topic inside camera_namespace"),
        DeclareLaunchArgument("backend", default_value="onnxruntime",
                              description="onnxruntime | torch | tensorrt"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="model directory; empty = the shipped default model"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("hpe_ros"), "config", "head_pose.yaml"]),
            description="parameter YAML of the node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the lifecycle node at start-up"),
    ]
    node = LifecycleNode(
        package="hpe_ros",
        executable="head_pose_node",
        name="head_pose_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {"backend": LaunchConfiguration("backend"), "model_path": LaunchConfiguration("model_path")},
        ],
        remappings=[
            ("image", [camera_ns, "/", image_topic]),
            ("image/compressed", [camera_ns, "/", image_topic, "/compressed"]),
            ("camera_info", [camera_ns, "/camera_info"]),
        ],
        autostart=LaunchConfiguration("autostart"),
    )
    return LaunchDescription(arguments + [node])
