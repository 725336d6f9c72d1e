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
// scaled first by 1 / |P3[:3]| (algebraic error = depth x pixel error) and then, in two more passes,
// by 1 / (P3 . X) of the previous solution, so the residual approaches the pixel error.
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

// Solve the 3x3 SPD system A X = b by Cholesky. False when A is (numerically) singular.
HS_HOST_DEVICE bool solve3_spd(const double A[9], const double b[3], double X[3]) {
  double L[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  const double scale = fabs(A[0]) + fabs(A[4]) + fabs(A[8]);
  if (!(scale > 0.0) || !is_finite(scale)) return false;
  const double eps = 1e-13 * scale;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j <= i; ++j) {
      double s = A[i * 3 + j];
      for (int k = 0; k < j; ++k) s -= L[i * 3 + k] * L[j * 3 + k];
      if (i == j) {
        if (!(s > eps)) return false;
        L[i * 3 + i] = sqrt(s);
      } else {
        L[i * 3 + j] = s / L[j * 3 + j];
      }
    }
  }
  double z[3];
  for (int i = 0; i < 3; ++i) {
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= L[i * 3 + k] * z[k];
    z[i] = s / L[i * 3 + i];
  }
  for (int i = 2; i >= 0; --i) {
    double s = z[i];
    for (int k = i + 1; k < 3; ++k) s -= L[k * 3 + i] * X[k];
    X[i] = s / L[i * 3 + i];
  }
  return is_finite(X[0]) && is_finite(X[1]) && is_finite(X[2]);
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

HS_HOST_DEVICE double pixel_error(const double* P, const double X[3], double x, double y) {
  double u, v;
  if (!project(P, X, &u, &v)) return nan_d();
  return sqrt((u - x) * (u - x) + (v - y) * (v - y));
}

// Weighted linear solve over the views in mask. passes = 1 + number of depth re-weightings.
HS_HOST_DEVICE bool solve_dlt(const Views& in, const double* proj, const bool* mask, int passes, double X[3]) {
  double prev[3] = {0, 0, 0};
  bool have_prev = false;
  for (int pass = 0; pass < passes; ++pass) {
    double A[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    double b[3] = {0, 0, 0};
    for (int v = 0; v < in.n; ++v) {
      if (!mask[v]) continue;
      const double* P = proj + 12 * v;
      double s;
      if (have_prev) {
        s = fabs(proj_w(P, prev));
      } else {
        s = sqrt(P[8] * P[8] + P[9] * P[9] + P[10] * P[10]);
      }
      if (!(s > 0.0)) s = 1.0;
      const double k = in.w[v] / (s * s);  // weight of the squared row residuals
      double r[2][4];
      for (int c = 0; c < 4; ++c) {
        r[0][c] = in.x[v] * P[8 + c] - P[c];
        r[1][c] = in.y[v] * P[8 + c] - P[4 + c];
      }
      for (int q = 0; q < 2; ++q) {
        for (int i = 0; i < 3; ++i) {
          for (int j = 0; j < 3; ++j) A[i * 3 + j] += k * r[q][i] * r[q][j];
          b[i] -= k * r[q][i] * r[q][3];
        }
      }
    }
    double Xn[3];
    if (!solve3_spd(A, b, Xn)) return false;
    X[0] = Xn[0];
    X[1] = Xn[1];
    X[2] = Xn[2];
    prev[0] = Xn[0];
    prev[1] = Xn[1];
    prev[2] = Xn[2];
    have_prev = true;
  }
  return true;
}

// Gauss-Newton on sum_v w_v |project(P_v, X) - x_v|^2 over mask. Stops when a step does not lower
// the cost; X is only ever replaced by a better point.
HS_HOST_DEVICE void refine_gn(const Views& in, const double* proj, const bool* mask, int iters, double X[3]) {
  double cost = 0.0;
  for (int v = 0; v < in.n; ++v) {
    if (!mask[v]) continue;
    const double e = pixel_error(proj + 12 * v, X, in.x[v], in.y[v]);
    cost += in.w[v] * e * e;
  }
  for (int it = 0; it < iters; ++it) {
    double A[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    double g[3] = {0, 0, 0};
    for (int v = 0; v < in.n; ++v) {
      if (!mask[v]) continue;
      const double* P = proj + 12 * v;
      const double c = proj_w(P, X);
      if (!(fabs(c) > 0.0)) return;
      const double u = (P[0] * X[0] + P[1] * X[1] + P[2] * X[2] + P[3]) / c;
      const double vv = (P[4] * X[0] + P[5] * X[1] + P[6] * X[2] + P[7]) / c;
      double J[2][3];
      for (int i = 0; i < 3; ++i) {
        J[0][i] = (P[i] - u * P[8 + i]) / c;
        J[1][i] = (P[4 + i] - vv * P[8 + i]) / c;
      }
      const double res[2] = {u - in.x[v], vv - in.y[v]};
      for (int q = 0; q < 2; ++q) {
        for (int i = 0; i < 3; ++i) {
          for (int j = 0; j < 3; ++j) A[i * 3 + j] += in.w[v] * J[q][i] * J[q][j];
          g[i] -= in.w[v] * J[q][i] * res[q];
        }
      }
    }
    double d[3];
    if (!solve3_spd(A, g, d)) return;
    const double Xn[3] = {X[0] + d[0], X[1] + d[1], X[2] + d[2]};
    double cost_n = 0.0;
    for (int v = 0; v < in.n; ++v) {
      if (!mask[v]) continue;
      const double e = pixel_error(proj + 12 * v, Xn, in.x[v], in.y[v]);
      cost_n += in.w[v] * e * e;
    }
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
    const double e = pixel_error(proj + 12 * v, X, in.x[v], in.y[v]);
    if (e < thr) {  // false for NaN
      inl[v] = true;
      ++n;
      c += e * e;
    } else {
      c += thr * thr;
    }
  }
  *cost = c;
  return n;
}

constexpr int kFinalPasses = 3;      // 1 plain + 2 depth re-weightings
constexpr int kHypothesisPasses = 2; // 1 plain + 1 re-weighting per RANSAC proposal

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
    if (used[v]) err += pixel_error(proj + 12 * v, X, in.x[v], in.y[v]);
  }
  for (int c = 0; c < 3; ++c) out_point[3 * p + c] = X[c];
  out_err[p] = err / (double)n_used;
  out_nviews[p] = n_used;
}

}  // namespace tri
}  // namespace hs
