// triangulate: 2D observations in several calibrated views -> 3D points.
//
//   points_2d    (V, P, 2) float64 undistorted pixels; NaN = view missing for that point
//   conf         (V, P)    float64 weights, or null (all ones); <= 0 or NaN = view missing
//   projections  (V, 3, 4) float64, K [R | t]
//   points       (P, 3)    float64 out, NaN where fewer than min_views views agree
//   reproj_error (P,)      float64 out, mean pixel error over the views used
//   inliers      (V, P)    uint8 out, 1 = view used
//   n_views      (P,)      int32 out, number of views used
// 2 <= V <= hs::tri::kMaxViews. The math per point is in handstream/triangulate_math.h.
#pragma once

#include <cstdint>

#include "handstream/triangulate_math.h"

namespace hs {

void triangulate_cpu(int V, int64_t P, const double* points_2d, const double* conf, const double* projections,
                     const tri::Options& opt, double* points, double* reproj_error, uint8_t* inliers,
                     int32_t* n_views);

#ifdef HS_WITH_CUDA
// All array pointers are device pointers; the work is queued on `stream` (a cudaStream_t).
void triangulate_cuda(int V, int64_t P, const double* points_2d, const double* conf, const double* projections,
                      const tri::Options& opt, double* points, double* reproj_error, uint8_t* inliers,
                      int32_t* n_views, void* stream);
#endif

}  // namespace hs
