// Registration hooks of the ops compiled into logo_fast._C, and the build's CUDA facts.
#pragma once

#include <string>

#include <pybind11/pybind11.h>

namespace logo_fast {

// Defined in cuda_runtime_info.cpp (CPU build) or cuda_runtime_info.cu (CUDA build).
bool compiled_with_cuda();
int cuda_device_count();
std::string cuda_runtime_error();

// Each op file defines one register_<op>(module); register_all calls them in order.
void register_weighted_sample(pybind11::module_& m);

inline void register_all(pybind11::module_& m) { register_weighted_sample(m); }

}  // namespace logo_fast
