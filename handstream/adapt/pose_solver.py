"""The solvers behind :func:`handstream.adapt.extrinsics.estimate_extrinsics`: relative pose (essential
matrix), PnP, chaining by bone lengths, triangulation with noise-corrected bone measurement, and the
pixel-space bundle adjustment (steps 2-5 of :mod:`handstream.adapt.extrinsics`'s method).

Legend: ``V`` views (cameras), ``P`` observations of one view (``F * H * K``: frames x hands x joints).
The arguments they share: ``cams`` the V cameras (intrinsics and lens; their poses unused), ``poses`` a list
of V ``(R (3, 3), t (3,))`` with ``X_cam = R X + t`` (None: not placed yet), ``pixels (V, P, 2)`` distorted
pixels (NaN: not observed), ``weights (V, P)`` detection confidences (0: not observed), ``normalized
(V, P, 2)`` the lens-free coordinates of ``pixels``, ``valid (V, P)`` usable observations, ``thr (V,)`` the
RANSAC threshold of each view in normalized units. The unit of length is the reconstruction's until the
caller sets the metric scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from handstream.adapt.bones import MAX_BONE_NOISE, unbiased_bone_lengths
from handstream.errors import HandstreamError
from handstream.geometry import Camera, Rig
from handstream.geometry.camera import rodrigues_to_matrix
from handstream.skeleton import NUM_JOINTS

MAX_BONE_NOISE_CHAIN = 0.4  # bone samples' noise limit when chaining (fewer samples; both sides measured alike)
_HUBER_PX = 2.0  # refinement: residuals above this (pixels) are down-weighted ...
_OUTLIER_PX = 12.0  # ... and above this dropped (a wrong detection, or a joint swapped between hands)
_TRIANGULATE_PX = 8.0  # RANSAC threshold of the triangulation, ideal pixels
_MAX_ESSENTIAL = 3000  # correspondences the essential matrix is estimated from (see relative_pose)
_MAX_BA_JOINTS = 20000  # joints the bundle adjustment uses at most (~300 frames of two hands in view)


def relative_pose(a: np.ndarray, b: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Pose of camera b relative to camera a from normalized correspondences a, b (N, 2).

    The essential matrix is found on at most ``_MAX_ESSENTIAL`` correspondences spread evenly over the
    input (USAC's local optimization grows faster than linearly with N; more points barely change the
    result, and the refinement uses all of them); the inliers are then counted on all of them.

    Returns:
        ``R (3, 3)``, unit ``t (3,)`` with ``X_b = R X_a + t``, and the number of correspondences within
        ``thr`` (Sampson distance, normalized units) of the epipolar geometry with the joint in front of
        both cameras.
    """
    I3 = np.eye(3)
    sub = np.linspace(0, len(a) - 1, min(len(a), _MAX_ESSENTIAL)).astype(int)
    # USAC_ACCURATE (RANSAC with local optimization) is 10-30x more accurate than plain RANSAC, which keeps
    # the best minimal 5-point model: 0.04-0.2 vs 1-3 degrees on thousands of hand joints with 1 px noise.
    method = getattr(cv2, "USAC_ACCURATE", cv2.RANSAC)
    E, _ = cv2.findEssentialMat(a[sub], b[sub], I3, method=method, prob=0.9999, threshold=thr, maxIters=5000)
    if E is None or E.shape[0] < 3:
        raise HandstreamError("estimate_extrinsics: the essential matrix could not be estimated (degenerate views)")
    best = None
    for i in range(0, E.shape[0] - E.shape[0] % 3, 3):  # the 5-point solver can return several solutions
        Ei = E[i : i + 3]
        mask = (_sampson(Ei, a, b) < thr).astype(np.uint8)[:, None]
        n, R, t, _ = cv2.recoverPose(Ei, a, b, I3, mask=mask)
        if best is None or n > best[0]:
            best = (n, R, t.reshape(3))
    assert best is not None
    n, R, t = best
    return R, t / np.linalg.norm(t), int(n)


