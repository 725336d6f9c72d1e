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

#include "decode/decode.h"
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
  m.def("device_count", &device_count, "number of usable CUDA devices (0 without a driver)");
  m.attr("MAX_VIEWS") = hs::tri::kMaxViews;
}
#endif
