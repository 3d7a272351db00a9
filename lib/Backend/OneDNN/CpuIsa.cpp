//===- CpuIsa.cpp - The instruction sets oneDNN's kernels may use ---------===//

#include "qfx/Backend/OneDNN/CpuIsa.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <dnnl.hpp>

#include <atomic>

using namespace qfx;

namespace {

struct IsaName {
  const char *Name;
  dnnl::cpu_isa Isa;
};

/// From the smallest set; "all" lifts any cap.
constexpr IsaName Isas[] = {
    {"sse41", dnnl::cpu_isa::sse41},
    {"avx", dnnl::cpu_isa::avx},
    {"avx2", dnnl::cpu_isa::avx2},
    {"avx2_vnni", dnnl::cpu_isa::avx2_vnni},
    {"avx512_core", dnnl::cpu_isa::avx512_core},
    {"avx512_core_vnni", dnnl::cpu_isa::avx512_core_vnni},
    {"avx512_core_bf16", dnnl::cpu_isa::avx512_core_bf16},
    {"avx512_core_amx", dnnl::cpu_isa::avx512_core_amx},
    {"all", dnnl::cpu_isa::all},
};

} // namespace

std::vector<std::string> qfx::cpuIsaNames() {
  std::vector<std::string> Names;
  for (const IsaName &I : Isas)
    Names.push_back(I.Name);
  return Names;
}

/// The named set, or an error naming the known ones.
static llvm::Expected<const IsaName *> lookupIsa(llvm::StringRef Name) {
  const IsaName *Found =
      llvm::find_if(Isas, [&](const IsaName &I) { return Name == I.Name; });
  if (Found == std::end(Isas))
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "unknown instruction set '%s' (expected one of %s)", Name.str().c_str(),
        llvm::join(cpuIsaNames(), ", ").c_str());
  return Found;
}

/// Whether the set \p Isa (cpu_isa bits; 0 is "all") admits avx512_core.
static bool admitsAvx512(unsigned Isa) {
  auto Avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return Isa == 0 || (Isa & Avx512) == Avx512;
}

/// setMaxHostCpuIsa's cap, as cpu_isa bits.
static std::atomic<unsigned> HostCap{0};

llvm::Error qfx::setMaxCpuIsa(llvm::StringRef Name) {
  auto Looked = lookupIsa(Name);
  if (!Looked)
    return Looked.takeError();
  const IsaName *Found = *Looked;
  // oneDNN 2.6 ignores a cap once its choice is fixed, without an error:
  // what it dispatches to afterwards says whether the cap took.
  try {
    dnnl::set_max_cpu_isa(Found->Isa);
  } catch (const dnnl::error &) {
  }
  // ("all" is 0: no cap to check.)
  auto Effective = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  if (Found->Isa == dnnl::cpu_isa::all ||
      (Effective & static_cast<unsigned>(Found->Isa)) == Effective)
    return llvm::Error::success();
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "cannot cap the instruction set at '%s': oneDNN already chose its "
      "kernels' (%s); cap it before compiling anything",
      Name.str().c_str(), effectiveCpuIsa().c_str());
}

std::string qfx::effectiveCpuIsa() {
  dnnl::cpu_isa Isa = dnnl::get_effective_cpu_isa();
  // The largest named set the effective one is: oneDNN reports composite
  // values (for example AMX with bf16) as their own constants.
  for (const IsaName &I : Isas)
    if (I.Isa == Isa)
      return I.Name;
  std::string Best = "unknown";
  for (const IsaName &I : Isas)
    if (I.Isa != dnnl::cpu_isa::all &&
        (static_cast<unsigned>(I.Isa) & static_cast<unsigned>(Isa)) ==
            static_cast<unsigned>(I.Isa))
      Best = I.Name;
  return Best;
}

llvm::Error qfx::setMaxHostCpuIsa(llvm::StringRef Name) {
  auto Found = lookupIsa(Name);
  if (!Found)
    return Found.takeError();
  HostCap = static_cast<unsigned>((*Found)->Isa);
  return llvm::Error::success();
}

bool qfx::hostMayUseAvx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool Cpu =
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return Cpu && admitsAvx512(HostCap) &&
         admitsAvx512(static_cast<unsigned>(dnnl::get_effective_cpu_isa()));
#else
  return false;
#endif
}
