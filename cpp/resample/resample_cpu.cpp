// A plain loop over crops and rows, single-threaded (the live path keeps the other cores for capture and
// inference). Each row is done in two passes, source pixels first and samples second, with the same
// per-pixel functions as the CUDA kernel: separating the lens math (a libm call for fisheye) from the
// gathers measured 1.2-1.4x faster than one fused loop (crop_pixel), with identical results. A 3-channel
// (interleaved BGR) frame is sampled once per pixel for its three channels, written as R, G, B planes.
#include "resample/resample.h"

#include <vector>

namespace hs {

void resample_crops_cpu(int /*n_images*/, const uint8_t* const* images, const int64_t* sizes, int64_t n_crops,
                        const int64_t* source, const double* lens, const double* rotation, const double* crop, int W,
                        int H, float* out, int channels) {
  using resample::kCropSize;
  using resample::kLensSize;
  const int64_t P = (int64_t)W * H;
  std::vector<double> px(W), py(W);
  for (int64_t n = 0; n < n_crops; ++n) {
    const int64_t s = source[n];
    const uint8_t* img = images[s];
    const int w = (int)sizes[2 * s], h = (int)sizes[2 * s + 1];
    const double* L = lens + n * kLensSize;
    const double* R = rotation + n * 9;
    const double* C = crop + n * kCropSize;
    float* dst = out + n * (channels == 3 ? 3 * P : P);
    for (int v = 0; v < H; ++v) {
      for (int u = 0; u < W; ++u) {
        if (!resample::crop_to_source(L, R, C, (double)u, (double)v, &px[u], &py[u])) px[u] = nan_d();  // -> 0
      }
      float* row = dst + (int64_t)v * W;
      if (channels == 3) {  // interleaved BGR in, planes R, G, B out: one set of weights for the three
        double v3[3];
        for (int u = 0; u < W; ++u) {
          resample::sample_bilinear3(img, w, h, px[u], py[u], v3);
          row[u] = resample::to_unit(v3[2]);
          row[P + u] = resample::to_unit(v3[1]);
          row[2 * P + u] = resample::to_unit(v3[0]);
        }
      } else {
        for (int u = 0; u < W; ++u) row[u] = resample::to_unit(resample::sample_bilinear(img, w, h, px[u], py[u]));
      }
    }
  }
}

}  // namespace hs
