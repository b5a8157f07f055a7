"""Rotations, Euler angles and rigid fits (Procrustes, PnP) for head pose, vectorised over faces.

Frames. The camera frame is OpenCV's: x to the image's right, y down, z forward (away from the
camera). A head model is expressed in a head frame that coincides with the camera frame when the face
looks straight into the camera (x toward the image's right, y from forehead to chin, z from the nose
into the head). A head pose is the rotation ``R`` taking head-frame vectors to camera-frame vectors.

Angles (degrees), the convention of the AFLW2000-3D / 300W-LP head-pose benchmarks:

* ``yaw``   > 0 when the face turns toward the image's LEFT edge (the subject turns to their right),
* ``pitch`` > 0 when the chin goes up (the face looks up),
* ``roll``  > 0 when the face is rotated clockwise as seen in the image,

with ``R = Rz(roll) @ Ry(yaw) @ Rx(-pitch)`` (rotations about the camera's z, y and x axes; the
``-pitch`` because the camera's y axis points down). Rotating an image by ``a`` degrees clockwise
therefore adds exactly ``a`` to roll and leaves yaw and pitch unchanged; mirroring it negates yaw and
roll.
"""

from __future__ import annotations

import numpy as np


def rot_x(a: np.ndarray | float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray | float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray | float) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def matrix_from_euler(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """Rotation matrix (…, 3, 3) from yaw, pitch, roll in degrees (see the module docstring)."""
    y, p, r = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (yaw, pitch, roll))
    return rot_z(r) @ rot_y(y) @ rot_x(-p)


def euler_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(…, 3) yaw, pitch, roll in degrees from rotation matrices (…, 3, 3)."""
    rot = np.asarray(rot, dtype=np.float64)
    r20, r21, r22 = rot[..., 2, 0], rot[..., 2, 1], rot[..., 2, 2]
    yaw = np.arctan2(-r20, np.hypot(r21, r22))
    pitch = -np.arctan2(r21, r22)
    roll = np.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def rotation_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations ``a`` and ``b`` (…, 3, 3)."""
    rel = np.swapaxes(a, -1, -2) @ b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def procrustes(
    model: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted similarity fit ``points ≈ s · R · model + t`` (Umeyama), batched over faces.

    ``model`` (N, 3); ``points`` (B, N, 3); ``weights`` (N,) or (B, N). Returns ``R`` (B, 3, 3) proper
    rotations, ``s`` (B,), ``t`` (B, 3) and the weighted RMS residual (B,) in ``points`` units.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    mdl = np.asarray(model, dtype=np.float64)
    b, n, _ = pts.shape
    w = np.ones((b, n)) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), (b, n))
    w = w / w.sum(axis=1, keepdims=True)
    mu_m = np.einsum("bn,nk->bk", w, mdl)
    mu_p = np.einsum("bn,bnk->bk", w, pts)
    mc = mdl[None] - mu_m[:, None]
    pc = pts - mu_p[:, None]
    cov = np.einsum("bn,bni,bnj->bij", w, pc, mc)  # (B, 3, 3): points x model
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((b, 3))
    fix[:, 2] = d
    rot = (u * fix[:, None, :]) @ vt
    var_m = np.einsum("bn,bnk->b", w, mc**2)
    scale = (sig * fix).sum(axis=1) / var_m
    t = mu_p - scale[:, None] * np.einsum("bij,bj->bi", rot, mu_m)
    fitted = scale[:, None, None] * np.einsum("bij,bnj->bni", rot, mc) + mu_p[:, None]
    resid = np.sqrt(np.einsum("bn,bn->b", w, ((fitted - pts) ** 2).sum(-1)))
    return rot, scale, t, resid


def project(points3d: np.ndarray, focal: float, centre: tuple[float, float]) -> np.ndarray:
    """Pinhole projection of camera-frame points (…, N, 3) to pixels (…, N, 2)."""
    p = np.asarray(points3d, dtype=np.float64)
    return np.stack([p[..., 0] / p[..., 2] * focal + centre[0], p[..., 1] / p[..., 2] * focal + centre[1]], axis=-1)


