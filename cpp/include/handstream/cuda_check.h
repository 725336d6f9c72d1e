// Error handling for the CUDA translation units: every failure becomes a std::runtime_error whose
// text says what failed, so Python sees a clear RuntimeError instead of a crash.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace hs {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("handstream._cuda: ") + what + ": " + cudaGetErrorString(err));
  }
}

// Throws unless a CUDA device is usable; called before every launch.
inline void require_device() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    (void)cudaGetLastError();  // clear the sticky "no device/driver" error
    throw std::runtime_error(
        std::string("handstream._cuda: no usable CUDA device (") +
        (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") +
        "); use NumPy arrays or CPU tensors to run the CPU kernels");
  }
}

}  // namespace hs
