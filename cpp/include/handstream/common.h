// Macros and tiny helpers shared by the CPU (.cpp) and CUDA (.cu) translation units.
#pragma once

#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define HS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HS_HOST_DEVICE inline
#endif

namespace hs {

// x - x is 0 for finite x and NaN for NaN or +-inf. Works the same on host and device and needs no
// <cmath> overload resolution (we never build with -ffast-math, so NaN survives).
HS_HOST_DEVICE bool is_finite(double x) { return x - x == 0.0; }

HS_HOST_DEVICE float nan_f() { return std::numeric_limits<float>::quiet_NaN(); }
HS_HOST_DEVICE double nan_d() { return std::numeric_limits<double>::quiet_NaN(); }

HS_HOST_DEVICE double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

}  // namespace hs
