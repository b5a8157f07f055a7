"""Head pose: estimators (:mod:`.estimators`), the batch runner behind ``fercurate pose`` (:mod:`.runner`),
the 3D face models (:mod:`.model3d`), rotation geometry (:mod:`.geometry`) and the paper-compatible
calibration used by ``fercurate subsets build --calibration openface`` (:mod:`.calibration`).

Angles are degrees in the AFLW2000-3D / 300W-LP convention: yaw > 0 when the face turns toward the
image's left edge, pitch > 0 chin up, roll > 0 clockwise as seen in the image.
"""
