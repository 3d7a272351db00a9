//===- CpuIsa.h - The instruction sets oneDNN's kernels may use -*- C++ -*-===//
//
// oneDNN picks its kernels' instruction set once per process. On CPUs with
// AMX its int8 kernels for small convolutions and matmuls spend more on
// tile setup than on arithmetic, where the AVX-512 VNNI kernels do not
// (docs/performance.md has the measurements); a process that runs small
// int8 models can cap the set before compiling anything.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_BACKEND_ONEDNN_CPUISA_H
#define QFX_BACKEND_ONEDNN_CPUISA_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace qfx {

/// oneDNN's names of the instruction sets a cap can name, from the
/// smallest: "sse41", "avx", "avx2", "avx2_vnni", "avx512_core",
/// "avx512_core_vnni", "avx512_core_bf16", "avx512_core_amx", and "all".
std::vector<std::string> cpuIsaNames();

/// Caps the instruction sets oneDNN may use in this process at \p Name (one
/// of cpuIsaNames()); a cap above the CPU's own set changes nothing. oneDNN
/// fixes its choice when it generates its first kernel, so this fails once
/// any primitive exists, as it does for an unknown name.
llvm::Error setMaxCpuIsa(llvm::StringRef Name);

/// The instruction set oneDNN dispatches to, by the names above (for
/// example "avx512_core_amx" on a CPU with AMX and no cap).
std::string effectiveCpuIsa();

/// Caps qfx's own host kernels, not oneDNN's, at \p Name (one of
/// cpuIsaNames()): below avx512_core they run their portable loops, the
/// code a CPU without AVX-512 runs. Unlike oneDNN's cap it may change at any
/// time; compiled modules follow it from their next run. Unknown names are
/// an error.
llvm::Error setMaxHostCpuIsa(llvm::StringRef Name);

/// Whether qfx's own host kernels may use AVX-512 (BW and VL; VBMI where the
/// CPU has it): the CPU has it, and both oneDNN's cap (setMaxCpuIsa, or
/// oneDNN's DNNL_MAX_CPU_ISA variable) and setMaxHostCpuIsa's admit
/// avx512_core. A cap on oneDNN thus governs all the code a compiled module
/// runs.
bool hostMayUseAvx512();

} // namespace qfx

#endif // QFX_BACKEND_ONEDNN_CPUISA_H
