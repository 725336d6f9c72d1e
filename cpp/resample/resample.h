// resample_crops: camera frames -> perspective crop images (virtual pinhole cameras at the cameras' centres).
//
//   images    S pointers to row-major uint8 frames; sizes (S, 2) int64 = (w, h) of each, both < 2^31;
//             channels 1 ((h, w) grey) or 3 ((h, w, 3) interleaved BGR), the same for all
//   source    (N,)     int64, the frame each crop samples, in [0, S)
//   lens      (N, 14)  float64, [model, fx, fy, cx, cy, skew, d0..d7] in the pixels of images[source]
//                      (model 0 pinhole, 1 opencv k1 k2 p1 p2 k3 k4 k5 k6, 2 fisheye k1..k4)
//   rotation  (N, 3, 3) float64, row-major, crop frame -> camera frame
//   crop      (N, 3)   float64, f, ccx, ccy of the crop camera, crop pixels
//   out       (N, H, W) float32 out (channels 1) or (N, 3, H, W) planes R, G, B (channels 3: the frames'
//                      B, G, R reversed), value / 255 in [0, 1]; 0 where the crop sees outside the frame or
//                      behind the camera. CUDA: channels 1 only.
// The math per pixel is in handstream/resample_math.h; these functions only loop (CPU) or launch (CUDA).
// The callers check shapes, models and source indices; the CUDA kernel also writes zeros for a crop whose
// source index is out of range rather than read outside the pointer table.
#pragma once

#include <cstdint>

#include "handstream/resample_math.h"

namespace hs {

void resample_crops_cpu(int n_images, const uint8_t* const* images, const int64_t* sizes, int64_t n_crops,
                        const int64_t* source, const double* lens, const double* rotation, const double* crop, int W,
                        int H, float* out, int channels = 1);

#ifdef HS_WITH_CUDA
// All pointers are device pointers (`images` a device array of S device pointers); the work is queued on
// `stream` (a cudaStream_t, 0 = default). Throws std::runtime_error with the CUDA error text on failure.
void resample_crops_cuda(int n_images, const uint8_t* const* images, const int64_t* sizes, int64_t n_crops,
                         const int64_t* source, const double* lens, const double* rotation, const double* crop,
                         int W, int H, float* out, void* stream);
#endif

}  // namespace hs