def _sampson(E: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sampson distance (N,) of correspondences a, b (N, 2) to the epipolar geometry ``b^T E a = 0``."""
    ha = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    hb = np.concatenate([b, np.ones((len(b), 1))], axis=1)
    Ea = ha @ E.T
    Etb = hb @ E
    num = np.sum(hb * Ea, axis=1)
    den = Ea[:, 0] ** 2 + Ea[:, 1] ** 2 + Etb[:, 0] ** 2 + Etb[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-300))


def pnp(X: np.ndarray, xy: np.ndarray, thr: float) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """Pose (R, t) of a camera from 3D points X (N, 3) and their normalized coordinates xy (N, 2)."""
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        X,
        xy,
        np.eye(3),
        None,
        iterationsCount=2000,
        reprojectionError=thr,
        confidence=0.9999,
        flags=cv2.SOLVEPNP_SQPNP,
    )
    if not ok or inliers is None or len(inliers) < 6:
        raise HandstreamError("estimate_extrinsics: PnP found no consistent pose (degenerate views)")
    idx = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(X[idx], xy[idx], np.eye(3), None, rvec, tvec)
    return (rodrigues_to_matrix(rvec.ravel()), tvec.reshape(3)), int(len(idx))


def chain(cams, poses, placed, u, v, pixels, normalized, weights, valid, thr):
    """Place camera v relative to placed camera u by the essential matrix; baseline length from bone lengths.

    The pair (u, v) with a unit baseline triangulates hands whose median bone lengths, compared with those of
    the reconstruction so far (all placed cameras), give the baseline in the reconstruction's unit.
    """
    both = valid[u] & valid[v]
    R_uv, t_uv, inl = relative_pose(normalized[u, both], normalized[v, both], float(np.sqrt(thr[u] * thr[v])))
    pair_poses = [None] * len(cams)
    pair_poses[u], pair_poses[v] = (np.eye(3), np.zeros(3)), (R_uv, t_uv)
    ratio = measure_bones(cams, poses, placed, pixels, weights, MAX_BONE_NOISE_CHAIN)[0]
    ratio = ratio / measure_bones(cams, pair_poses, [u, v], pixels, weights, MAX_BONE_NOISE_CHAIN)[0]
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size < 3:
        raise HandstreamError(
            f"camera {cams[v].name}: too few whole hands seen together with {cams[u].name} to chain its "
            "position (record more frames with whole hands seen by both)"
        )
    s = float(np.median(ratio))
    R_u, t_u = poses[u]
    return (R_uv @ R_u, R_uv @ t_u + s * t_uv), inl


def triangulate(cams, poses, views, pixels, weights, full: bool = False):
    """(P, 3) joints triangulated from the given views with their current poses; NaN where < 2 views agree.

    ``full``: return the whole :class:`handstream.ops.Triangulation` (inliers (len(views), P)) instead.
    """
    rig = Rig(cams[v].with_pose(*poses[v]) for v in views)
    result = rig.triangulate(
        pixels[views], weights[views], method="ransac", threshold_px=_TRIANGULATE_PX, min_views=2, refine=True
    )
    return result if full else np.asarray(result.points)


def measure_bones(cams, poses, views, pixels, weights, max_noise=MAX_BONE_NOISE):
    """Triangulate with the given views and measure the bones, noise-corrected (:func:`unbiased_bone_lengths`).

    The covariance of each joint is ``sigma^2 (sum_v B_v^T B_v)^-1`` over the views it was triangulated from
    (``B_v``: d pixels / d joint of view v), with ``sigma`` the detection noise estimated from the residuals
    (sum of squares over the degrees of freedom, ``2 * observations - 3 * joints``).

    Returns:
        lengths (B,) in the poses' unit (NaN: too rarely measured), joints (P, 3) and sigma in pixels.
    """
    tri = triangulate(cams, poses, views, pixels, weights, full=True)
    X = np.asarray(tri.points)
    inl = np.asarray(tri.inliers)
    P = len(X)
    found = np.isfinite(X).all(axis=-1)
    info = np.zeros((P, 3, 3))
    sq, n_obs = 0.0, 0
    for i, v in enumerate(views):
        R, t = poses[v]
        m = found & inl[i] & np.isfinite(pixels[v]).all(axis=-1)
        pix, Jc = _pixel_jacobian(cams[v], X[m] @ R.T + t)
        B = Jc @ R
        info[m] += np.einsum("nki,nkj->nij", B, B)
        sq += float(np.sum((pix - pixels[v, m]) ** 2))
        n_obs += int(m.sum())
    dof = 2 * n_obs - 3 * int(found.sum())
    sigma2 = sq / dof if dof > 0 else float("nan")
    cov = np.full((P, 3, 3), np.nan)
    good = found & (np.linalg.det(info) > 0)
    cov[good] = sigma2 * np.linalg.inv(info[good])
    lengths = unbiased_bone_lengths(X.reshape(-1, NUM_JOINTS, 3), cov.reshape(-1, NUM_JOINTS, 3, 3), max_noise)
    return lengths, X, float(np.sqrt(sigma2))


def _project(cam: Camera, R: np.ndarray, t: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Distorted pixels (N, 2) of world points X (N, 3) for camera ``cam`` with pose (R, t); NaN behind it."""
    Xc = X @ R.T + t
    out = np.full((len(X), 2), np.nan)
    front = Xc[:, 2] > 1e-9
    out[front] = cam.distort(Xc[front, :2] / Xc[front, 2:3])
    return out


def _skew(a: np.ndarray) -> np.ndarray:
    """(N, 3) vectors -> (N, 3, 3) cross-product matrices ``[a]x``."""
    z = np.zeros(len(a))
    return np.stack(
        [
            np.stack([z, -a[:, 2], a[:, 1]], -1),
            np.stack([a[:, 2], z, -a[:, 0]], -1),
            np.stack([-a[:, 1], a[:, 0], z], -1),
        ],
        -2,
    )


def _pixel_jacobian(cam: Camera, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distorted pixels (N, 2) of camera-frame points Xc (N, 3) and their Jacobian d(pixels)/d(Xc) (N, 2, 3).

    Central differences (the lens models have no analytic Jacobian here), step 1e-6 of the depth.
    """
    pix = cam.distort(Xc[:, :2] / Xc[:, 2:3])
    J = np.empty((len(Xc), 2, 3))
    h = 1e-6 * np.abs(Xc[:, 2])
    for i in range(3):
        d = np.zeros_like(Xc)
        d[:, i] = h
        plus, minus = Xc + d, Xc - d
        diff = cam.distort(plus[:, :2] / plus[:, 2:3]) - cam.distort(minus[:, :2] / minus[:, 2:3])
        J[:, :, i] = diff / (2 * h[:, None])
    return pix, J


def bundle_adjust(cams, poses, X, pixels, weights, iterations: int = 6):
    """Joint Levenberg-Marquardt over all poses but camera 0's and the joints, in distorted pixels.

    Minimizes ``sum conf * huber(|reprojection error|)`` (``_HUBER_PX``) over the observations of the joints
    ``X (P, 3)`` whose reprojection error is below ``_OUTLIER_PX`` at the start (the others are outliers:
    wrong detections), at most ``_MAX_BA_JOINTS`` joints spread over the recording. The joints are
    eliminated with the Schur complement (3x3 blocks), leaving a 6(V-1) system. The overall scale is free
    (the gauge; LM damping keeps the system regular) and is set later from the bones. Returns the new poses.
    """
    V = len(cams)
    Rs = [np.array(p[0], dtype=np.float64) for p in poses]
    ts = [np.array(p[1], dtype=np.float64) for p in poses]
    finite = np.nonzero(np.isfinite(X).all(axis=-1))[0]
    ov, op = [], []
    for v in range(V):
        err = np.linalg.norm(_project(cams[v], Rs[v], ts[v], X[finite]) - pixels[v, finite], axis=-1)
        keep = np.nonzero(np.isfinite(err) & (err < _OUTLIER_PX) & (weights[v, finite] > 0))[0]
        ov.append(np.full(keep.size, v))
        op.append(keep)
    ov, op = np.concatenate(ov), np.concatenate(op)
    enough = np.bincount(op, minlength=finite.size) >= 2
    sel = enough[op]
    ov, op = ov[sel], op[sel]
    used = np.unique(op)
    if used.size > _MAX_BA_JOINTS:  # evenly over the recording: the poses need no more, memory grows with P
        used = used[np.linspace(0, used.size - 1, _MAX_BA_JOINTS).astype(int)]
        sel = np.isin(op, used)
        ov, op = ov[sel], op[sel]
    used, op = np.unique(op, return_inverse=True)  # point index of each observation, 0..P-1
    P = used.size
    if P < 10:
        return poses
    Xs = X[finite[used]].copy()
    uv = pixels[ov, finite[used][op]]
    conf = weights[ov, finite[used][op]]
    by_view = [np.nonzero(ov == v)[0] for v in range(V)]

    def residuals(Rs, ts, Xs):
        r = np.empty((len(ov), 2))
        for v in range(V):
            m = by_view[v]
            Xc = Xs[op[m]] @ Rs[v].T + ts[v]
            r[m] = cams[v].distort(Xc[:, :2] / Xc[:, 2:3]) - uv[m]
            r[m[Xc[:, 2] <= 1e-9]] = np.inf  # behind the camera: reject the step
        return r

    def cost(r):
        a = np.linalg.norm(r, axis=-1)
        if not np.all(np.isfinite(a)):
            return np.inf
        return float(np.sum(conf * np.where(a < _HUBER_PX, a * a, 2 * _HUBER_PX * a - _HUBER_PX**2)))

    r = residuals(Rs, ts, Xs)
    c = cost(r)
    lam = 1e-3
    done = False
    for _ in range(iterations):
        a = np.linalg.norm(r, axis=-1)
        w = conf * np.where(a < _HUBER_PX, 1.0, _HUBER_PX / np.maximum(a, 1e-12))  # IRLS weights
        A = np.empty((len(ov), 2, 6))  # d r / d (rotation increment, translation)
        B = np.empty((len(ov), 2, 3))  # d r / d X
        for v in range(V):
            m = by_view[v]
            RX = Xs[op[m]] @ Rs[v].T
            _, Jc = _pixel_jacobian(cams[v], RX + ts[v])
            A[m, :, :3] = -Jc @ _skew(RX)  # R <- exp(dw) R: d(Xc) = dw x RX
            A[m, :, 3:] = Jc
            B[m] = Jc @ Rs[v]
        Aw, Bw = A * w[:, None, None], B * w[:, None, None]
        AtA = np.matmul(Aw.transpose(0, 2, 1), A)
        Hcc = np.stack([AtA[m].sum(axis=0) for m in by_view])  # (V, 6, 6)
        gc = np.stack([np.matmul(Aw[m].transpose(0, 2, 1), r[m][:, :, None]).sum(axis=0)[:, 0] for m in by_view])
        Hpp = np.zeros((P, 3, 3))
        np.add.at(Hpp, op, np.matmul(Bw.transpose(0, 2, 1), B))
        gp = np.zeros((P, 3))
        np.add.at(gp, op, np.matmul(Bw.transpose(0, 2, 1), r[:, :, None])[:, :, 0])
        Hcp = np.zeros((P, V, 6, 3))  # camera-joint blocks; one observation per (joint, view)
        Hcp[op, ov] = np.matmul(Aw.transpose(0, 2, 1), B)
        Hcp_flat = Hcp.reshape(P, 6 * V, 3)
        improved = False
        for _ in range(10):
            Hcc_d = Hcc + lam * (np.einsum("vii->vi", Hcc)[:, :, None] * np.eye(6) + 1e-9 * np.eye(6))
            Hpp_d = Hpp + lam * (np.einsum("pii->pi", Hpp)[:, :, None] * np.eye(3) + 1e-9 * np.eye(3))
            Hpp_inv = np.linalg.inv(Hpp_d)
            T = np.matmul(Hcp_flat, Hpp_inv)  # (P, 6V, 3)
            T_rows = T.transpose(1, 0, 2).reshape(6 * V, 3 * P)
            S = -T_rows @ Hcp_flat.transpose(1, 0, 2).reshape(6 * V, 3 * P).T  # Schur complement
            for v in range(V):
                S[6 * v : 6 * v + 6, 6 * v : 6 * v + 6] += Hcc_d[v]
            rhs = -gc.reshape(6 * V) + T_rows @ gp.reshape(3 * P)
            dc = np.zeros(6 * V)
            try:
                dc[6:] = np.linalg.solve(S[6:, 6:], rhs[6:])  # camera 0 stays at the origin
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            dcv = dc.reshape(V, 6)
            back = np.matmul(Hcp_flat.transpose(0, 2, 1), dc)  # (P, 3): sum_v Hcp[p, v]^T dc_v
            dX = np.matmul(Hpp_inv, (-gp - back)[:, :, None])[:, :, 0]
            Rs_new = [rodrigues_to_matrix(dcv[v, :3]) @ Rs[v] for v in range(V)]
            ts_new = [ts[v] + dcv[v, 3:] for v in range(V)]
            Xs_new = Xs + dX
            r_new = residuals(Rs_new, ts_new, Xs_new)
            c_new = cost(r_new)
            if c_new < c:
                done = c - c_new < 1e-9 * c
                Rs, ts, Xs, r, c = Rs_new, ts_new, Xs_new, r_new, c_new
                lam = max(lam / 10, 1e-7)
                improved = True
                break
            lam *= 10
        if not improved or done:
            break
    return [(Rs[v], ts[v]) for v in range(V)]
