"""pip packaging of the hpe Python packages (hpe_core, hpe_ros, hpe_training) and console scripts.

ROS 2 users build the same repository with colcon (package.xml / CMakeLists.txt, ament_cmake);
users without ROS get the framework-free parts with ``pip install -e .``.
"""
from setuptools import find_packages, setup

setup(
    name="hpe",
    version="0.1.0",
    description="Relative head pose estimation (VGGT-HPE) for ROS 2",
    packages=find_packages(include=["hpe_core", "hpe_core.*", "hpe_ros", "hpe_ros.*",
                                    "hpe_training", "hpe_training.*"]),
    package_data={
        "hpe_core": ["models/default/*.md", "models/default/*.json", "models/default/torch/*", "models/facemesh/*"],
        "hpe_training": ["train/configs/*.yaml", "models/absolute_small/*"],
    },
    python_requires=">=3.10",
    # torch first (pip install torch), then these; facenet-pytorch with --no-deps (it pins old
    # torch/numpy/Pillow; hpe_core.detection supplies the two torchvision functions it needs).
    install_requires=["numpy", "scipy", "safetensors", "torch", "onnx", "onnxruntime", "opencv-python-headless",
                      "requests", "Pillow", "PyYAML", "tqdm"],
    extras_require={
        "training": ["peft", "moderngl", "albumentations", "scikit-image", "tensorboard", "matplotlib",
                     "onnxscript"],
        "ros": ["rosbags", "mcap-ros2-support"],
    },
    entry_points={
        "console_scripts": [
            "hpe-vggt-parity = hpe_core.vggt.parity_cli:main",
            "hpe-export = hpe_training.export.cli:main",
            "hpe-bench = hpe_training.bench.cli:main",
            "hpe-soak = hpe_training.bench.soak:main",
            "hpe-fuzz = hpe_training.bench.fuzz:main",
            "hpe-synth = hpe_training.synth.cli:main",
            "hpe-train = hpe_training.train.cli:main",
            "hpe-eval = hpe_training.evaluation.cli:main",
            "hpe-video = hpe_core.video_cli:main",
            "hpe-demo = hpe_ros.demo:main",
            "head_pose_node = hpe_ros.head_pose_node:main",
            "camera_player_node = hpe_ros.camera_player_node:main",
        ]
    },
)
