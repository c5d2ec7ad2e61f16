"""``hpe-soak``: the head pose node under a steady camera stream, for minutes.

Starts the node as its own process (the repository's ``config/head_pose.yaml``, default ONNX
Runtime CPU backend and the shipped model unless told otherwise), publishes 640x480 ``rgb8``
frames (``--faces astronaut``: the astronaut photo panning, one real face; ``--faces 1`` or
``3``: rendered synthetic heads, :mod:`hpe_training.bench.streams`) at 30 Hz with camera_info
from this process, and reports:

* **dropped frames**: published frames that got no ``/head_pose`` answer (the node's queue is
  latest-wins, so a model slower than the camera drops frames instead of queueing them);
* **latency** image publish -> ``/head_pose`` arrival, percentiles over answered frames (ms);
* **memory**: the node process's resident set size every ``--mem-period-s`` seconds, and its
  slope (least squares, MB per minute, after the first minute when the run is long enough);
* **backlog**: answers that arrived after the last frame was published (bounded by the queue
  size, one frame in work and the subscription's DDS history depth);
* the node's own ``queue_high_water`` / ``queue_capacity`` / ``dropped_frames`` (/diagnostics).

The numbers depend on the machine; say which when you quote them. :func:`stream` and
:func:`summarize` are also used by the CI test (a few seconds of the same stream).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

DEFAULT_K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
FRAME_ID = "soak_cam_optical_frame"
CAMERA_NS = "/soak_cam"


@dataclass
class StreamRecord:
    """What happened during :func:`stream`.

    Attributes:
        published_s: ``{stamp key: time.monotonic() at publish}``; the key is the image's
            ``(sec, nanosec)`` stamp.
        heads_before: number of /head_pose messages the client had before the stream.
        end_s: ``time.monotonic()`` when the last frame was published.
        rss: ``[(time.monotonic(), bytes)]`` samples of the node's resident memory.
    """

    published_s: dict[tuple[int, int], float] = field(default_factory=dict)
    heads_before: int = 0
    end_s: float = 0.0
    rss: list[tuple[float, int]] = field(default_factory=list)


def pan_frames(width: int = 640, height: int = 480, count: int = 15) -> list[np.ndarray]:
    """``count`` ``[height, width, 3]`` uint8 RGB frames: the astronaut photo panning right."""
    from skimage import data

    photo = data.astronaut()[: min(height, 512)]
    frames = []
    for i in range(count):
        canvas = np.zeros((height, width, 3), np.uint8)
        x0 = min(40 + 4 * i, max(width - photo.shape[1], 0))
        w = min(photo.shape[1], width - x0)
        canvas[: photo.shape[0], x0:x0 + w] = photo[:, :w]
        frames.append(canvas)
    return frames


def stream(client: Any, frames: Sequence[np.ndarray], seconds: float, rate_hz: float = 30.0,
           K: np.ndarray = DEFAULT_K, frame_id: str = FRAME_ID, rss: Optional[Callable[[], Optional[int]]] = None,
           mem_period_s: float = 5.0, progress: Optional[Callable[[float, StreamRecord], None]] = None,
           progress_period_s: float = 10.0, clock: Callable[[], float] = time.time) -> StreamRecord:
    """Publish ``frames`` in turn at ``rate_hz`` for ``seconds`` through ``client``
    (:class:`hpe_ros.node_driver.Client`), stamped with ``clock()`` (seconds; default the wall
    clock; stamps are forced strictly increasing).

    Publishing follows a fixed schedule (frame ``i`` at ``start + i / rate_hz``); a late tick
    is published at once, never skipped. ``rss`` (e.g. ``NodeProcess.rss_bytes``) is sampled
    every ``mem_period_s``; ``progress(elapsed_s, record)`` is called every
    ``progress_period_s``.
    """
    from hpe_ros.pose_conversion import time_msg_from_seconds

    record = StreamRecord(heads_before=len(client.heads))
    start = time.monotonic()
    next_mem = start
    next_progress = start + progress_period_s
    i = 0
    last_stamp = 0.0
    while True:
        tick = start + i / rate_hz
        if tick - start >= seconds:
            break
        now = time.monotonic()
        if tick > now:
            time.sleep(tick - now)
        stamp_s = max(clock(), last_stamp + 1e-6)
        last_stamp = stamp_s
        stamp = time_msg_from_seconds(stamp_s)
        record.published_s[(stamp.sec, stamp.nanosec)] = time.monotonic()
        client.publish_frame(frames[i % len(frames)], stamp_s, K, frame_id)
        i += 1
        now = time.monotonic()
        if rss is not None and now >= next_mem:
            value = rss()
            if value is not None:
                record.rss.append((now, value))
            next_mem += mem_period_s
        if progress is not None and now >= next_progress:
            progress(now - start, record)
            next_progress += progress_period_s
    record.end_s = time.monotonic()
    if rss is not None:
        value = rss()
        if value is not None:
            record.rss.append((record.end_s, value))
    return record


def answers(client: Any, record: StreamRecord) -> list[tuple[tuple[int, int], float]]:
    """``[(stamp key, arrival time.monotonic())]`` of /head_pose answers to the stream's frames,
    in arrival order."""
    out = []
    for msg, arrived in zip(client.heads[record.heads_before:], client.heads_received_s[record.heads_before:]):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in record.published_s:
            out.append((key, arrived))
    return out


def memory_slope_mb_per_min(samples: Sequence[tuple[float, int]], skip_s: float = 60.0) -> Optional[float]:
    """Least-squares slope of resident memory, MB per minute, over the samples after a warm-up of
    ``skip_s`` seconds or a fifth of the run, whichever is shorter (all samples when fewer than 3
    remain); ``None`` below 3 samples."""
    if len(samples) < 3:
        return None
    t0 = samples[0][0]
    skip = min(skip_s, 0.2 * (samples[-1][0] - t0))
    later = [(t, b) for t, b in samples if t - t0 >= skip]
    use = later if len(later) >= 3 else list(samples)
    t = np.array([s[0] for s in use]) / 60.0
    mb = np.array([s[1] for s in use]) / 1e6
    return float(np.polyfit(t - t[0], mb, 1)[0])


def summarize(client: Any, record: StreamRecord) -> dict[str, Any]:
    """Figures of one stream (see the module docstring); latencies in ms, memory in MB."""
    got = answers(client, record)
    latencies = np.array([(arrived - record.published_s[key]) * 1e3 for key, arrived in got])
    duration = max(record.end_s - min(record.published_s.values()), 1e-9) if record.published_s else 0.0
    stamps = [key for key, _ in got]
    summary: dict[str, Any] = {
        "published": len(record.published_s),
        "answered": len(got),
        "dropped": len(record.published_s) - len({k for k, _ in got}),
        "input_rate_hz": len(record.published_s) / duration if duration else 0.0,
        "output_rate_hz": len(got) / duration if duration else 0.0,
        "answers_in_stamp_order": stamps == sorted(stamps) and len(set(stamps)) == len(stamps),
        "backlog_after_stop": sum(1 for _, arrived in got if arrived > record.end_s),
    }
    if len(latencies):
        for p in (50, 90, 99):
            summary[f"latency_p{p}_ms"] = float(np.percentile(latencies, p))
        summary["latency_max_ms"] = float(latencies.max())
    if record.rss:
        mb = [b / 1e6 for _, b in record.rss]
        summary.update(rss_first_mb=mb[0], rss_last_mb=mb[-1], rss_max_mb=max(mb),
                       rss_samples=len(mb), rss_slope_mb_per_min=memory_slope_mb_per_min(record.rss))
        t0 = record.rss[0][0]
        summary["rss_series"] = [(round(t - t0, 1), round(b / 1e6, 1)) for t, b in record.rss]
    return summary


def node_diagnostics(client: Any) -> dict[str, str]:
    """The node's latest /diagnostics key-value pairs (empty when none arrived)."""
    statuses = client.diagnostic_status()
    return statuses[-1] if statuses else {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpe-soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="stream duration (default 10)")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="camera rate (default 30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--faces", choices=("astronaut", "1", "3"), default="astronaut",
                        help="stream content: the astronaut photo, or 1 or 3 rendered heads (640x480 only)")
    parser.add_argument("--backend", default="onnxruntime", help="node parameter backend")
    parser.add_argument("--model-path", default="", help="node parameter model_path (empty: the shipped model)")
    parser.add_argument("--mem-period-s", type=float, default=5.0, help="memory sampling period")
    parser.add_argument("--progress-s", type=float, default=10.0, help="progress line period")
    parser.add_argument("--log", type=Path, default=None, help="node log file (default: a temporary file)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter (repeatable)")
    return parser


