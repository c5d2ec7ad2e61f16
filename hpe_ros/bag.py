"""Record topics to an MCAP bag and replay a bag into ROS 2, with rclpy and rosbags only.

``ros2 bag`` is not installable from PyPI; rosbags (pure Python) writes and reads MCAP bags,
and message definitions (ours included) travel inside the file, so a bag recorded here opens
in Foxglove or ``ros2 bag`` elsewhere.

Recording subscribes with ``raw=True`` (serialized CDR bytes, no deserialisation cost) and
stores ``(topic, type, receive time, bytes)``; writing happens once at the end. Replay
publishes the stored bytes with raw publishers at the recorded pace, spinning in between (a
``time.sleep`` pacing loop lets small queues overflow).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from rclpy.node import Node
from rclpy.qos import QoSProfile

from hpe_ros.msg import HeadPose  # noqa: F401 - makes sure the interfaces are built

#: Interface files of this package, for rosbags (their definitions are stored in the bag).
_OWN_TYPES = ("msg/HeadPose.msg", "msg/HeadPoseArray.msg")


def _type_name(msg_type: Any) -> str:
    module = msg_type.__module__.split(".")
    return f"{module[0]}/{module[1]}/{msg_type.__name__}"


def typestore_with_our_types():
    """A rosbags typestore for ROS 2 Kilted plus tf2_msgs and hpe_ros messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    share = _package_share()
    for rel in _OWN_TYPES:
        text = (share / rel).read_text()
        types.update(get_types_from_msg(text, f"hpe_ros/{rel[:-4]}"))
    if "tf2_msgs/msg/TFMessage" not in store.types:
        types.update(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    store.register(types)
    return store


def _package_share() -> Path:
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("hpe_ros"))
        if (share / _OWN_TYPES[0]).is_file():
            return share
    except Exception:  # noqa: BLE001 - fall back to the checkout
        pass
    return Path(__file__).resolve().parents[1]


@dataclass
class RecordedMessage:
    topic: str
    type_name: str
    receive_ns: int
    data: bytes


@dataclass
class Recorder:
    """Raw subscriptions on ``topics`` ({topic: (msg_type, qos)}) of ``node``."""

    node: Node
    topics: dict[str, tuple[Any, QoSProfile]]
    messages: list[RecordedMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._subs = []
        for topic, (msg_type, qos) in self.topics.items():
            name = _type_name(msg_type)
            self._subs.append(self.node.create_subscription(
                msg_type, topic, lambda data, t=topic, n=name: self._store(t, n, data), qos, raw=True))

    def _store(self, topic: str, type_name: str, data: bytes) -> None:
        with self._lock:
            self.messages.append(RecordedMessage(topic, type_name, time.time_ns(), bytes(data)))
            self._counts[topic] = self._counts.get(topic, 0) + 1

    def count(self, topic: str) -> int:
        """Messages recorded on ``topic`` so far."""
        with self._lock:
            return self._counts.get(topic, 0)

    def snapshot(self) -> list[RecordedMessage]:
        with self._lock:
            return list(self.messages)

    def write_mcap(self, path: Path) -> Path:
        """Write everything recorded so far to an MCAP bag directory at ``path``."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        store = typestore_with_our_types()
        if path.exists():
            import shutil

            shutil.rmtree(path)
        messages = sorted(self.snapshot(), key=lambda m: m.receive_ns)
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {}
            for topic, (msg_type, _) in self.topics.items():
                connections[topic] = writer.add_connection(topic, _type_name(msg_type), typestore=store)
            for m in messages:
                writer.write(connections[m.topic], m.receive_ns, m.data)
        return path


def read_mcap(path: Path, topics: Optional[Sequence[str]] = None) -> list[RecordedMessage]:
    """Messages of an MCAP bag (all topics, or ``topics``), in time order."""
    from rosbags.rosbag2 import Reader

    out = []
    with Reader(path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        for conn, timestamp, data in reader.messages(connections=conns):
            out.append(RecordedMessage(conn.topic, conn.msgtype, timestamp, bytes(data)))
    return out


def replay(node: Node, executor, messages: Sequence[RecordedMessage], types: dict[str, Any],
           qos: dict[str, QoSProfile], speed: float = 1.0, remap: Optional[dict[str, str]] = None,
           wait_for_subscribers_s: float = 10.0, settle_s: float = 1.0, drain_s: float = 0.5) -> int:
    """Publish recorded messages at their recorded pace (divided by ``speed``), spinning
    ``executor`` while waiting; first wait up to ``wait_for_subscribers_s`` for every topic to
    have a subscriber, and keep the publishers ``drain_s`` seconds after the last message (a
    writer destroyed at once can take its last best-effort sample with it). Returns the number
    of messages published."""
    remap = remap or {}
    pubs = {}
    for m in messages:
        if m.topic not in pubs:
            pubs[m.topic] = node.create_publisher(types[m.type_name], remap.get(m.topic, m.topic), qos[m.topic])
    if not messages:
        return 0
    # Publishers are new: wait (bounded) until each is matched, or the first messages are lost.
    deadline = time.monotonic() + wait_for_subscribers_s
    while time.monotonic() < deadline and any(p.get_subscription_count() == 0 for p in pubs.values()):
        executor.spin_once(timeout_sec=0.05)
    # A writer can see the reader a little before the reader has matched the writer; give the
    # other side a moment, or the first (best-effort) message can still be lost.
    settle_until = time.monotonic() + settle_s
    while time.monotonic() < settle_until:
        executor.spin_once(timeout_sec=0.05)
    start_wall = time.monotonic()
    start_bag = messages[0].receive_ns
    for m in messages:
        due = start_wall + (m.receive_ns - start_bag) * 1e-9 / speed
        while True:
            left = due - time.monotonic()
            if left <= 0:
                break
            executor.spin_once(timeout_sec=min(left, 0.01))
        pubs[m.topic].publish(m.data)
    drain_until = time.monotonic() + drain_s
    while time.monotonic() < drain_until:
        executor.spin_once(timeout_sec=0.05)
    for pub in pubs.values():
        node.destroy_publisher(pub)
    return len(messages)
