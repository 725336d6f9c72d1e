// Per-pixel math of crop resampling, shared by resample_cpu.cpp and resample.cu.
//
// A crop is a virtual pinhole camera at a real camera's centre (square pixels, no skew). Crop pixel
// (u, v) -> ray r_c = ((u - ccx) / f, (v - ccy) / f, 1) in the crop frame -> r = R r_c in the real
// camera frame -> normalized (x, y) = (r.x / r.z, r.y / r.z) (nothing when r.z <= 0) -> the real lens
// (handstream/geometry/camera.py has the same formulas) -> K -> a distorted source pixel, where the
// uint8 frame is sampled bilinearly (pixel centres at integers, neighbours outside the frame count as 0,
// as cv2.remap with BORDER_CONSTANT 0).
//
// Everything is float64: a source pixel is then exact to ~1e-12 px, so the CPU loop, the CUDA kernel
// and the NumPy reference agree to the float32 rounding of the output, and a crop that is the frame's own
// pinhole camera reproduces the frame exactly. float32 was measured and rejected: the CPU loop is no
// faster with it (scalar code either way; libm's atanf costs about what atan does), and source pixels are
// then up to ~1e-4 px (pinhole, fisheye) and ~8e-4 px (opencv) off on a 640x480 frame.
#pragma once

#include <cmath>
#include <cstdint>

#include "handstream/common.h"

