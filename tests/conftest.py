"""Session-wide test settings: ROS 2 stays on loopback, in a domain of its own per test run."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Loopback only (never multicast out of the machine's interface), and a domain id of our own so
# that two test runs on one machine do not see each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_loopback.xml"))
os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# One compute thread per process: tests run the node and the test process side by side on a
# 2-core machine, where oversubscribed thread pools made small models 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
