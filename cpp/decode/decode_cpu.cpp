#include "decode/decode.h"

#include "handstream/decode_math.h"

namespace hs {

void decode_heatmaps_cpu(const float* heatmaps, int64_t n_maps, int h, int w, int refine, float sigma,
                         float* coords, float* conf) {
  const int64_t n = (int64_t)h * w;
  for (int64_t m = 0; m < n_maps; ++m) {
    const float* map = heatmaps + m * n;
    decode::Scan s;
    s.init();
    for (int64_t i = 0; i < n; ++i) s.add(map[i], i);
    decode::finish_map(map, h, w, s, refine, sigma, coords + 2 * m, conf + m);
  }
}

}  // namespace hs
