// Per-point math of multi-view triangulation, shared by triangulate_cpu.cpp and triangulate.cu.
//
// One call of triangulate_point() handles one point seen by up to kMaxViews cameras:
//   inputs   pts  (V, P, 2) undistorted pixels, NaN = not seen
//            conf (V, P) weights, or null for all ones; w <= 0 or NaN = not seen
//            proj (V, 3, 4) projection matrices K [R | t]
//   outputs  point (P, 3), reproj_error (P,) mean pixel distance over the views used,
//            inliers (V, P) 1 where a view was used, n_views (P,) number of views used.
// The point is finite exactly when n_views >= min_views; otherwise it is NaN, never an exception.
//
// Solver: confidence-weighted DLT written as a 3x3 linear least-squares problem in X (the point is
// never at infinity for a hand in front of a rig). Each view adds the rows x P3 - P1 and y P3 - P2,
// scaled first by 1 / |P3[:3]| (algebraic error = depth x pixel error) and then, in a second pass,
// by 1 / (P3 . X) of the first solution, so the residual approaches the pixel error.
// RANSAC: every pair of views (deterministic order) proposes a 2-view solution in front of both
// cameras; the proposal with the most views within threshold_px wins (ties: lowest truncated squared
// error); the inliers are re-solved, re-scored once, and re-solved if the set changed.
// Refinement: Gauss-Newton on the confidence-weighted squared pixel error over the views used.
#pragma once

#include <cmath>

#include "handstream/common.h"

