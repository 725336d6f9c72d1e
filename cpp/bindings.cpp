// The only PYBIND11_MODULE of handstream. Compiled twice:
//   handstream._C     NumPy arrays in, NumPy arrays out (CPU kernels)
//   handstream._cuda  raw device pointers in (from torch CUDA tensors' data_ptr()), nothing copied to
//                     the host; built with HS_WITH_CUDA when nvcc is found.
// Shapes and validation with friendly messages live in handstream/ops/; the checks here only keep a
// wrong call from reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <stdexcept>
#include <string>
#include <vector>

#include "decode/decode.h"
#include "resample/resample.h"
#include "triangulate/triangulate.h"

#ifdef HS_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw py::value_error(msg);
}

hs::tri::Options make_options(int method, double threshold_px, int min_views, int refine_iters) {
  require(method == hs::tri::kDlt || method == hs::tri::kRansac, "method must be 0 (dlt) or 1 (ransac)");
  require(min_views >= 2, "min_views must be >= 2");
  require(refine_iters >= 0, "refine_iters must be >= 0");
  return hs::tri::Options{method, threshold_px, min_views, refine_iters};
}

#ifndef HS_WITH_CUDA
using f32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using f64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

py::tuple decode_heatmaps(f32 heatmaps, int refine, float sigma) {
  require(heatmaps.ndim() == 3, "heatmaps must be (M, h, w)");
  const int64_t M = heatmaps.shape(0);
  const int h = (int)heatmaps.shape(1), w = (int)heatmaps.shape(2);
  require(h > 0 && w > 0, "heatmaps must have h, w > 0");
  require(refine >= 0 && refine <= 2, "refine must be 0 (none), 1 (quadratic) or 2 (dark)");
  py::array_t<float> coords({M, (int64_t)2});
  py::array_t<float> conf(M);
  const float* in = heatmaps.data();
  float* c = coords.mutable_data();
  float* s = conf.mutable_data();
  {
    py::gil_scoped_release nogil;
    hs::decode_heatmaps_cpu(in, M, h, w, refine, sigma, c, s);
  }
  return py::make_tuple(coords, conf);
}

py::tuple triangulate(f64 points_2d, std::optional<f64> conf, f64 projections, int method, double threshold_px,
                      int min_views, int refine_iters) {
  require(points_2d.ndim() == 3 && points_2d.shape(2) == 2, "points_2d must be (V, P, 2)");
  const int V = (int)points_2d.shape(0);
  const int64_t P = points_2d.shape(1);
  require(V >= 2 && V <= hs::tri::kMaxViews, "V must be in [2, 16]");
  require(projections.ndim() == 3 && projections.shape(0) == V && projections.shape(1) == 3 &&
              projections.shape(2) == 4,
          "projections must be (V, 3, 4)");
  for (int i = 0; i < V * 12; ++i) require(hs::is_finite(projections.data()[i]), "projections contain NaN or inf");
  const double* conf_ptr = nullptr;
  if (conf) {
    require(conf->ndim() == 2 && conf->shape(0) == V && conf->shape(1) == P, "conf must be (V, P)");
    conf_ptr = conf->data();
  }
  const hs::tri::Options opt = make_options(method, threshold_px, min_views, refine_iters);
  py::array_t<double> points({P, (int64_t)3});
  py::array_t<double> err(P);
  py::array_t<bool> inliers({(int64_t)V, P});
  py::array_t<int32_t> n_views(P);
  const double* pts = points_2d.data();
  const double* proj = projections.data();
  double* out_p = points.mutable_data();
  double* out_e = err.mutable_data();
  uint8_t* out_i = reinterpret_cast<uint8_t*>(inliers.mutable_data());
  int32_t* out_n = n_views.mutable_data();
  {
    py::gil_scoped_release nogil;
    hs::triangulate_cpu(V, P, pts, conf_ptr, proj, opt, out_p, out_e, out_i, out_n);
  }
  return py::make_tuple(points, err, inliers, n_views);
}

using u8 = py::array_t<uint8_t, py::array::c_style>;
using i64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void resample_crops(const std::vector<u8>& images, i64 source, f64 lens, f64 rotation, f64 crop, int W, int H,
                    py::array out) {
  const int S = (int)images.size();
  require(source.ndim() == 1, "source must be (N,)");
  const int64_t N = source.shape(0);
  require(lens.ndim() == 2 && lens.shape(0) == N && lens.shape(1) == hs::resample::kLensSize, "lens must be (N, 14)");
  require(rotation.ndim() == 3 && rotation.shape(0) == N && rotation.shape(1) == 3 && rotation.shape(2) == 3,
          "rotation must be (N, 3, 3)");
  require(crop.ndim() == 2 && crop.shape(0) == N && crop.shape(1) == hs::resample::kCropSize, "crop must be (N, 3)");
  require(W > 0 && H > 0, "out_size must be positive");
  const int channels = S > 0 && images[0].ndim() == 3 ? 3 : 1;
  // out is written in place (the caller's reused buffer), so it must not be a converted copy.
  const bool out_ok = channels == 1 ? out.ndim() == 3 && out.shape(0) == N && out.shape(1) == H && out.shape(2) == W
                                    : out.ndim() == 4 && out.shape(0) == N && out.shape(1) == 3 && out.shape(2) == H &&
                                          out.shape(3) == W;
  require(out.dtype().is(py::dtype::of<float>()) && (out.flags() & py::array::c_style) && out.writeable() && out_ok,
          "out must be a writeable C-contiguous float32 (N, H, W) array, (N, 3, H, W) for 3-channel images");
  std::vector<const uint8_t*> ptrs(S);
  std::vector<int64_t> sizes(2 * (size_t)S);
  for (int s = 0; s < S; ++s) {
    require((channels == 1 ? images[s].ndim() == 2 : images[s].ndim() == 3 && images[s].shape(2) == 3) &&
                images[s].shape(0) > 0 && images[s].shape(1) > 0 && images[s].shape(0) < INT32_MAX &&
                images[s].shape(1) < INT32_MAX,
            "images must be all (h, w) or all (h, w, 3) uint8 with h, w > 0");
    ptrs[s] = images[s].data();
    sizes[2 * s] = images[s].shape(1);
    sizes[2 * s + 1] = images[s].shape(0);
  }
  const int64_t* src = source.data();
  const double* L = lens.data();
  for (int64_t n = 0; n < N; ++n) {
    require(src[n] >= 0 && src[n] < S, "source indices must be in [0, S)");
    const double m = L[n * hs::resample::kLensSize];
    require(m == hs::resample::kPinhole || m == hs::resample::kOpencv || m == hs::resample::kFisheye,
            "lens model must be 0 (pinhole), 1 (opencv) or 2 (fisheye)");
  }
  const double* R = rotation.data();
  const double* C = crop.data();
  float* dst = static_cast<float*>(out.mutable_data());
  {
    py::gil_scoped_release nogil;
    hs::resample_crops_cpu(S, ptrs.data(), sizes.data(), N, src, L, R, C, W, H, dst, channels);
  }
}

