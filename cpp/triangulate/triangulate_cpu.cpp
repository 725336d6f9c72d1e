#include "triangulate/triangulate.h"

namespace hs {

void triangulate_cpu(int V, int64_t P, const double* points_2d, const double* conf, const double* projections,
                     const tri::Options& opt, double* points, double* reproj_error, uint8_t* inliers,
                     int32_t* n_views) {
  for (int64_t p = 0; p < P; ++p) {
    tri::triangulate_point(V, P, p, points_2d, conf, projections, opt, points, reproj_error, inliers, n_views);
  }
}

}  // namespace hs
