// Per-map math of heatmap decoding, shared by decode_cpu.cpp and decode.cu.
//
// A heatmap is a row-major float32 array of h rows and w columns. Decoding finds the peak
// (argmax, first occurrence in row-major order on ties), reports the peak value as confidence, and
// refines the peak to sub-pixel precision:
//   - kQuadratic: a parabola through the peak and its two neighbours, per axis (skipped on an axis
//     where the peak sits on the border or the curvature is not negative). |offset| <= 0.5 px.
//   - kDark: DARK (Zhang et al., CVPR 2020, as in mmpose): Gaussian-blur the map (zero padding),
//     take the log, and make one Newton step with the gradient and Hessian from central differences
//     at the peak. Only the 13 blurred values the differences need are computed, not the whole map.
//     Applied when the peak is at least 2 px from every border and the Hessian is negative definite;
//     the offset is clamped to [-1, 1] px per axis (one Newton step is only trusted that far).
// A map with any NaN/inf gives NaN coordinates and NaN confidence. A flat map (max == min) has no
// peak: NaN coordinates, confidence = its value.
#pragma once

#include <cmath>

#include "handstream/common.h"

namespace hs {
namespace decode {

enum Refine : int { kNone = 0, kQuadratic = 1, kDark = 2 };

constexpr int kMaxDarkRadius = 15;

// Running summary of a scan over one map; merge() combines two partial scans (CUDA reduction).
struct Scan {
  float max;
  float min;
  int64_t argmax;  // flat index; ties keep the smallest index
  int nonfinite;   // count of NaN/inf values seen

  HS_HOST_DEVICE void init() {
    max = -std::numeric_limits<float>::infinity();
    min = std::numeric_limits<float>::infinity();
    argmax = -1;
    nonfinite = 0;
  }
  HS_HOST_DEVICE void add(float v, int64_t idx) {
    if (!is_finite(v)) {
      ++nonfinite;
      return;
    }
    if (v > max || (v == max && idx < argmax)) {
      max = v;
      argmax = idx;
    }
    if (v < min) min = v;
  }
  HS_HOST_DEVICE void merge(const Scan& o) {
    nonfinite += o.nonfinite;
    if (o.argmax >= 0 && (argmax < 0 || o.max > max || (o.max == max && o.argmax < argmax))) {
      max = o.max;
      argmax = o.argmax;
    }
    if (o.min < min) min = o.min;
  }
};

// Radius of the DARK blur kernel for a given sigma (11x11 for sigma 2, as mmpose's default).
HS_HOST_DEVICE int dark_radius(float sigma) {
  int r = (int)ceil(2.5 * (double)sigma);
  return r < 1 ? 1 : (r > kMaxDarkRadius ? kMaxDarkRadius : r);
}

// DARK offset at integer peak (x, y). Returns false (no offset) where DARK does not apply.
// The blur is separable: rows are blurred once for the 5 columns x-2..x+2 the differences touch,
// then the 13 needed points are blurred down those columns (~4x fewer operations than 2D sums).
HS_HOST_DEVICE bool dark_offset(const float* map, int h, int w, int x, int y, float sigma, double* ox,
                                double* oy) {
  if (x < 2 || x > w - 3 || y < 2 || y > h - 3) return false;
  const int r = dark_radius(sigma);
  double g[2 * kMaxDarkRadius + 1];
  double gs = 0.0;
  for (int i = -r; i <= r; ++i) {
    g[i + r] = exp(-(double)(i * i) / (2.0 * (double)sigma * (double)sigma));
    gs += g[i + r];
  }
  for (int i = 0; i <= 2 * r; ++i) g[i] /= gs;

  // rows[c][k]: horizontal blur at column x - 2 + c, row y - 2 - r + k (zero outside the map)
  double rows[5][2 * kMaxDarkRadius + 5];
  for (int c = 0; c < 5; ++c) {
    for (int k = 0; k < 2 * r + 5; ++k) {
      const int yy = y - 2 - r + k;
      double acc = 0.0;
      if (yy >= 0 && yy < h) {
        for (int i = -r; i <= r; ++i) {
          const int xx = x - 2 + c + i;
          if (xx >= 0 && xx < w) acc += g[i + r] * (double)map[(int64_t)yy * w + xx];
        }
      }
      rows[c][k] = acc;
    }
  }
  // log of the blurred value at (x + dx, y + dy), |dx|, |dy| <= 2
  auto L = [&](int dx, int dy) {
    double b = 0.0;
    for (int j = -r; j <= r; ++j) b += g[j + r] * rows[dx + 2][dy + 2 + r + j];
    return log(b > 1e-10 ? b : 1e-10);
  };
  const double c = L(0, 0);
  const double dx = 0.5 * (L(1, 0) - L(-1, 0));
  const double dy = 0.5 * (L(0, 1) - L(0, -1));
  const double dxx = 0.25 * (L(2, 0) - 2.0 * c + L(-2, 0));
  const double dyy = 0.25 * (L(0, 2) - 2.0 * c + L(0, -2));
  const double dxy = 0.25 * (L(1, 1) - L(1, -1) - L(-1, 1) + L(-1, -1));
  const double det = dxx * dyy - dxy * dxy;
  if (!(dxx < 0.0 && det > 0.0)) return false;  // not a maximum: a Newton step would go astray
  *ox = clamp(-(dyy * dx - dxy * dy) / det, -1.0, 1.0);
  *oy = clamp(-(dxx * dy - dxy * dx) / det, -1.0, 1.0);
  return true;
}

// Parabola through (-1, l), (0, c), (1, r): vertex offset, 0 where it is not a maximum.
HS_HOST_DEVICE double parabola_offset(double l, double c, double r) {
  const double dd = l - 2.0 * c + r;
  if (!(dd < 0.0)) return 0.0;
  return clamp(0.5 * (l - r) / dd, -0.5, 0.5);
}

// Turn a finished scan of one map into (x, y, conf).
HS_HOST_DEVICE void finish_map(const float* map, int h, int w, const Scan& s, int refine, float sigma,
                               float* out_xy, float* out_conf) {
  if (s.nonfinite > 0 || s.argmax < 0) {
    out_xy[0] = nan_f();
    out_xy[1] = nan_f();
    *out_conf = nan_f();
    return;
  }
  *out_conf = s.max;
  if (!(s.max > s.min)) {  // flat map: no peak to locate
    out_xy[0] = nan_f();
    out_xy[1] = nan_f();
    return;
  }
  const int x = (int)(s.argmax % w);
  const int y = (int)(s.argmax / w);
  double ox = 0.0, oy = 0.0;
  if (refine == kQuadratic) {
    const float* row = map + (int64_t)y * w;
    if (x > 0 && x < w - 1) ox = parabola_offset(row[x - 1], row[x], row[x + 1]);
    if (y > 0 && y < h - 1) oy = parabola_offset(map[(int64_t)(y - 1) * w + x], row[x], map[(int64_t)(y + 1) * w + x]);
  } else if (refine == kDark) {
    dark_offset(map, h, w, x, y, sigma, &ox, &oy);
  }
  out_xy[0] = (float)((double)x + ox);
  out_xy[1] = (float)((double)y + oy);
}

}  // namespace decode
}  // namespace hs
