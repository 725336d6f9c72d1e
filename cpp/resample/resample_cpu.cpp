// A plain loop over crops and rows, single-threaded (the live path keeps the other cores for capture and
// inference). The source pixels of a whole crop are computed first and its samples second, with the same
// per-pixel functions as the CUDA kernel: separating the lens math (a libm call for fisheye) from the
// gathers measured 1.2-1.4x faster than one fused loop (crop_pixel), with identical results. Consecutive
// crops with the same camera rows (lens, rotation, crop) and source size reuse the source pixels. A 3-channel
// (interleaved BGR) frame is sampled once per pixel for its three channels, written as R, G, B planes.
#include "resample/resample.h"

#include <cstring>
#include <vector>

namespace hs {

void resample_crops_cpu(int /*n_images*/, const uint8_t* const* images, const int64_t* sizes, int64_t n_crops,
                        const int64_t* source, const double* lens, const double* rotation, const double* crop, int W,
                        int H, float* out, int channels) {
  using resample::kCropSize;
  using resample::kLensSize;
  const int64_t P = (int64_t)W * H;
  std::vector<double> px(P), py(P);
  int64_t last = -1;  // the crop whose source pixels px/py hold
  for (int64_t n = 0; n < n_crops; ++n) {
    const int64_t s = source[n];
    const uint8_t* img = images[s];
    const int w = (int)sizes[2 * s], h = (int)sizes[2 * s + 1];
    const double* L = lens + n * kLensSize;
    const double* R = rotation + n * 9;
    const double* C = crop + n * kCropSize;
    const bool same = last >= 0 && sizes[2 * source[last]] == w && sizes[2 * source[last] + 1] == h &&
                      std::memcmp(L, lens + last * kLensSize, sizeof(double) * kLensSize) == 0 &&
                      std::memcmp(R, rotation + last * 9, sizeof(double) * 9) == 0 &&
                      std::memcmp(C, crop + last * kCropSize, sizeof(double) * kCropSize) == 0;
    if (!same) {
      for (int v = 0; v < H; ++v) {
        for (int u = 0; u < W; ++u) {
          const int64_t i = (int64_t)v * W + u;
          if (!resample::crop_to_source(L, R, C, (double)u, (double)v, &px[i], &py[i])) px[i] = nan_d();  // -> 0
        }
      }
      last = n;
    }
    if (channels == 3) {  // interleaved BGR in, planes R, G, B out: one set of weights for the three
      float* dst = out + n * 3 * P;
      double v3[3];
      for (int64_t i = 0; i < P; ++i) {
        resample::sample_bilinear3(img, w, h, px[i], py[i], v3);
        dst[i] = resample::to_unit(v3[2]);
        dst[P + i] = resample::to_unit(v3[1]);
        dst[2 * P + i] = resample::to_unit(v3[0]);
      }
      continue;
    }
    float* dst = out + n * P;
    for (int64_t i = 0; i < P; ++i) dst[i] = resample::to_unit(resample::sample_bilinear(img, w, h, px[i], py[i]));
  }
}

}  // namespace hs
