"""Faces: detection, landmarks (MediaPipe face mesh, dlib 68) and alignment, with models shipped in packages.

Start with :func:`fercurate.faces.landmarks.detect`::

    from fercurate.faces import detect
    lm = detect(image_bgr, bbox=(x, y, w, h), method="mediapipe")   # or method="dlib"
    if lm.ok:
        mouth = lm.region("mouth"); pts68 = lm.ibug68()
"""

from fercurate.faces.landmarks import (
    IBUG68_FROM_MEDIAPIPE,
    KINDS,
    METHODS,
    REGIONS_68,
    REGIONS_MEDIAPIPE,
    FaceLandmarks,
    detect,
    detect_batch,
)

__all__ = [
    "IBUG68_FROM_MEDIAPIPE",
    "KINDS",
    "METHODS",
    "REGIONS_68",
    "REGIONS_MEDIAPIPE",
    "FaceLandmarks",
    "detect",
    "detect_batch",
]
