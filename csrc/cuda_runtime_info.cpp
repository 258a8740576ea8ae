// CUDA facts of this build. With LOGO_FAST_WITH_CUDA the answers come from cuda_runtime_info.cu.
#include <string>

namespace logo_fast {
#ifndef LOGO_FAST_WITH_CUDA
bool compiled_with_cuda() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_runtime_error() { return "extension built without CUDA"; }
#endif
}  // namespace logo_fast
