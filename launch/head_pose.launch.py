"""Placeholder: the launch file is written with the node (see the hpe_ros node issue)."""