def _param_overrides(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep:
            raise SystemExit(f"--param needs NAME:=VALUE, got {item!r}")
        out[name] = value
    return out


def _print_progress(client: Any) -> Callable[[float, StreamRecord], None]:
    def show(elapsed: float, record: StreamRecord) -> None:
        got = len(answers(client, record))
        rss = f", node RSS {record.rss[-1][1] / 1e6:.0f} MB" if record.rss else ""
        print(f"[hpe-soak] {elapsed:6.0f} s: published {len(record.published_s)}, answered {got}{rss}", flush=True)
    return show


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the soak (module docstring) and print its figures."""
    args = build_parser().parse_args(argv)
    from hpe_ros.node_driver import Client, NodeProcess, loopback_env, wait_for
    from hpe_training.bench.machine import describe_machine, machine_info

    loopback_env()
    log = args.log or Path(tempfile.mkdtemp(prefix="hpe_soak_")) / "node.log"
    overrides: dict[str, Any] = {"backend": args.backend, "diagnostics_period_s": 1.0}
    if args.model_path:  # an empty override cannot be passed on the command line
        overrides["model_path"] = args.model_path
    overrides.update(_param_overrides(args.param))
    remaps = {"image": f"{CAMERA_NS}/image", "camera_info": f"{CAMERA_NS}/camera_info"}
    print(f"[hpe-soak] {describe_machine(machine_info())}", flush=True)
    print(f"[hpe-soak] starting the node (log {log})", flush=True)
    node = NodeProcess(overrides, log, remaps=remaps)
    client = Client(camera_ns=CAMERA_NS)
    try:
        wait_for(lambda: node.proc.poll() is not None or client.wait_connected(0.5), 120.0)
        if node.proc.poll() is not None or not client.wait_connected(1.0):
            print("[hpe-soak] the node did not come up:\n" + node.log(), file=sys.stderr)
            return 1
        if args.faces == "astronaut":
            frames = pan_frames(args.width, args.height)
        else:
            from hpe_training.bench.streams import HEIGHT, WIDTH, face_stream

            if (args.width, args.height) != (WIDTH, HEIGHT):
                raise SystemExit(f"--faces {args.faces} streams are {WIDTH}x{HEIGHT}")
            frames = list(face_stream(int(args.faces), 30).frames)
        print("[hpe-soak] warm-up: waiting for the first pose", flush=True)
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not any(m.heads for m in client.heads):
            stream(client, frames, seconds=1.0, rate_hz=5.0)
        seconds = args.minutes * 60.0
        print(f"[hpe-soak] streaming {args.width}x{args.height} rgb8 at {args.rate_hz} Hz for {seconds:.0f} s", flush=True)
        record = stream(client, frames, seconds, args.rate_hz, rss=node.rss_bytes, mem_period_s=args.mem_period_s,
                        progress=_print_progress(client), progress_period_s=args.progress_s)
        n = len(client.heads)
        wait_for(lambda: len(client.heads) > n, 3.0)  # let the last answers arrive
        time.sleep(1.0)
        summary = {"faces": args.faces, **summarize(client, record)}
        diag = node_diagnostics(client)
        for key in ("queue_capacity", "queue_high_water", "dropped_frames", "frames_processed", "frames_failed",
                    "frames_skipped", "frames_out_of_order", "backend"):
            if key in diag:
                summary[f"node_{key}"] = diag[key]
        # the node's own per-stage times (ms) and rate, as its /diagnostics reports them
        summary["node_timings"] = {k: v for k, v in diag.items() if k.endswith("_ms") or "rate" in k or "ms." in k}
    finally:
        client.close()
        node.stop()
    print("[hpe-soak] summary")
    series = summary.pop("rss_series", [])
    for key, value in summary.items():
        print(f"  {key:28s} {value:.1f}" if isinstance(value, float) else f"  {key:28s} {value}")
    if series:
        print("  node RSS over time (s, MB)  " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in series))
    if args.json is not None:
        args.json.write_text(json.dumps({**summary, "rss_series": series}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
