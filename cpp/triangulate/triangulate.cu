// One thread per point, running the same per-point routine as the CPU loop
// (handstream/triangulate_math.h), so both agree by construction.
#include "triangulate/triangulate.h"

#include "handstream/cuda_check.h"

namespace hs {
namespace {

constexpr int kThreads = 64;

__global__ void triangulate_kernel(int V, int64_t P, const double* __restrict__ points_2d,
                                   const double* __restrict__ conf, const double* __restrict__ projections,
                                   tri::Options opt, double* points, double* reproj_error, uint8_t* inliers,
                                   int32_t* n_views) {
  const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= P) return;
  tri::triangulate_point(V, P, p, points_2d, conf, projections, opt, points, reproj_error, inliers, n_views);
}

}  // namespace

void triangulate_cuda(int V, int64_t P, const double* points_2d, const double* conf, const double* projections,
                      const tri::Options& opt, double* points, double* reproj_error, uint8_t* inliers,
                      int32_t* n_views, void* stream) {
  require_device();
  if (P == 0) return;
  const unsigned blocks = (unsigned)((P + kThreads - 1) / kThreads);
  triangulate_kernel<<<blocks, kThreads, 0, (cudaStream_t)stream>>>(V, P, points_2d, conf, projections, opt, points,
                                                                   reproj_error, inliers, n_views);
  cuda_check(cudaGetLastError(), "triangulate launch");
}

}  // namespace hs
