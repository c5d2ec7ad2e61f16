"""``hpe-fuzz``: a seeded fuzzer against the head pose node process.

Starts the node as its own process and, batch after batch, sends it random hostile input from
this process's own rclpy client:

* **images**: random sizes, encodings (supported and not), ``step`` and data lengths that lie,
  stamps in the past, slightly or far in the future (2^31 - 1 s), random or empty ``frame_id``;
  with ``--compressed``: random bytes, truncated JPEG/PNG, headers declaring 30000 x 30000;
* **CameraInfo**: random, zero, NaN, tiny and huge ``K``, sizes, binning and ROI;
* **service requests**: capture_anchor (random poses: zero, NaN, huge, unnormalised quaternions),
  clear_anchors (random track ids), save/load_anchors (hostile paths, and pool files mutated
  from a saved one and re-wrapped with a valid checksum of their own);
* **parameters**: random values of random types for every declared parameter.

After each batch the fuzzer sets back the parameters it changed, re-enables the node, and
asserts the invariants: the node process is alive, it answers a good frame (the astronaut
photo) with a head pose, and its resident memory stays under ``--rss-limit-mb``. The CI test
(``tests/ros/test_node_fuzz.py``) runs a few short batches; the command runs as many as asked and
prints progress and a summary (JSON with ``--json``).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

K_GOOD = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
FRAME_ID = "fuzz_cam_optical_frame"
CAMERA_NS = "/fuzz_cam"
ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "yuv422", "bayer_rggb8", "32FC1", "", "rgb8\x00")
HOSTILE_PATHS = ("", "../../etc/passwd", "/etc/passwd", "a/../../b", "x" * 5000, "nul\x00byte", ".", "..",
                 "ok.hpepool", "fuzz_mutant.hpepool", "con:", "~root/x", "a" * 255 + ".hpepool")


@dataclass
class FuzzSummary:
    """What a run did and saw.

    Attributes:
        batches: batches completed with every invariant holding.
        sent: messages, requests and parameter changes sent, by kind.
        service_failures: requests answered ``success: false`` (the expected answer to most).
        rss_mb: the node's resident memory after each batch, MB.
        good_frame_s: seconds until the good frame was answered, after each batch.
        failure: the invariant that broke, or empty.
    """

    batches: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    service_failures: int = 0
    rss_mb: list[float] = field(default_factory=list)
    good_frame_s: list[float] = field(default_factory=list)
    failure: str = ""

    def count(self, kind: str, n: int = 1) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "sent": dict(self.sent), "service_failures": self.service_failures,
                "rss_mb": [round(v, 1) for v in self.rss_mb], "good_frame_s": [round(v, 2) for v in self.good_frame_s],
                "failure": self.failure}


def rewrap_pool(payload: bytes) -> bytes:
    """An anchor-pool file around ``payload`` with a correct header (an attacker's own checksum)."""
    header = {"format": "hpe-anchor-pool", "version": 1, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def mutate_pool(data: bytes, rng: np.random.Generator) -> bytes:
    """A hostile variant of a saved pool file: its metadata JSON or one array member changed,
    or random bytes flipped, then re-wrapped with a valid checksum."""
    newline = data.index(b"\n")
    payload = data[newline + 1:]
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    choice = int(rng.integers(0, 6))
    if choice == 0:  # metadata values replaced by hostile JSON
        meta = json.loads(np.load(io.BytesIO(members["metadata.npy"])).tobytes().decode())
        hostile = [1e308, -1, 10**400, "x" * 10000, None, [], {}, [[[[]]]], True, "NaN"]
        for record in meta.get("anchors", []):
            key = str(rng.choice(sorted(record)))
            record[key] = hostile[int(rng.integers(0, len(hostile)))]
        text = json.dumps(meta).replace("1e+308", "1e999") if rng.random() < 0.5 else json.dumps(meta)
        members["metadata.npy"] = _npy(np.frombuffer(text.encode(), np.uint8))
    elif choice == 1:  # deeply nested metadata
        members["metadata.npy"] = _npy(np.frombuffer(b"[" * int(rng.integers(100, 100_000)), np.uint8))
    elif choice == 2:  # an array member with a huge declared shape and little data
        name = str(rng.choice(sorted(members)))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (1_000_000, 1_000_000, 3)})
        members[name] = np.lib.format.magic(1, 0) + header.getvalue() + b"\0" * 64
    elif choice == 3:  # a crop of another size
        crops = [n for n in members if n.startswith("crop_")]
        if crops:
            side = int(rng.choice([1, 7, 300]))
            members[crops[0]] = _npy(np.zeros((side, 3000 if side == 7 else side, 3), np.uint8))
    elif choice == 4:  # poses that are not rigid or far away
        poses = np.load(io.BytesIO(members["pose_cam.npy"]))
        if poses.size:
            poses[0] = rng.choice([np.nan, 1e300, 0.0, 3.0]) * np.ones((4, 4))
        members["pose_cam.npy"] = _npy(poses)
    else:  # random bytes flipped in the archive (checksum recomputed)
        buffer = bytearray(_zip(members))
        for i in rng.integers(0, len(buffer), size=8):
            buffer[int(i)] = int(rng.integers(0, 256))
        return rewrap_pool(bytes(buffer))
    return rewrap_pool(_zip(members))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class NodeFuzzer:
    """Sends the random input (module docstring) through ``client`` to the node in ``node``."""

    def __init__(self, node, client, good_frame: np.ndarray, anchor_dir: Path, seed: int = 0,
                 compressed: bool = False, max_ahead_s: float = 10.0) -> None:
        from hpe_ros.parameters import PARAMETERS

        self.node, self.client, self.good_frame = node, client, good_frame
        self.anchor_dir, self.compressed, self.max_ahead_s = anchor_dir, compressed, max_ahead_s
        self.rng = np.random.default_rng(seed)
        self.specs = [spec for spec in PARAMETERS if not spec.read_only]
        self.defaults = {spec.name: spec.default for spec in self.specs}
        self.summary = FuzzSummary()
        self._latest_admissible_stamp = 0.0

    # -- generators --------------------------------------------------------------------------
    def _stamp(self) -> float:
        now = time.time()
        kind = self.rng.random()
        if kind < 0.35:
            stamp = now - float(self.rng.uniform(0.0, 1e5))
        elif kind < 0.55:
            stamp = now + float(self.rng.uniform(self.max_ahead_s + 1.0, 1e6))
        elif kind < 0.65:
            stamp = 2.0**31 - 1
        elif kind < 0.75:
            stamp = float(self.rng.uniform(0.0, 10.0))
        else:
            stamp = now + float(self.rng.uniform(0.0, 0.5))
        if stamp <= now + self.max_ahead_s:
            self._latest_admissible_stamp = max(self._latest_admissible_stamp, stamp)
        return stamp

    def _frame_id(self) -> str:
        return str(self.rng.choice([FRAME_ID, "", "..", "a b", "x" * 300, "ctl\x07", "robot/cam", "/lead"]))

    def random_image(self):
        from sensor_msgs.msg import Image

        from hpe_ros.pose_conversion import time_msg_from_seconds

        width = int(self.rng.choice([0, 1, 2, 17, 64, 320, 640, 1280, 100_000]))
        height = int(self.rng.choice([0, 1, 3, 48, 240, 480, 960, 100_000]))
        encoding = str(self.rng.choice(ENCODINGS))
        bpp = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono16": 2, "16UC1": 2}.get(encoding, 1)
        step = width * bpp + int(self.rng.choice([0, 0, 0, 1, -1, 7]))
        needed = max(step, 0) * height
        length = needed if self.rng.random() < 0.6 and needed <= 4_000_000 else int(self.rng.integers(0, 20_000))
        data = self.rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        msg = Image(height=height, width=width, encoding=encoding, step=max(step, 0), data=data,
                    is_bigendian=int(self.rng.integers(0, 2)))
        msg.header.frame_id = self._frame_id()
        msg.header.stamp = time_msg_from_seconds(self._stamp())
        return msg

    def random_compressed(self):
        import cv2
        from sensor_msgs.msg import CompressedImage

        from hpe_ros.pose_conversion import time_msg_from_seconds

        kind = int(self.rng.integers(0, 4))
        if kind == 0:
            data = self.rng.integers(0, 256, size=int(self.rng.integers(0, 50_000)), dtype=np.uint8).tobytes()
        else:
            ok, encoded = cv2.imencode(".png" if kind == 1 else ".jpg", self.good_frame[:, :, ::-1])
            data = bytearray(encoded.tobytes())
            if kind == 3:  # the header declares 30000 x 30000
                if data[:4] == b"\x89PNG":
                    data[16:24] = (30000).to_bytes(4, "big") * 2
            data = bytes(data[: int(self.rng.integers(1, len(data) + 1))])
        msg = CompressedImage(format=str(self.rng.choice(["jpeg", "png", "", "16UC1; compressedDepth"])), data=data)
        msg.header.frame_id = self._frame_id()
        msg.header.stamp = time_msg_from_seconds(self._stamp())
        return msg

    def random_camera_info(self):
        from sensor_msgs.msg import CameraInfo

        values = [0.0, -1.0, 1e-300, 5e-324, 1e300, float("nan"), float("inf"), 525.0, 319.5, 1.0]
        msg = CameraInfo(width=int(self.rng.choice([0, 640, 10**6])), height=int(self.rng.choice([0, 480, 7])))
        msg.k = [float(self.rng.choice(values)) for _ in range(9)]
        if self.rng.random() < 0.5:
            msg.k = [525.0, float(self.rng.choice(values)), 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        msg.binning_x, msg.binning_y = int(self.rng.integers(0, 5)), int(self.rng.integers(0, 5))
        msg.roi.width, msg.roi.height = int(self.rng.choice([0, 10, 5000])), int(self.rng.choice([0, 10, 5000]))
        msg.header.frame_id = FRAME_ID
        return msg

    def _service(self, kind: str, call: Callable[[], Any]) -> None:
        self.summary.count(kind)
        try:
            result = call()
        except TimeoutError as exc:
            raise AssertionError(f"{kind}: no answer ({exc})") from exc
        if not getattr(result, "success", True):
            self.summary.service_failures += 1

    def random_requests(self) -> None:
        from hpe_ros.node_driver import NODE
        from hpe_ros.srv import CaptureAnchor, ClearAnchors, LoadAnchors, SaveAnchors

        values = [0.0, 1.0, -1.0, 1e-300, 1e300, float("nan"), float("inf"), 0.5]
        req = CaptureAnchor.Request(track_id=int(self.rng.choice([-1, 0, 1, 7, 2**31 - 1])),
                                    use_given_pose=bool(self.rng.random() < 0.8))
        p, o = req.pose.position, req.pose.orientation
        p.x, p.y, p.z = (float(self.rng.choice(values)) for _ in range(3))
        o.x, o.y, o.z, o.w = (float(self.rng.choice(values)) for _ in range(4))
        self._service("capture_anchor", lambda: self.client.call(CaptureAnchor, f"/{NODE}/capture_anchor", req))
        if self.rng.random() < 0.3:
            clear = ClearAnchors.Request(track_id=int(self.rng.choice([-1, 0, 5, 2**31 - 1])))
            self._service("clear_anchors", lambda: self.client.call(ClearAnchors, f"/{NODE}/clear_anchors", clear))
        path = str(self.rng.choice(HOSTILE_PATHS))
        self._service("save_anchors", lambda: self.client.call(SaveAnchors, f"/{NODE}/save_anchors",
                                                               SaveAnchors.Request(path=path)))
        saved = self.anchor_dir / "ok.hpepool"
        if saved.exists() and saved.stat().st_size < 50_000_000:
            (self.anchor_dir / "fuzz_mutant.hpepool").write_bytes(mutate_pool(saved.read_bytes(), self.rng))
        path = str(self.rng.choice(HOSTILE_PATHS))
        self._service("load_anchors", lambda: self.client.call(LoadAnchors, f"/{NODE}/load_anchors",
                                                               LoadAnchors.Request(path=path)))

    def random_parameter(self) -> None:
        spec = self.specs[int(self.rng.integers(0, len(self.specs)))]
        candidates: list[Any] = [True, 0, -1, 2**62, 0.0, -1e300, 1e300, float("nan"), float("inf"), "", "..",
                                 "x" * 10_000, "a/b", "ctl\x01"]
        if spec.min_value is not None:
            candidates += [spec.min_value, spec.max_value, type(spec.default)(spec.min_value)]
        if spec.choices:
            candidates += list(spec.choices)
        value = candidates[int(self.rng.integers(0, len(candidates)))]
        self.summary.count("parameter")
        try:
            self.client.set_parameter(spec.name, value)
        except TimeoutError as exc:
            raise AssertionError(f"set_parameters {spec.name}: no answer ({exc})") from exc

    # -- one batch ---------------------------------------------------------------------------
    def batch(self, images: int = 40, requests: int = 4, infos: int = 6, parameters: int = 8,
              rate_hz: float = 200.0) -> None:
        for i in range(images):
            if self.compressed:
                self.client.publish_compressed(self.random_compressed())
            else:
                self.client.publish_raw(self.random_image())
            self.summary.count("compressed" if self.compressed else "image")
            if i % max(images // max(infos, 1), 1) == 0:
                self.client.publish_info(self.random_camera_info())
                self.summary.count("camera_info")
            time.sleep(1.0 / rate_hz)
        for _ in range(requests):
            self.random_requests()
        for _ in range(parameters):
            self.random_parameter()

    def restore(self) -> None:
        """Parameters back to their defaults, the node enabled, good intrinsics."""
        from std_srvs.srv import SetBool

        from hpe_ros.node_driver import NODE

        from rcl_interfaces.srv import SetParametersAtomically

        from hpe_ros.node_driver import parameter_msg

        request = SetParametersAtomically.Request(parameters=[parameter_msg(n, v) for n, v in self.defaults.items()])
        result = self.client.call(SetParametersAtomically, f"/{NODE}/set_parameters_atomically", request).result
        if not result.successful:
            raise AssertionError(f"could not restore the parameters: {result.reason}")
        self.client.call(SetBool, f"/{NODE}/enable", SetBool.Request(data=True))
        self.summary.count("enable")

    def check(self, rss_limit_mb: float, timeout_s: float = 60.0) -> None:
        """The invariants (module docstring); raises ``AssertionError`` with what broke."""
        from hpe_ros.node_driver import wait_for

        if self.node.proc.poll() is not None:
            raise AssertionError(f"the node exited with {self.node.proc.returncode}")
        start = time.monotonic()
        n = len(self.client.heads)
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            stamp = max(time.time(), self._latest_admissible_stamp + 1e-3)
            self._latest_admissible_stamp = stamp
            self._publish_good(stamp)
            if wait_for(lambda: any(m.heads for m in self.client.heads[n:]), 0.5):
                break
        else:
            raise AssertionError(f"no head pose for a good frame within {timeout_s} s")
        self.summary.good_frame_s.append(time.monotonic() - start)
        rss = self.node.rss_bytes()
        if rss is None:
            raise AssertionError("the node's memory could not be read (process gone?)")
        self.summary.rss_mb.append(rss / 2**20)
        if rss / 2**20 > rss_limit_mb:
            raise AssertionError(f"node resident memory {rss / 2**20:.0f} MB exceeds {rss_limit_mb} MB")

    def _publish_good(self, stamp_s: float) -> None:
        if not self.compressed:
            self.client.publish_frame(self.good_frame, stamp_s, K_GOOD, FRAME_ID)
            return
        import cv2
        from sensor_msgs.msg import CompressedImage

        from hpe_ros.camera_info_conversion import camera_info_from_intrinsics
        from hpe_ros.pose_conversion import time_msg_from_seconds

        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(self.good_frame[:, :, ::-1]))
        msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
        msg.header.frame_id = FRAME_ID
        msg.header.stamp = time_msg_from_seconds(stamp_s)
        height, width = self.good_frame.shape[:2]
        self.client.publish_info(camera_info_from_intrinsics(K_GOOD, width, height, stamp=msg.header.stamp, frame_id=FRAME_ID))
        self.client.publish_compressed(msg)

    def run(self, batches: int, rss_limit_mb: float, progress: Optional[Callable[[str], None]] = None,
            **batch_kw: Any) -> FuzzSummary:
        for b in range(batches):
            try:
                self.batch(**batch_kw)
                self.restore()
                self.check(rss_limit_mb)
            except AssertionError as exc:
                self.summary.failure = f"batch {b + 1}: {exc}"
                break
            self.summary.batches += 1
            if progress is not None:
                progress(f"batch {b + 1}/{batches}: ok, rss {self.summary.rss_mb[-1]:.0f} MB, good frame answered in "
                         f"{self.summary.good_frame_s[-1]:.1f} s, {sum(self.summary.sent.values())} sent")
        return self.summary


def rss_slope_mb_per_batch(rss_mb: Sequence[float], skip: int = 1) -> float:
    """Least-squares slope of the memory samples after the first ``skip`` (MB per batch)."""
    values = np.asarray(rss_mb[skip:], dtype=np.float64)
    if values.size < 2:
        return math.nan
    return float(np.polyfit(np.arange(values.size, dtype=np.float64), values, 1)[0])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpe-fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches of random input (default 20)")
    parser.add_argument("--images", type=int, default=100, help="images per batch (default 100)")
    parser.add_argument("--rate-hz", type=float, default=200.0, help="image publish rate within a batch (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compressed", action="store_true", help="fuzz image/compressed instead of raw images")
    parser.add_argument("--estimator", default="vggt", choices=("vggt", "facemesh"))
    parser.add_argument("--model-path", default="", help="VGGT model directory (default: the shipped model)")
    parser.add_argument("--rss-limit-mb", type=float, default=2048.0)
    parser.add_argument("--json", type=Path, help="write the summary here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the fuzzer (module docstring); exit 1 when an invariant broke."""
    args = build_parser().parse_args(argv)
    from hpe_ros.node_driver import Client, NodeProcess, loopback_env, wait_for
    from hpe_training.bench.soak import pan_frames

    loopback_env()
    work = Path(tempfile.mkdtemp(prefix="hpe_fuzz_"))
    anchor_dir = work / "anchors"
    anchor_dir.mkdir()
    overrides: dict[str, Any] = {"estimator": args.estimator, "anchors.dir": str(anchor_dir),
                                 "use_compressed": args.compressed, "detection.every_n_frames": 1}
    if args.model_path:
        overrides["model_path"] = args.model_path
    image_topic = "image/compressed" if args.compressed else "image"
    node = NodeProcess(overrides, work / "node.log",
                       remaps={image_topic: f"{CAMERA_NS}/{image_topic}", "camera_info": f"{CAMERA_NS}/camera_info"})
    client = Client(camera_ns=CAMERA_NS)
    print(f"[hpe-fuzz] node log {work / 'node.log'}; seed {args.seed}, {args.batches} batches", flush=True)
    try:
        if not wait_for(lambda: node.proc.poll() is not None or client.wait_connected(0.5, args.compressed), 120.0) \
                or node.proc.poll() is not None:
            print("[hpe-fuzz] the node did not come up:\n" + node.log(), file=sys.stderr)
            return 1
        fuzzer = NodeFuzzer(node, client, pan_frames()[0], anchor_dir, seed=args.seed, compressed=args.compressed)
        fuzzer.check(args.rss_limit_mb, timeout_s=120.0)
        t0 = time.monotonic()
        summary = fuzzer.run(args.batches, args.rss_limit_mb, progress=lambda line: print(f"[hpe-fuzz] {line}", flush=True),
                             images=args.images, rate_hz=args.rate_hz)
        result = summary.to_dict()
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["rss_slope_mb_per_batch"] = rss_slope_mb_per_batch(summary.rss_mb)
        print(json.dumps(result, indent=1), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if summary.failure:
            print(f"[hpe-fuzz] FAILED: {summary.failure}\n{node.log()[-4000:]}", file=sys.stderr)
            return 1
        return 0
    finally:
        client.close()
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
