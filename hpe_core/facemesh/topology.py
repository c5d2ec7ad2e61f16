"""Landmark groups of MediaPipe's 468-point face mesh and the robust weights derived from them.

Index lists are facts of the published mesh topology (MediaPipe's face-mesh connection and
iris-refinement tables): lips, eyelid contours, eyebrows and the eye corners. Image-left /
image-right refer to a frontal face: "left" (33-133) is the eye on the image's left, the
subject's right eye.

Points 468-477 are the iris points this project appends (:mod:`hpe_core.facemesh.runtime`).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

NUM_POINTS = 478  # 468 mesh points + 2 x 5 iris points

#: Outer and inner lip contours (the mouth moves with speech and expressions).
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415)
#: Inner lip contour: moves most (mouth opening).
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415)
#: Eyelid contours, 16 per eye, in the order of the iris network's refined contour.
LEFT_EYE_REFINED = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_REFINED = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
#: Eye corners (outer, inner for the left-image eye; inner, outer for the other), used to
#: place the iris network's eye crop.
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)
#: Eyebrows (raised and frowned with expressions).
EYEBROWS = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107, 276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
#: Iris points (move with the gaze, not the head).
IRIS = tuple(range(468, 478))
#: Points that stay put on a face whatever its expression: nose bridge and tip, eye corners,
#: upper cheeks and temples (used to fit the mesh's depth scale and the canonical shape).
RIGID_CORE = (1, 4, 5, 6, 168, 197, 195, 33, 133, 362, 263, 234, 454, 127, 356, 10, 151, 9)

#: Weight of each group in a relative or absolute fit (1 elsewhere).
GROUP_WEIGHTS = {
    "inner_lips": 0.05,
    "lips": 0.2,
    "eyelids": 0.3,
    "eyebrows": 0.5,
    "iris": 0.0,
}


def expression_weights(jaw_mask: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """``[478]`` static per-point weights: points that move with expressions or gaze count less.

    Args:
        jaw_mask: ``[478]`` points on the jaw below the mouth (they move when the mouth opens);
            weighted like the lips. Derived from the canonical shape by
            :mod:`hpe_core.facemesh.canonical`.
    """
    w = np.ones(NUM_POINTS)
    if jaw_mask is not None:
        w[np.asarray(jaw_mask, dtype=bool)] = GROUP_WEIGHTS["lips"]
    w[list(EYEBROWS)] = GROUP_WEIGHTS["eyebrows"]
    w[list(LEFT_EYE_REFINED + RIGHT_EYE_REFINED)] = GROUP_WEIGHTS["eyelids"]
    w[list(LEFT_EYE_CORNERS + RIGHT_EYE_CORNERS)] = 1.0  # corners are fixed to the skull
    w[list(LIPS)] = GROUP_WEIGHTS["lips"]
    w[list(INNER_LIPS)] = GROUP_WEIGHTS["inner_lips"]
    w[list(IRIS)] = GROUP_WEIGHTS["iris"]
    return w