#else  // HS_WITH_CUDA

template <typename T>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void decode_heatmaps(uintptr_t heatmaps, int64_t n_maps, int h, int w, int refine, float sigma, uintptr_t coords,
                     uintptr_t conf, uintptr_t stream) {
  require(h > 0 && w > 0 && n_maps >= 0, "heatmaps must be (M, h, w) with h, w > 0");
  require(refine >= 0 && refine <= 2, "refine must be 0 (none), 1 (quadratic) or 2 (dark)");
  py::gil_scoped_release nogil;
  hs::decode_heatmaps_cuda(ptr<const float>(heatmaps), n_maps, h, w, refine, sigma, ptr<float>(coords),
                           ptr<float>(conf), ptr<void>(stream));
}

void triangulate(int V, int64_t P, uintptr_t points_2d, uintptr_t conf, uintptr_t projections, int method,
                 double threshold_px, int min_views, int refine_iters, uintptr_t points, uintptr_t reproj_error,
                 uintptr_t inliers, uintptr_t n_views, uintptr_t stream) {
  require(V >= 2 && V <= hs::tri::kMaxViews, "V must be in [2, 16]");
  const hs::tri::Options opt = make_options(method, threshold_px, min_views, refine_iters);
  py::gil_scoped_release nogil;
  hs::triangulate_cuda(V, P, ptr<const double>(points_2d), ptr<const double>(conf), ptr<const double>(projections),
                       opt, ptr<double>(points), ptr<double>(reproj_error), ptr<uint8_t>(inliers),
                       ptr<int32_t>(n_views), ptr<void>(stream));
}

void resample_crops(int n_images, uintptr_t images, uintptr_t sizes, int64_t n_crops, uintptr_t source,
                    uintptr_t lens, uintptr_t rotation, uintptr_t crop, int W, int H, uintptr_t out,
                    uintptr_t stream) {
  require(n_images >= 0 && n_crops >= 0 && W > 0 && H > 0, "resample_crops: negative count or empty out_size");
  py::gil_scoped_release nogil;
  hs::resample_crops_cuda(n_images, ptr<const uint8_t* const>(images), ptr<const int64_t>(sizes), n_crops,
                          ptr<const int64_t>(source), ptr<const double>(lens), ptr<const double>(rotation),
                          ptr<const double>(crop), W, H, ptr<float>(out), ptr<void>(stream));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

#endif

}  // namespace

#ifndef HS_WITH_CUDA
PYBIND11_MODULE(_C, m) {
  m.doc() = "handstream C++ CPU kernels (see handstream.ops for the documented API)";
  m.def("decode_heatmaps", &decode_heatmaps, "heatmaps"_a, "refine"_a, "sigma"_a);
  m.def("triangulate", &triangulate, "points_2d"_a, "conf"_a, "projections"_a, "method"_a, "threshold_px"_a,
        "min_views"_a, "refine_iters"_a);
  m.def("resample_crops", &resample_crops, "images"_a, "source"_a, "lens"_a, "rotation"_a, "crop"_a, "W"_a, "H"_a,
        "out"_a);
  m.attr("MAX_VIEWS") = hs::tri::kMaxViews;
}
#else
PYBIND11_MODULE(_cuda, m) {
  m.doc() = "handstream CUDA kernels on device pointers (see handstream.ops for the documented API)";
  m.def("decode_heatmaps", &decode_heatmaps, "heatmaps"_a, "n_maps"_a, "h"_a, "w"_a, "refine"_a, "sigma"_a,
        "coords"_a, "conf"_a, "stream"_a);
  m.def("triangulate", &triangulate, "V"_a, "P"_a, "points_2d"_a, "conf"_a, "projections"_a, "method"_a,
        "threshold_px"_a, "min_views"_a, "refine_iters"_a, "points"_a, "reproj_error"_a, "inliers"_a, "n_views"_a,
        "stream"_a);
  m.def("resample_crops", &resample_crops, "n_images"_a, "images"_a, "sizes"_a, "n_crops"_a, "source"_a, "lens"_a,
        "rotation"_a, "crop"_a, "W"_a, "H"_a, "out"_a, "stream"_a);
  m.def("device_count", &device_count, "number of usable CUDA devices (0 without a driver)");
  m.attr("MAX_VIEWS") = hs::tri::kMaxViews;
}
#endif
