#include "decode/decode.h"

#include "handstream/decode_math.h"

namespace hs {
namespace {

// GCC/Clang vector extension: 4 floats, lowered to SSE on x86-64 and NEON on arm64.
typedef float f4 __attribute__((vector_size(16)));

// The same result as feeding every value to decode::Scan::add, in two passes that run on SIMD
// registers: per-lane max/min plus a NaN/inf detector (v * 0 is NaN exactly for NaN and inf), then a
// search for the first occurrence of the maximum. Several times faster than the branchy loop.
decode::Scan scan_map(const float* map, int64_t n) {
  constexpr int kVectors = 4;  // independent accumulators hide the latency of max/min/add
  f4 mx[kVectors], mn[kVectors], bad[kVectors];
  for (int k = 0; k < kVectors; ++k) {
    mx[k] = f4{} - std::numeric_limits<float>::infinity();
    mn[k] = f4{} + std::numeric_limits<float>::infinity();
    bad[k] = f4{};
  }
  int64_t i = 0;
  for (; i + 4 * kVectors <= n; i += 4 * kVectors) {
    for (int k = 0; k < kVectors; ++k) {
      f4 v;
      __builtin_memcpy(&v, map + i + 4 * k, sizeof(v));  // unaligned load
      mx[k] = v > mx[k] ? v : mx[k];
      mn[k] = v < mn[k] ? v : mn[k];
      bad[k] += v * 0.0f;
    }
  }
  decode::Scan s;
  s.init();
  float any_bad = 0.0f;
  for (int k = 0; k < kVectors; ++k) {
    for (int l = 0; l < 4; ++l) {
      s.max = mx[k][l] > s.max ? mx[k][l] : s.max;
      s.min = mn[k][l] < s.min ? mn[k][l] : s.min;
      any_bad += bad[k][l];
    }
  }
  for (; i < n; ++i) {  // the tail
    const float v = map[i];
    s.max = v > s.max ? v : s.max;
    s.min = v < s.min ? v : s.min;
    any_bad += v * 0.0f;
  }
  if (any_bad != 0.0f) {  // NaN: some value was NaN or inf
    s.nonfinite = 1;
    return s;
  }
  // First occurrence of the maximum: test 16 values at a time, then find the lane.
  typedef int i4 __attribute__((vector_size(16)));
  const f4 target = f4{} + s.max;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    f4 v[4];
    __builtin_memcpy(v, map + j, sizeof(v));
    const i4 hit = (v[0] == target) | (v[1] == target) | (v[2] == target) | (v[3] == target);
    if (hit[0] | hit[1] | hit[2] | hit[3]) break;
  }
  for (; j < n; ++j) {
    if (map[j] == s.max) {
      s.argmax = j;
      break;
    }
  }
  return s;
}

}  // namespace

void decode_heatmaps_cpu(const float* heatmaps, int64_t n_maps, int h, int w, int refine, float sigma,
                         float* coords, float* conf) {
  const int64_t n = (int64_t)h * w;
  for (int64_t m = 0; m < n_maps; ++m) {
    const float* map = heatmaps + m * n;
    decode::finish_map(map, h, w, scan_map(map, n), refine, sigma, coords + 2 * m, conf + m);
  }
}

}  // namespace hs
