// decode_heatmaps: heatmaps -> sub-pixel peak coordinates and confidence.
//
//   heatmaps  (M, h, w) float32, row-major, contiguous (M = all leading dims flattened)
//   coords    (M, 2)    float32 out: (x, y) in heatmap pixels, pixel centres at integers; NaN = no peak
//   conf      (M,)      float32 out: peak value; NaN when the map holds NaN/inf
//   refine    hs::decode::Refine (none | quadratic | dark); sigma = DARK blur sigma in heatmap pixels
//
// The math per map is in handstream/decode_math.h; these functions only loop (CPU) or launch (CUDA).
#pragma once

#include <cstdint>

namespace hs {

void decode_heatmaps_cpu(const float* heatmaps, int64_t n_maps, int h, int w, int refine, float sigma,
                         float* coords, float* conf);

#ifdef HS_WITH_CUDA
// All pointers are device pointers; the work is queued on `stream` (a cudaStream_t, 0 = default).
// Throws std::runtime_error with the CUDA error text on failure.
void decode_heatmaps_cuda(const float* heatmaps, int64_t n_maps, int h, int w, int refine, float sigma,
                          float* coords, float* conf, void* stream);
#endif

}  // namespace hs
