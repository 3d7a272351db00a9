//===- Implementations.cpp - A primitive's implementation, by measurement -===//
//
// oneDNN ranks a primitive's implementations by instruction set, not by
// speed: on a CPU with AMX it takes an AMX int8 convolution first, which
// for small convolutions (a MobileNetV3's at batch 1) was 2-3x slower than
// the AVX-512 VNNI one, and oneDNN 2.6 caps the instruction set only once
// per process. So where oneDNN's first choice is an AMX kernel, the
// lowering times it against the first kernel of another instruction set on
// scratch memory and keeps the faster. Within one instruction set oneDNN's
// order stands: measuring every kernel (each a JIT compilation) made
// compiling several times slower for no gain.
//
//===----------------------------------------------------------------------===//

#include "Program.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>

using namespace qfx;
using namespace qfx::codegen;

namespace {

using Clock = std::chrono::steady_clock;

/// Another implementation must beat oneDNN's first by this factor: ties
/// keep oneDNN's choice.
constexpr double ClearlyFaster = 0.9;
/// Rounds (each runs every candidate once) within this many ms after the
/// warm-up, at least one and at most MaxRounds.
constexpr double BudgetMs = 4.0;
constexpr int MaxRounds = 5;
/// A first choice whose warm-up run takes longer is kept unmeasured: it is
/// large enough for AMX's tile set-up to pay off, and measuring it would
/// cost more compile time than it could save.
constexpr double LargeMs = 4.0;

/// A candidate with scratch memory for every argument it executes with.
struct Candidate {
  dnnl::primitive_desc_base PD;
  dnnl::primitive Prim;
  std::unordered_map<int, dnnl::memory> Args;
  double BestMs = std::numeric_limits<double>::infinity();
};

/// The argument ids a forward primitive may execute with: sources,
/// weights, destination, scratchpad and binary post-op operands.
std::vector<int> argIds(const dnnl::primitive_desc_base &PD) {
  std::vector<int> Ids = {DNNL_ARG_SRC,  DNNL_ARG_SRC_1, DNNL_ARG_WEIGHTS,
                          DNNL_ARG_BIAS, DNNL_ARG_DST,   DNNL_ARG_SCRATCHPAD};
  dnnl::post_ops Post = PD.get_primitive_attr().get_post_ops();
  for (int I = 0; I < Post.len(); ++I)
    if (Post.kind(I) == dnnl::primitive::kind::binary)
      Ids.push_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(I) | DNNL_ARG_SRC_1);
  return Ids;
}

/// The instruction set an implementation name ends with
/// ("brgconv:avx512_core_amx_int8" -> "avx512_core_amx_int8").
llvm::StringRef isaOf(llvm::StringRef Impl) { return Impl.rsplit(':').second; }

/// None when oneDNN cannot make \p PD's primitive after all.
std::optional<Candidate> makeCandidate(const dnnl::primitive_desc_base &PD,
                                       const dnnl::engine &E) {
  try {
    Candidate C{PD, dnnl::primitive(PD.get()), {}};
    for (int Id : argIds(PD)) {
      dnnl::memory::desc Md = PD.query_md(dnnl::query::exec_arg_md, Id);
      if (Md.get_size() == 0)
        continue;
      dnnl::memory M(Md, E);
      // Zeros: an int8 or f32 kernel's speed does not depend on the values.
      std::memset(M.get_data_handle(), 0, Md.get_size());
      C.Args.emplace(Id, std::move(M));
    }
    return C;
  } catch (const dnnl::error &) {
    return std::nullopt;
  }
}

double runMs(Candidate &C, dnnl::stream &S) {
  auto T0 = Clock::now();
  C.Prim.execute(S, C.Args);
  S.wait();
  return std::chrono::duration<double, std::milli>(Clock::now() - T0).count();
}

} // namespace

dnnl::primitive_desc_base
codegen::chooseImplementation(const dnnl::primitive_desc_base &PD,
                              ImplChoice Choice, const dnnl::engine &E) {
  const_dnnl_op_desc_t OpD = nullptr;
  if (dnnl_primitive_desc_query(PD.get(), dnnl_query_op_d, 0, &OpD) !=
          dnnl_success ||
      !OpD)
    return PD;
  std::string First = PD.impl_info_str();
  if (!isaOf(First).contains("amx"))
    return PD;
  dnnl::primitive_attr Attr = PD.get_primitive_attr();
  std::optional<dnnl::primitive_desc_base> Other;
  try {
    dnnl::primitive_desc It(OpD, &Attr, E, nullptr, /*allow_empty=*/true);
    if (!It || It.impl_info_str() != First)
      return PD;
    // Reference kernels are tens of times slower: no alternative.
    while (!Other && It.next_impl()) {
      llvm::StringRef Impl = It.impl_info_str();
      if (!Impl.startswith("ref") && !isaOf(Impl).contains("amx"))
        Other = It;
    }
  } catch (const dnnl::error &) {
    return PD;
  }
  if (!Other || Choice == ImplChoice::Alternative)
    return Other ? *Other : PD;
  std::vector<Candidate> Cands;
  for (const dnnl::primitive_desc_base &C : {PD, *Other})
    if (auto Made = makeCandidate(C, E))
      Cands.push_back(std::move(*Made));
  if (Cands.size() < 2)
    return PD;
  dnnl::stream S(E);
  double WarmMs = runMs(Cands[0], S);
  if (WarmMs > LargeMs)
    return PD;
  WarmMs += runMs(Cands[1], S);
  int Rounds = std::clamp(static_cast<int>(BudgetMs / std::max(WarmMs, 1e-3)),
                          1, MaxRounds);
  // Rounds interleave the candidates, so that a load spike costs each of
  // them about alike; the minimum is what each can do.
  for (int R = 0; R < Rounds; ++R)
    for (Candidate &C : Cands)
      C.BestMs = std::min(C.BestMs, runMs(C, S));
  return Cands[1].BestMs < Cands[0].BestMs * ClearlyFaster ? Cands[1].PD : PD;
}
