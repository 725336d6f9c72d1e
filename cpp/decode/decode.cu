// One block per heatmap: the threads scan the map in a strided loop, reduce to the first argmax,
// and thread 0 refines the peak with the same math as the CPU loop (handstream/decode_math.h).
#include "decode/decode.h"

#include "handstream/cuda_check.h"
#include "handstream/decode_math.h"

namespace hs {
namespace {

constexpr int kThreads = 256;

__global__ void decode_kernel(const float* __restrict__ heatmaps, int h, int w, int refine, float sigma,
                              float* __restrict__ coords, float* __restrict__ conf) {
  __shared__ decode::Scan partial[kThreads];
  const int64_t m = blockIdx.x;
  const int64_t n = (int64_t)h * w;
  const float* map = heatmaps + m * n;

  decode::Scan s;
  s.init();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s.add(map[i], i);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x].merge(partial[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) decode::finish_map(map, h, w, partial[0], refine, sigma, coords + 2 * m, conf + m);
}

}  // namespace

void decode_heatmaps_cuda(const float* heatmaps, int64_t n_maps, int h, int w, int refine, float sigma,
                          float* coords, float* conf, void* stream) {
  require_device();
  if (n_maps == 0) return;
  decode_kernel<<<(unsigned)n_maps, kThreads, 0, (cudaStream_t)stream>>>(heatmaps, h, w, refine, sigma, coords,
                                                                        conf);
  cuda_check(cudaGetLastError(), "decode_heatmaps launch");
}

}  // namespace hs