namespace hs {
namespace tri {

constexpr int kMaxViews = 16;
enum Method : int { kDlt = 0, kRansac = 1 };

struct Options {
  int method;           // kDlt or kRansac
  double threshold_px;  // RANSAC inlier threshold, pixels
  int min_views;        // fewer valid views -> NaN
  int refine_iters;     // Gauss-Newton iterations; 0 = no refinement
};

// One point's observations gathered from the strided inputs.
struct Views {
  int n;  // V
  double x[kMaxViews], y[kMaxViews], w[kMaxViews];
  bool valid[kMaxViews];
};

// Solve the symmetric 3x3 system A X = b, A given by its upper triangle
// a = (a00, a01, a02, a11, a12, a22), by cofactors. False when A is not clearly positive definite:
// a non-positive diagonal, or det(A) <= 1e-12 a00 a11 a22 (by Hadamard's inequality the ratio is in
// (0, 1] for a positive definite A; near 0 means the rays are (nearly) parallel).
HS_HOST_DEVICE bool solve3_sym(const double a[6], const double b[3], double X[3]) {
  const double c00 = a[3] * a[5] - a[4] * a[4];
  const double c01 = a[2] * a[4] - a[1] * a[5];
  const double c02 = a[1] * a[4] - a[2] * a[3];
  const double c11 = a[0] * a[5] - a[2] * a[2];
  const double c12 = a[1] * a[2] - a[0] * a[4];
  const double c22 = a[0] * a[3] - a[1] * a[1];
  const double det = a[0] * c00 + a[1] * c01 + a[2] * c02;
  if (!(a[0] > 0.0 && a[3] > 0.0 && a[5] > 0.0 && det > 1e-12 * a[0] * a[3] * a[5])) return false;
  const double inv = 1.0 / det;
  X[0] = (c00 * b[0] + c01 * b[1] + c02 * b[2]) * inv;
  X[1] = (c01 * b[0] + c11 * b[1] + c12 * b[2]) * inv;
  X[2] = (c02 * b[0] + c12 * b[1] + c22 * b[2]) * inv;
  return is_finite(X[0]) && is_finite(X[1]) && is_finite(X[2]);
}

// a += k u u^T (upper triangle), b -= k u c
HS_HOST_DEVICE void accumulate(double a[6], double b[3], double k, const double u[3], double c) {
  a[0] += k * u[0] * u[0];
  a[1] += k * u[0] * u[1];
  a[2] += k * u[0] * u[2];
  a[3] += k * u[1] * u[1];
  a[4] += k * u[1] * u[2];
  a[5] += k * u[2] * u[2];
  b[0] -= k * u[0] * c;
  b[1] -= k * u[1] * c;
  b[2] -= k * u[2] * c;
}

// P3 . [X, 1] for view v (depth up to the scale of P).
HS_HOST_DEVICE double proj_w(const double* P, const double X[3]) {
  return P[8] * X[0] + P[9] * X[1] + P[10] * X[2] + P[11];
}

// Project X through P; false when the point is on the camera plane.
HS_HOST_DEVICE bool project(const double* P, const double X[3], double* u, double* v) {
  const double c = proj_w(P, X);
  if (!(fabs(c) > 0.0)) return false;
  *u = (P[0] * X[0] + P[1] * X[1] + P[2] * X[2] + P[3]) / c;
  *v = (P[4] * X[0] + P[5] * X[1] + P[6] * X[2] + P[7]) / c;
  return true;
}

HS_HOST_DEVICE double pixel_error2(const double* P, const double X[3], double x, double y) {
  double u, v;
  if (!project(P, X, &u, &v)) return nan_d();
  return (u - x) * (u - x) + (v - y) * (v - y);
}

// Weighted linear solve over the views in mask. passes = 1 + number of depth re-weightings.
HS_HOST_DEVICE bool solve_dlt(const Views& in, const double* proj, const bool* mask, int passes, double X[3]) {
  for (int pass = 0; pass < passes; ++pass) {
    double a[6] = {0, 0, 0, 0, 0, 0};
    double b[3] = {0, 0, 0};
    for (int v = 0; v < in.n; ++v) {
      if (!mask[v]) continue;
      const double* P = proj + 12 * v;
      // Row scale: 1/|P3[:3]| first (residual = depth x pixel error), then 1/(P3 . X) of the
      // previous pass (residual ~ pixel error).
      double s = pass == 0 ? sqrt(P[8] * P[8] + P[9] * P[9] + P[10] * P[10]) : fabs(proj_w(P, X));
      if (!(s > 0.0)) s = 1.0;
      const double k = in.w[v] / (s * s);  // weight of the squared row residuals
      const double ux[3] = {in.x[v] * P[8] - P[0], in.x[v] * P[9] - P[1], in.x[v] * P[10] - P[2]};
      const double uy[3] = {in.y[v] * P[8] - P[4], in.y[v] * P[9] - P[5], in.y[v] * P[10] - P[6]};
      accumulate(a, b, k, ux, in.x[v] * P[11] - P[3]);
      accumulate(a, b, k, uy, in.y[v] * P[11] - P[7]);
    }
    if (!solve3_sym(a, b, X)) return false;
  }
  return true;
}

// Weighted squared pixel error over mask.
HS_HOST_DEVICE double weighted_cost(const Views& in, const double* proj, const bool* mask, const double X[3]) {
  double cost = 0.0;
  for (int v = 0; v < in.n; ++v) {
    if (mask[v]) cost += in.w[v] * pixel_error2(proj + 12 * v, X, in.x[v], in.y[v]);
  }
  return cost;
}

// Gauss-Newton on sum_v w_v |project(P_v, X) - x_v|^2 over mask. Stops when a step does not lower
// the cost; X is only ever replaced by a better point.
HS_HOST_DEVICE void refine_gn(const Views& in, const double* proj, const bool* mask, int iters, double X[3]) {
  double cost = weighted_cost(in, proj, mask, X);
  for (int it = 0; it < iters; ++it) {
    double a[6] = {0, 0, 0, 0, 0, 0};
    double g[3] = {0, 0, 0};
    for (int v = 0; v < in.n; ++v) {
      if (!mask[v]) continue;
      const double* P = proj + 12 * v;
      const double c = proj_w(P, X);
      if (!(fabs(c) > 0.0)) return;
      const double u = (P[0] * X[0] + P[1] * X[1] + P[2] * X[2] + P[3]) / c;
      const double vv = (P[4] * X[0] + P[5] * X[1] + P[6] * X[2] + P[7]) / c;
      const double ju[3] = {(P[0] - u * P[8]) / c, (P[1] - u * P[9]) / c, (P[2] - u * P[10]) / c};
      const double jv[3] = {(P[4] - vv * P[8]) / c, (P[5] - vv * P[9]) / c, (P[6] - vv * P[10]) / c};
      accumulate(a, g, in.w[v], ju, u - in.x[v]);
      accumulate(a, g, in.w[v], jv, vv - in.y[v]);
    }
    double d[3];
    if (!solve3_sym(a, g, d)) return;
    const double Xn[3] = {X[0] + d[0], X[1] + d[1], X[2] + d[2]};
    const double cost_n = weighted_cost(in, proj, mask, Xn);
    if (!(cost_n < cost)) return;
    X[0] = Xn[0];
    X[1] = Xn[1];
    X[2] = Xn[2];
    cost = cost_n;
  }
}

// Mark the valid views whose pixel error at X is below threshold; returns their count and the
// truncated squared error over all valid views (the RANSAC tie-breaker).
HS_HOST_DEVICE int score(const Views& in, const double* proj, const double X[3], double thr, bool* inl,
                         double* cost) {
  int n = 0;
  double c = 0.0;
  for (int v = 0; v < in.n; ++v) {
    inl[v] = false;
    if (!in.valid[v]) continue;
    const double e2 = pixel_error2(proj + 12 * v, X, in.x[v], in.y[v]);
    if (e2 < thr * thr) {  // false for NaN
      inl[v] = true;
      ++n;
      c += e2;
    } else {
      c += thr * thr;
    }
  }
  *cost = c;
  return n;
}

constexpr int kFinalPasses = 2;       // 1 plain + 1 depth re-weighting
constexpr int kHypothesisPasses = 1;  // a RANSAC proposal only has to be good enough to count votes

// Triangulate point p of P. See the contract at the top of this file.
HS_HOST_DEVICE void triangulate_point(int V, int64_t P, int64_t p, const double* pts, const double* conf,
                                      const double* proj, const Options& opt, double* out_point,
                                      double* out_err, uint8_t* out_inliers, int32_t* out_nviews) {
  Views in;
  in.n = V;
  int n_valid = 0;
  for (int v = 0; v < V; ++v) {
    const int64_t i = (int64_t)v * P + p;
    in.x[v] = pts[2 * i];
    in.y[v] = pts[2 * i + 1];
    in.w[v] = conf ? conf[i] : 1.0;
    in.valid[v] = is_finite(in.x[v]) && is_finite(in.y[v]) && is_finite(in.w[v]) && in.w[v] > 0.0;
    n_valid += in.valid[v] ? 1 : 0;
  }

  bool used[kMaxViews];
  for (int v = 0; v < V; ++v) used[v] = false;
  int n_used = 0;
  double X[3] = {0, 0, 0};
  bool ok = n_valid >= opt.min_views && n_valid >= 2;

  if (ok && opt.method == kDlt) {
    for (int v = 0; v < V; ++v) used[v] = in.valid[v];
    n_used = n_valid;
    ok = solve_dlt(in, proj, used, kFinalPasses, X);
  } else if (ok) {  // RANSAC over view pairs
    int best_n = -1;
    double best_cost = 0.0;
    bool pair[kMaxViews], inl[kMaxViews];
    for (int v = 0; v < V; ++v) pair[v] = false;
    for (int a = 0; a < V; ++a) {
      if (!in.valid[a]) continue;
      for (int b = a + 1; b < V; ++b) {
        if (!in.valid[b]) continue;
        pair[a] = pair[b] = true;
        double H[3];
        const bool solved = solve_dlt(in, proj, pair, kHypothesisPasses, H);
        pair[a] = pair[b] = false;
        // A proposal behind either camera of its pair is a false intersection of the rays.
        if (!solved || !(proj_w(proj + 12 * a, H) > 0.0) || !(proj_w(proj + 12 * b, H) > 0.0)) continue;
        double cost;
        const int n = score(in, proj, H, opt.threshold_px, inl, &cost);
        if (n > best_n || (n == best_n && cost < best_cost)) {
          best_n = n;
          best_cost = cost;
          for (int v = 0; v < V; ++v) used[v] = inl[v];
        }
      }
    }
    n_used = best_n < 0 ? 0 : best_n;
    ok = n_used >= opt.min_views && n_used >= 2 && solve_dlt(in, proj, used, kFinalPasses, X);
    if (ok) {
      double cost;
      const int n = score(in, proj, X, opt.threshold_px, inl, &cost);
      bool changed = false;
      for (int v = 0; v < V; ++v) changed = changed || (inl[v] != used[v]);
      double X2[3];
      if (changed && n >= opt.min_views && n >= 2 && solve_dlt(in, proj, inl, kFinalPasses, X2)) {
        for (int v = 0; v < V; ++v) used[v] = inl[v];
        n_used = n;
        X[0] = X2[0];
        X[1] = X2[1];
        X[2] = X2[2];
      }
    }
  } else {
    n_used = n_valid;
  }

  if (ok && opt.refine_iters > 0) refine_gn(in, proj, used, opt.refine_iters, X);

  if (!ok) {
    for (int c = 0; c < 3; ++c) out_point[3 * p + c] = nan_d();
    out_err[p] = nan_d();
    for (int v = 0; v < V; ++v) out_inliers[(int64_t)v * P + p] = 0;
    // A failed solve of enough views (parallel rays) reports 0 views: the point is unknown.
    out_nviews[p] = n_used < opt.min_views ? n_used : 0;
    return;
  }
  double err = 0.0;
  for (int v = 0; v < V; ++v) {
    out_inliers[(int64_t)v * P + p] = used[v] ? 1 : 0;
    if (used[v]) err += sqrt(pixel_error2(proj + 12 * v, X, in.x[v], in.y[v]));
  }
  for (int c = 0; c < 3; ++c) out_point[3 * p + c] = X[c];
  out_err[p] = err / (double)n_used;
  out_nviews[p] = n_used;
}

}  // namespace tri
}  // namespace hs