namespace hs {
namespace resample {

enum Model : int { kPinhole = 0, kOpencv = 1, kFisheye = 2 };

// A lens row: [model, fx, fy, cx, cy, skew, d0..d7] (opencv: k1 k2 p1 p2 k3 k4 k5 k6; fisheye: k1..k4).
constexpr int kLensSize = 14;
// A crop row: [f, ccx, ccy] in crop pixels.
constexpr int kCropSize = 3;

// Lens distortion of normalized coordinates (x, y) -> (xd, yd). Returns false for an unknown model.
HS_HOST_DEVICE bool distort(const double* lens, double x, double y, double* xd, double* yd) {
  const int model = (int)lens[0];
  const double* d = lens + 6;
  if (model == kPinhole) {
    *xd = x;
    *yd = y;
    return true;
  }
  if (model == kOpencv) {
    const double k1 = d[0], k2 = d[1], p1 = d[2], p2 = d[3], k3 = d[4], k4 = d[5], k5 = d[6], k6 = d[7];
    const double r2 = x * x + y * y;
    const double num = 1 + r2 * (k1 + r2 * (k2 + r2 * k3));
    const double den = 1 + r2 * (k4 + r2 * (k5 + r2 * k6));
    const double g = num / den;
    *xd = x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x);
    *yd = y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y;
    return true;
  }
  if (model == kFisheye) {
    const double r = sqrt(x * x + y * y);
    const double theta = atan(r);
    const double t2 = theta * theta;
    const double theta_d = theta * (1 + t2 * (d[0] + t2 * (d[1] + t2 * (d[2] + t2 * d[3]))));
    // The guard of cv2.fisheye and geometry/camera.py (r > 1e-8), so that all three agree on the axis.
    const double scale = r > 1e-8 ? theta_d / r : 1.0;
    *xd = x * scale;
    *yd = y * scale;
    return true;
  }
  return false;
}

// Crop pixel (u, v) -> distorted source pixel (px, py) of the real camera.
//   lens (14,) lens row; R (9,) row-major crop frame -> camera frame; crop (3,) = f, ccx, ccy.
// Returns false when the ray is at or behind the camera plane (r.z <= 0 or NaN) or the model is unknown.
HS_HOST_DEVICE bool crop_to_source(const double* lens, const double* R, const double* crop, double u, double v,
                                   double* px, double* py) {
  // Reciprocals: two divisions where the formula has four (division is the costliest instruction here);
  // the differences to the reference's divisions stay in the last bit.
  const double inv_f = 1.0 / crop[0];
  const double cx = (u - crop[1]) * inv_f;
  const double cy = (v - crop[2]) * inv_f;
  const double rx = R[0] * cx + R[1] * cy + R[2];
  const double ry = R[3] * cx + R[4] * cy + R[5];
  const double rz = R[6] * cx + R[7] * cy + R[8];
  if (!(rz > 0)) return false;
  const double inv_z = 1.0 / rz;
  double xd, yd;
  if (!distort(lens, rx * inv_z, ry * inv_z, &xd, &yd)) return false;
  *px = lens[1] * xd + lens[5] * yd + lens[3];
  *py = lens[2] * yd + lens[4];
  return true;
}

// Bilinear sample of a row-major (h, w) uint8 image at (px, py), pixel centres at integers; neighbours
// outside the image count as 0. Returns the value in [0, 255] (0 when all four neighbours are outside,
// and for NaN coordinates).
HS_HOST_DEVICE double sample_bilinear(const uint8_t* img, int w, int h, double px, double py) {
  // Also keeps huge or NaN coordinates away from the int conversion below.
  if (!(px > -1.0 && px < (double)w && py > -1.0 && py < (double)h)) return 0.0;
  int x0 = (int)px, y0 = (int)py;  // floor: truncation, one down for negatives; in [-1, w-1] x [-1, h-1]
  x0 -= (double)x0 > px;
  y0 -= (double)y0 > py;
  const double ax = px - x0, ay = py - y0;
  // Branch-free: read clamped neighbours and give the ones outside the image weight 0 (the same sum as
  // counting them as 0).
  const double wx0 = x0 >= 0 ? 1 - ax : 0.0, wx1 = x0 + 1 < w ? ax : 0.0;
  const double wy0 = y0 >= 0 ? 1 - ay : 0.0, wy1 = y0 + 1 < h ? ay : 0.0;
  const int64_t xa = x0 >= 0 ? x0 : 0, xb = x0 + 1 < w ? x0 + 1 : w - 1;
  const int64_t ya = (y0 >= 0 ? y0 : 0) * (int64_t)w, yb = (y0 + 1 < h ? y0 + 1 : h - 1) * (int64_t)w;
  return wy0 * (wx0 * img[ya + xa] + wx1 * img[ya + xb]) + wy1 * (wx0 * img[yb + xa] + wx1 * img[yb + xb]);
}

// The same for an interleaved 3-channel (h, w, 3) uint8 image: one set of weights and addresses, the three
// channels' values in out[0..2] (in the image's channel order).
HS_HOST_DEVICE void sample_bilinear3(const uint8_t* img, int w, int h, double px, double py, double* out) {
  out[0] = out[1] = out[2] = 0.0;
  if (!(px > -1.0 && px < (double)w && py > -1.0 && py < (double)h)) return;
  int x0 = (int)px, y0 = (int)py;
  x0 -= (double)x0 > px;
  y0 -= (double)y0 > py;
  const double ax = px - x0, ay = py - y0;
  const double wx0 = x0 >= 0 ? 1 - ax : 0.0, wx1 = x0 + 1 < w ? ax : 0.0;
  const double wy0 = y0 >= 0 ? 1 - ay : 0.0, wy1 = y0 + 1 < h ? ay : 0.0;
  const int64_t xa = 3 * (int64_t)(x0 >= 0 ? x0 : 0), xb = 3 * (int64_t)(x0 + 1 < w ? x0 + 1 : w - 1);
  const int64_t ya = (y0 >= 0 ? y0 : 0) * 3 * (int64_t)w, yb = (y0 + 1 < h ? y0 + 1 : h - 1) * 3 * (int64_t)w;
  for (int c = 0; c < 3; ++c) {
    out[c] = wy0 * (wx0 * img[ya + xa + c] + wx1 * img[ya + xb + c]) +
             wy1 * (wx0 * img[yb + xa + c] + wx1 * img[yb + xb + c]);
  }
}

// A sample in [0, 255] -> the float32 output in [0, 1].
HS_HOST_DEVICE float to_unit(double value) { return (float)(value * (1.0 / 255.0)); }

// One output pixel: crop pixel (u, v) of a crop (lens, R, crop) sampling `img` (h, w) -> value / 255.
HS_HOST_DEVICE float crop_pixel(const uint8_t* img, int w, int h, const double* lens, const double* R,
                                const double* crop, int u, int v) {
  double px, py;
  if (!crop_to_source(lens, R, crop, (double)u, (double)v, &px, &py)) return 0.0f;
  return to_unit(sample_bilinear(img, w, h, px, py));
}

}  // namespace resample
}  // namespace hs
