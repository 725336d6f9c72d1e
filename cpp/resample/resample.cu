// One thread per output pixel on a (W, H, crops) grid, running the same per-pixel routine as the CPU
// loop (handstream/resample_math.h), so both agree by construction.
#include "resample/resample.h"

#include "handstream/cuda_check.h"
#include "handstream/resample_math.h"

namespace hs {
namespace {

constexpr int kBlockX = 32;
constexpr int kBlockY = 8;
constexpr int64_t kMaxGridZ = 65535;

__global__ void resample_kernel(int n_images, const uint8_t* const* __restrict__ images,
                                const int64_t* __restrict__ sizes, int64_t first, const int64_t* __restrict__ source,
                                const double* __restrict__ lens, const double* __restrict__ rotation,
                                const double* __restrict__ crop, int W, int H, float* __restrict__ out) {
  const int u = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = blockIdx.y * blockDim.y + threadIdx.y;
  const int64_t n = first + blockIdx.z;
  if (u >= W || v >= H) return;
  float* dst = out + (n * H + v) * (int64_t)W + u;
  const int64_t s = source[n];
  if (s < 0 || s >= n_images) {  // the Python layer rejects this; never read outside the table
    *dst = 0.0f;
    return;
  }
  *dst = resample::crop_pixel(images[s], (int)sizes[2 * s], (int)sizes[2 * s + 1], lens + n * resample::kLensSize,
                              rotation + n * 9, crop + n * resample::kCropSize, u, v);
}

}  // namespace

void resample_crops_cuda(int n_images, const uint8_t* const* images, const int64_t* sizes, int64_t n_crops,
                         const int64_t* source, const double* lens, const double* rotation, const double* crop,
                         int W, int H, float* out, void* stream) {
  require_device();
  if (n_crops == 0 || W <= 0 || H <= 0) return;
  const dim3 block(kBlockX, kBlockY);
  for (int64_t first = 0; first < n_crops; first += kMaxGridZ) {  // gridDim.z is at most 65535
    const int64_t count = n_crops - first < kMaxGridZ ? n_crops - first : kMaxGridZ;
    const dim3 grid((unsigned)((W + kBlockX - 1) / kBlockX), (unsigned)((H + kBlockY - 1) / kBlockY), (unsigned)count);
    resample_kernel<<<grid, block, 0, (cudaStream_t)stream>>>(n_images, images, sizes, first, source, lens, rotation,
                                                              crop, W, H, out);
    cuda_check(cudaGetLastError(), "resample_crops launch");
  }
}

}  // namespace hs
