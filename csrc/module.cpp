// logo_fast._C: the pybind11 module. No torch headers: ops take raw pointers, sizes and a CUDA
// stream, so one build serves every supported torch version. Each op registers itself from its
// own file through a register_* function declared in registry.h.
#include <pybind11/pybind11.h>

#include "registry.h"

#ifndef LOGO_FAST_CUDA_ARCHS
#define LOGO_FAST_CUDA_ARCHS ""
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "logo_fast native extension: C++ CPU path and (when compiled) CUDA path";
  m.def("compiled_with_cuda", []() { return logo_fast::compiled_with_cuda(); },
        "True when the CUDA sources were compiled into this build");
  m.def("cuda_archs", []() { return std::string(LOGO_FAST_CUDA_ARCHS); },
        "SM versions the CUDA path was compiled for, ';'-separated (empty when CPU-only)");
  m.def("cuda_device_count", []() { return logo_fast::cuda_device_count(); },
        "CUDA devices visible to the extension's runtime (0 without CUDA or without a GPU)");
  m.def("cuda_runtime_error", []() { return logo_fast::cuda_runtime_error(); },
        "Why cuda_device_count() is 0, as the CUDA runtime reports it ('' when devices exist)");
  logo_fast::register_all(m);
}
