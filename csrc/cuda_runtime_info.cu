// CUDA facts of this build, asked of the statically linked CUDA runtime.
#include <cuda_runtime.h>

#include <string>

namespace logo_fast {

bool compiled_with_cuda() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls are not poisoned
    return 0;
  }
  return n;
}

std::string cuda_runtime_error() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  }
  return n > 0 ? "" : "no CUDA device";
}

}  // namespace logo_fast