def solve_pnp(
    model: np.ndarray,
    points2d: np.ndarray,
    focal: float,
    centre: tuple[float, float],
    *,
    weights: np.ndarray | None = None,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Robust perspective-n-point: SQPnP start, then Huber-reweighted Levenberg-Marquardt refinement.

    Each refinement round drops the weight of points whose reprojection error is large (occluded or
    badly placed landmarks) so that a few outliers cannot tilt the head. Returns ``R`` (3, 3), ``t`` (3,)
    and the weighted RMS reprojection error in pixels.
    """
    import cv2

    obj = np.ascontiguousarray(model, dtype=np.float64)
    img = np.ascontiguousarray(points2d, dtype=np.float64)
    cam = np.array([[focal, 0.0, centre[0]], [0.0, focal, centre[1]], [0.0, 0.0, 1.0]])
    base_w = np.ones(len(obj)) if weights is None else np.asarray(weights, dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, cam, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, cam, None, flags=cv2.SOLVEPNP_EPNP)
    w = base_w.copy()
    for _ in range(max(0, iterations)):
        keep = w > 0.05
        sub_w = np.sqrt(w[keep])
        # LM on weighted residuals: scale both sides around the current projection.
        rvec, tvec = _weighted_lm(obj[keep], img[keep], cam, rvec, tvec, sub_w)
        err = _reproj_error(obj, img, cam, rvec, tvec)
        delta = 1.345 * max(np.median(err) * 1.4826, 1e-6)
        w = base_w * np.where(err <= delta, 1.0, delta / np.maximum(err, 1e-12))
    err = _reproj_error(obj, img, cam, rvec, tvec)
    rms = float(np.sqrt(np.sum(w * err**2) / np.sum(w)))
    rot, _ = cv2.Rodrigues(rvec)
    return rot, tvec.reshape(3), rms


def _reproj_error(obj: np.ndarray, img: np.ndarray, cam: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    import cv2

    proj, _ = cv2.projectPoints(obj, rvec, tvec, cam, None)
    return np.linalg.norm(proj.reshape(-1, 2) - img, axis=1)


def _weighted_lm(
    obj: np.ndarray, img: np.ndarray, cam: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, sqrt_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton/LM steps on sqrt(w)-weighted reprojection residuals (OpenCV gives the Jacobians)."""
    import cv2

    rvec = rvec.reshape(3, 1).astype(np.float64)
    tvec = tvec.reshape(3, 1).astype(np.float64)
    lam = 1e-3
    proj, jac = cv2.projectPoints(obj, rvec, tvec, cam, None)
    res = (proj.reshape(-1, 2) - img) * sqrt_w[:, None]
    cost = float((res**2).sum())
    for _ in range(20):
        j = jac[:, :6].reshape(-1, 2, 6) * sqrt_w[:, None, None]
        j = j.reshape(-1, 6)
        r = res.reshape(-1)
        h = j.T @ j
        g = j.T @ r
        step = -np.linalg.solve(h + lam * np.diag(np.diag(h) + 1e-9), g)
        rv2, tv2 = rvec + step[:3, None], tvec + step[3:, None]
        proj2, jac2 = cv2.projectPoints(obj, rv2, tv2, cam, None)
        res2 = (proj2.reshape(-1, 2) - img) * sqrt_w[:, None]
        cost2 = float((res2**2).sum())
        if cost2 < cost:
            rvec, tvec, res, jac = rv2, tv2, res2, jac2
            improvement = cost - cost2
            cost = cost2
            lam = max(lam / 10, 1e-9)
            if improvement < 1e-10 * max(cost, 1e-12):
                break
        else:
            lam *= 10
            if lam > 1e6:
                break
    return rvec, tvec
