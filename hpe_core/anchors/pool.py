"""The managed anchor pool: per-track anchors, keyframe rules, capacity and eviction.

One :class:`AnchorPool` holds a list of :class:`~hpe_core.anchors.anchor.Anchor` per tracked
head (``track_id``). Anchors enter as calibrated (pose given), bootstrapped (pose from an
absolute estimator) or keyframes (a confident fused estimate far from every existing anchor,
see :meth:`AnchorPool.maybe_add_keyframe`). When a track is full, the non-calibrated anchor
whose removal loses the least rotation coverage is evicted: the one nearest to its nearest
neighbour (rotation in the virtual frames the estimator sees), ties going to the lower quality,
then the older one.

Ids are ``"<track>-c<n>"``, ``"<track>-b<n>"`` and ``"<track>-k<n>"``, with ``n`` counting
per track and source from 0; ids are never reused in a pool's life (the counters survive
eviction, clearing and persistence).

Thread safety: every method takes one re-entrant lock, so the node may call the pool from its
inference worker thread and from service callbacks at the same time. Readers receive tuples
(snapshots) of :class:`Anchor` objects whose arrays are read-only; the only field set after
construction is ``Anchor.features`` (a lazily computed cache: a race at worst computes it
twice).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from os import PathLike
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.consensus import FusedPose
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.selection import AnchorSelection, rotation_gaps_deg, select_anchors
from hpe_core.geometry.rotations import geodesic_angle_deg

#: Decision reasons reported by :meth:`AnchorPool.maybe_add_keyframe`.
KEYFRAME_ADDED = "added"
KEYFRAME_NO_ANCHORS = "no_anchors"
KEYFRAME_LOW_CONFIDENCE = "low_confidence"
KEYFRAME_TOO_CLOSE = "too_close"
KEYFRAME_PARENT_MISSING = "parent_missing"
KEYFRAME_CHAIN_TOO_DEEP = "chain_too_deep"
KEYFRAME_TOO_UNCERTAIN = "too_uncertain"
KEYFRAME_POOL_FULL = "pool_full"
KEYFRAME_INVALID_POSE = "invalid_pose"


class AnchorPoolFullError(RuntimeError):
    """A track is full and holds only anchors that may not be evicted."""


@dataclass(frozen=True)
class KeyframeDecision:
    """Outcome of :meth:`AnchorPool.maybe_add_keyframe`.

    Attributes:
        added: whether a keyframe was added.
        reason: one of the ``KEYFRAME_*`` constants of this module.
        anchor: the new keyframe, when added.
        evicted_ids: anchors evicted to make room.
        nearest_gap_deg: rotation gap (degrees) of the estimate to the nearest anchor of the
            track (``inf`` when the track has none).
    """

    added: bool
    reason: str
    anchor: Optional[Anchor] = None
    evicted_ids: tuple[str, ...] = ()
    nearest_gap_deg: float = float("inf")


@dataclass(frozen=True)
class TrackCounts:
    """Number of anchors of each source in one track (diagnostics)."""

    calibrated: int = 0
    bootstrapped: int = 0
    keyframe: int = 0

    @property
    def total(self) -> int:
        return self.calibrated + self.bootstrapped + self.keyframe


def _check_track_id(track_id: str) -> str:
    if not isinstance(track_id, str) or not track_id:
        raise ValueError(f"track_id must be a non-empty string, got {track_id!r}")
    return track_id


class AnchorPool:
    """Per-track anchor pools under one lock (see the module docstring).

    Args:
        policy: capacity, selection and keyframe rules.
        clock: time source for ``created_at`` (seconds) when the caller gives none.
    """

    def __init__(self, policy: AnchorPolicy = AnchorPolicy(), clock: Callable[[], float] = time.time) -> None:
        if not isinstance(policy, AnchorPolicy):
            raise TypeError(f"policy must be an AnchorPolicy, got {type(policy).__name__}")
        self._policy = policy
        self._clock = clock
        self._lock = threading.RLock()
        self._tracks: dict[str, list[Anchor]] = {}
        self._next_index: dict[str, dict[str, int]] = {}
        self._evictions = 0

    # ------------------------------------------------------------------ reading
    @property
    def policy(self) -> AnchorPolicy:
        """The pool's current policy (an immutable value; see :meth:`set_policy`)."""
        with self._lock:
            return self._policy

    def set_policy(self, policy: AnchorPolicy) -> None:
        """Switch to a new policy (e.g. after a parameter change). Anchors are kept; a smaller
        capacity is enforced by eviction at the next insertion into a track."""
        if not isinstance(policy, AnchorPolicy):
            raise TypeError(f"policy must be an AnchorPolicy, got {type(policy).__name__}")
        with self._lock:
            self._policy = policy

    @property
    def evictions(self) -> int:
        """Anchors evicted since construction (diagnostics)."""
        with self._lock:
            return self._evictions

    def tracks(self) -> tuple[str, ...]:
        """Track ids that hold at least one anchor, sorted."""
        with self._lock:
            return tuple(sorted(t for t, a in self._tracks.items() if a))

    def anchors(self, track_id: str) -> tuple[Anchor, ...]:
        """Snapshot of one track's anchors in insertion order (empty for an unknown track)."""
        with self._lock:
            return tuple(self._tracks.get(track_id, ()))

    def get(self, track_id: str, anchor_id: str) -> Optional[Anchor]:
        """The anchor with this id in this track, or ``None``."""
        with self._lock:
            for a in self._tracks.get(track_id, ()):
                if a.anchor_id == anchor_id:
                    return a
        return None

    def counts(self) -> dict[str, TrackCounts]:
        """Per-track anchor counts by source (tracks with anchors only)."""
        with self._lock:
            out: dict[str, TrackCounts] = {}
            for track_id, anchors in self._tracks.items():
                if anchors:
                    n = {s: sum(1 for a in anchors if a.source is s) for s in AnchorSource}
                    out[track_id] = TrackCounts(
                        n[AnchorSource.CALIBRATED], n[AnchorSource.BOOTSTRAPPED], n[AnchorSource.KEYFRAME]
                    )
            return out

    def __len__(self) -> int:
        with self._lock:
            return sum(len(a) for a in self._tracks.values())

    def id_counters(self) -> dict[str, dict[str, int]]:
        """Next index per track and id letter (``{"face_1": {"c": 1, "b": 0, "k": 4}}``)."""
        with self._lock:
            return {t: dict(c) for t, c in self._next_index.items()}

    def snapshot(self) -> tuple[tuple[Anchor, ...], dict[str, dict[str, int]]]:
        """All anchors (tracks sorted, insertion order inside a track) and the id counters,
        taken together under the lock (what persistence saves)."""
        with self._lock:
            anchors = tuple(a for t in sorted(self._tracks) for a in self._tracks[t])
            return anchors, self.id_counters()

    def select(
        self,
        track_id: str,
        rotation_cam: ArrayLike,
        query_virtual_from_cam: Optional[ArrayLike] = None,
        k: Optional[int] = None,
        expected_error=None,
    ) -> AnchorSelection:
        """The track's K anchors nearest to ``rotation_cam`` (``[3, 3]`` ``R_cam_from_head``), or
        expected to give the best estimates (``expected_error``); see
        :func:`hpe_core.anchors.selection.select_anchors`."""
        return select_anchors(self.anchors(track_id), rotation_cam, self._policy, query_virtual_from_cam, k,
                              expected_error)

    # ------------------------------------------------------------------ adding
    def add_calibrated(
        self,
        track_id: str,
        crop: NDArray[np.uint8],
        pose_cam: ArrayLike,
        virtual_from_cam: Optional[ArrayLike] = None,
        quality: float = 1.0,
        created_at: Optional[float] = None,
        crop_from_cam: Optional[ArrayLike] = None,
    ) -> Anchor:
        """Add an anchor whose pose is known (chain root, no uncertainty).

        Args:
            track_id: the tracked head.
            crop: ``uint8`` RGB ``[H, W, 3]`` crop at the estimator input size.
            pose_cam: ``[4, 4]`` ``T_cam_from_head`` in the real camera frame (metres).
            virtual_from_cam: ``[3, 3]`` the crop's ``R_virt_from_cam``; identity if ``None``.
            quality: trust, 0..1.
            created_at: seconds; the pool's clock if ``None``.
            crop_from_cam: ``[3, 3]`` the crop's camera (:attr:`Anchor.crop_from_cam`), optional.

        Raises:
            AnchorPoolFullError: the track is full of anchors that may not be evicted.
        """
        return self._add_root(AnchorSource.CALIBRATED, track_id, crop, pose_cam, virtual_from_cam, quality, 0.0,
                              created_at, crop_from_cam)

    def add_bootstrapped(
        self,
        track_id: str,
        crop: NDArray[np.uint8],
        pose_cam: ArrayLike,
        virtual_from_cam: Optional[ArrayLike] = None,
        quality: float = 0.5,
        uncertainty_deg: float = 5.0,
        created_at: Optional[float] = None,
        crop_from_cam: Optional[ArrayLike] = None,
    ) -> Anchor:
        """Add a root anchor whose pose came from an absolute estimator.

        Same arguments as :meth:`add_calibrated`, plus ``uncertainty_deg``: the expected
        rotation error of ``pose_cam`` in degrees (becomes its accumulated uncertainty).
        """
        return self._add_root(
            AnchorSource.BOOTSTRAPPED, track_id, crop, pose_cam, virtual_from_cam, quality, uncertainty_deg, created_at,
            crop_from_cam)

    def maybe_add_keyframe(
        self,
        track_id: str,
        crop: NDArray[np.uint8],
        fused: FusedPose,
        created_at: Optional[float] = None,
        crop_from_cam: Optional[ArrayLike] = None,
    ) -> KeyframeDecision:
        """Add the query as a keyframe if the policy's rules allow it.

        Rules, in order: the track has anchors; ``fused.confidence >=
        keyframe_min_confidence``; the fused rotation is at least ``keyframe_min_gap_deg`` from
        every anchor of the track (gap in virtual frames, with ``fused.query_virtual_from_cam``);
        the parent (the used anchor nearest to the estimate, ``fused.nearest_anchor_id``) is
        still in the track; the new chain depth (parent's + 1) is ``<= max_chain_depth``; the
        estimate's accumulated uncertainty is ``<= max_accumulated_uncertainty_deg``; room can
        be made by eviction.

        Args:
            track_id: the tracked head.
            crop: ``uint8`` RGB ``[H, W, 3]`` query crop the estimate was made from.
            fused: the fused estimate for that crop (:func:`fuse_relative_estimates`).
            created_at: seconds; the pool's clock if ``None``.
            crop_from_cam: ``[3, 3]`` the query crop's camera, optional.

        Returns:
            :class:`KeyframeDecision`; the keyframe's quality is ``fused.confidence``.
        """
        _check_track_id(track_id)
        with self._lock:
            p = self._policy
            anchors = self._tracks.get(track_id, [])
            if not anchors:
                return KeyframeDecision(False, KEYFRAME_NO_ANCHORS)
            gaps = rotation_gaps_deg(anchors, fused.rotation_cam, fused.query_virtual_from_cam)
            nearest_gap = float(gaps.min())
            if fused.confidence < p.keyframe_min_confidence:
                return KeyframeDecision(False, KEYFRAME_LOW_CONFIDENCE, nearest_gap_deg=nearest_gap)
            if nearest_gap < p.keyframe_min_gap_deg:
                return KeyframeDecision(False, KEYFRAME_TOO_CLOSE, nearest_gap_deg=nearest_gap)
            by_id = {a.anchor_id: a for a in anchors}
            parent = by_id.get(fused.nearest_anchor_id)
            if parent is None:
                return KeyframeDecision(False, KEYFRAME_PARENT_MISSING, nearest_gap_deg=nearest_gap)
            depth = parent.chain_depth + 1
            if depth > p.max_chain_depth:
                return KeyframeDecision(False, KEYFRAME_CHAIN_TOO_DEEP, nearest_gap_deg=nearest_gap)
            if fused.accumulated_uncertainty_deg > p.max_accumulated_uncertainty_deg:
                return KeyframeDecision(False, KEYFRAME_TOO_UNCERTAIN, nearest_gap_deg=nearest_gap)
            # Parents: the primary one first, then the other used anchors by fusion weight.
            weight_of: dict[str, float] = {}
            for w, aid in zip(fused.weights, fused.estimate_anchor_ids or fused.anchor_ids):
                weight_of[aid] = weight_of.get(aid, 0.0) + float(w)
            others = [(w, aid) for aid, w in weight_of.items() if aid != parent.anchor_id and aid in by_id]
            parent_ids = (parent.anchor_id,) + tuple(aid for _, aid in sorted(others, key=lambda x: -x[0]))
            try:
                anchor = self._keyframe_anchor(track_id, crop, fused, created_at, parent_ids, depth, crop_from_cam)
            except ValueError:  # a fused pose an anchor cannot hold (e.g. a translation beyond range)
                return KeyframeDecision(False, KEYFRAME_INVALID_POSE, nearest_gap_deg=nearest_gap)
            try:
                evicted = self._insert(anchor)
            except AnchorPoolFullError:
                return KeyframeDecision(False, KEYFRAME_POOL_FULL, nearest_gap_deg=nearest_gap)
            return KeyframeDecision(True, KEYFRAME_ADDED, anchor, evicted, nearest_gap)

    def _keyframe_anchor(self, track_id: str, crop: NDArray[np.uint8], fused: FusedPose, created_at: Optional[float],
                         parent_ids: tuple[str, ...], depth: int, crop_from_cam: Optional[ArrayLike]) -> Anchor:
        return Anchor(
            anchor_id=self._peek_id(track_id, AnchorSource.KEYFRAME),
            track_id=track_id,
            crop=crop,
            pose_cam=fused.pose_cam,
            virtual_from_cam=fused.query_virtual_from_cam,
            source=AnchorSource.KEYFRAME,
            quality=float(np.clip(fused.confidence, 0.0, 1.0)),
            created_at=self._now(created_at),
            parent_ids=parent_ids,
            chain_depth=depth,
            accumulated_uncertainty_deg=fused.accumulated_uncertainty_deg,
            crop_from_cam=crop_from_cam,
        )

    # ------------------------------------------------------------------ removing
    def remove_anchor(self, track_id: str, anchor_id: str) -> bool:
        """Remove one anchor (any source); returns whether it was there."""
        with self._lock:
            anchors = self._tracks.get(track_id, [])
            for i, a in enumerate(anchors):
                if a.anchor_id == anchor_id:
                    del anchors[i]
                    if not anchors:
                        del self._tracks[track_id]
                    return True
        return False

    def restore_anchor(self, anchor: Anchor) -> None:
        """Put back an anchor just removed from this pool (undoing a request that failed
        half-way); no eviction, no id change; a no-op when an anchor of that id is there."""
        with self._lock:
            anchors = self._tracks.setdefault(anchor.track_id, [])
            if all(a.anchor_id != anchor.anchor_id for a in anchors):
                anchors.append(anchor)

    def remove_track(self, track_id: str) -> int:
        """Drop every anchor of a track; returns how many there were (0 if unknown)."""
        with self._lock:
            return len(self._tracks.pop(track_id, []))

    def clear(self, track_id: Optional[str] = None) -> None:
        """Drop the anchors of one track, or of every track when ``track_id`` is ``None``.
        Id counters are kept, so ids are not reused."""
        with self._lock:
            if track_id is None:
                self._tracks.clear()
            else:
                self._tracks.pop(track_id, None)

    # ------------------------------------------------------------------ whole-pool
    @classmethod
    def from_anchors(
        cls,
        anchors: Iterable[Anchor],
        policy: AnchorPolicy = AnchorPolicy(),
        id_counters: Optional[Mapping[str, Mapping[str, int]]] = None,
        clock: Callable[[], float] = time.time,
    ) -> "AnchorPool":
        """Build a pool from existing anchors (e.g. loaded from a file), without eviction.

        Args:
            anchors: anchors in insertion order; ids must be unique.
            policy: the new pool's policy.
            id_counters: next index per track and id letter; missing entries are derived from
                the anchors' ids so that no id is reused.
            clock: as in the constructor.
        """
        pool = cls(policy, clock)
        seen: set[str] = set()
        for a in anchors:
            if a.anchor_id in seen:
                raise ValueError(f"duplicate anchor id {a.anchor_id!r}")
            seen.add(a.anchor_id)
            pool._tracks.setdefault(a.track_id, []).append(a)
            counters = pool._next_index.setdefault(a.track_id, {s.id_letter: 0 for s in AnchorSource})
            suffix = a.anchor_id.rsplit("-", 1)[-1]
            if len(suffix) > 1 and suffix[0] == a.source.id_letter and suffix[1:].isdigit():
                counters[suffix[0]] = max(counters[suffix[0]], int(suffix[1:]) + 1)
        for track_id, given in (id_counters or {}).items():
            counters = pool._next_index.setdefault(track_id, {s.id_letter: 0 for s in AnchorSource})
            for letter, value in given.items():
                if letter not in counters:
                    raise ValueError(f"unknown id letter {letter!r} in id_counters")
                counters[letter] = max(counters[letter], int(value))
        return pool

    def replace_with(self, other: "AnchorPool") -> None:
        """Take over another pool's anchors and id counters (this pool's policy is kept)."""
        if other is self:
            return
        with other._lock:
            tracks = {t: list(a) for t, a in other._tracks.items()}
            counters = {t: dict(c) for t, c in other._next_index.items()}
        with self._lock:
            self._tracks = tracks
            self._next_index = counters

    def replace_from(self, path: Union[str, PathLike[str]], *,
                     expected_crop_shape: Optional[Sequence[int]] = None) -> None:
        """Load a saved pool and swap it in only if loading succeeded.

        The file is read with this pool's policy (a track with more anchors than its
        ``max_anchors_per_track`` is refused); ``expected_crop_shape`` as in
        :func:`hpe_core.anchors.persistence.load`.

        Raises:
            AnchorPoolFileError: the file is missing, corrupt, foreign, too new or outside the
                loader's limits; this pool is then left unchanged.
        """
        from hpe_core.anchors.persistence import load  # persistence imports this module

        self.replace_with(load(path, policy=self._policy, expected_crop_shape=expected_crop_shape))

    # ------------------------------------------------------------------ internals
    def _now(self, created_at: Optional[float]) -> float:
        return float(self._clock() if created_at is None else created_at)

    def _peek_id(self, track_id: str, source: AnchorSource) -> str:
        counters = self._next_index.get(track_id, {})
        return f"{track_id}-{source.id_letter}{counters.get(source.id_letter, 0)}"

    def _add_root(
        self,
        source: AnchorSource,
        track_id: str,
        crop: NDArray[np.uint8],
        pose_cam: ArrayLike,
        virtual_from_cam: Optional[ArrayLike],
        quality: float,
        uncertainty_deg: float,
        created_at: Optional[float],
        crop_from_cam: Optional[ArrayLike] = None,
    ) -> Anchor:
        _check_track_id(track_id)
        with self._lock:
            anchor = Anchor(
                anchor_id=self._peek_id(track_id, source),
                track_id=track_id,
                crop=crop,
                pose_cam=pose_cam,
                virtual_from_cam=np.eye(3) if virtual_from_cam is None else virtual_from_cam,
                source=source,
                quality=quality,
                created_at=self._now(created_at),
                accumulated_uncertainty_deg=uncertainty_deg,
                crop_from_cam=crop_from_cam,
            )
            self._insert(anchor)
            return anchor

    def _insert(self, anchor: Anchor) -> tuple[str, ...]:
        """Evict as needed, then append ``anchor`` and advance its id counter (lock held)."""
        anchors = self._tracks.get(anchor.track_id, [])
        victims = self._eviction_plan(anchors, anchor)
        evicted = tuple(a.anchor_id for a in victims)
        kept = [a for a in anchors if a.anchor_id not in evicted]
        kept.append(anchor)
        self._tracks[anchor.track_id] = kept
        self._evictions += len(victims)
        counters = self._next_index.setdefault(anchor.track_id, {s.id_letter: 0 for s in AnchorSource})
        counters[anchor.source.id_letter] += 1
        return evicted

    def _eviction_plan(self, anchors: list[Anchor], incoming: Anchor) -> list[Anchor]:
        """Anchors to evict so that ``incoming`` fits (module docstring); raises when impossible."""
        capacity = self._policy.max_anchors_per_track
        remaining = list(anchors)
        victims: list[Anchor] = []
        while len(remaining) >= capacity:
            candidates = [a for a in remaining if a.source is not AnchorSource.CALIBRATED]
            if not candidates and not self._policy.calibrated_never_evicted:
                candidates = list(remaining)
            if not candidates:
                raise AnchorPoolFullError(
                    f"track {incoming.track_id!r} holds {len(remaining)} calibrated anchors (capacity {capacity}) "
                    "and calibrated anchors are never evicted; remove one first"
                )
            everyone = remaining + [incoming]
            R = np.stack([a.rotation_virtual for a in everyone])  # [N, 3, 3]
            dist = np.asarray(geodesic_angle_deg(R[:, None], R[None, :]), dtype=np.float64)
            np.fill_diagonal(dist, np.inf)
            index = {a.anchor_id: i for i, a in enumerate(everyone)}
            victim = min(
                candidates,
                key=lambda a: (round(float(dist[index[a.anchor_id]].min()), 6), a.quality, a.created_at, a.anchor_id),
            )
            victims.append(victim)
            remaining = [a for a in remaining if a is not victim]
        return victims
