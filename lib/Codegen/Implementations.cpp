//===- Implementations.cpp - A primitive's implementation, by measurement -===//
//
// oneDNN ranks a primitive's implementations by instruction set, not by
// speed: on a CPU with AMX it takes an AMX int8 convolution first, which
// for small convolutions (a MobileNetV3's at batch 1) was 2-3x slower than
// the AVX-512 VNNI one, and oneDNN 2.6 caps the instruction set only once
// per process (the ViT's int8 linears lost the same way). So where
// oneDNN's first choice for a convolution or linear is an AMX kernel, the
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
#include <map>
#include <mutex>

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
/// weights, destination, scratchpad, run-time scales and zero points (the
/// dynamic linears') and binary post-op operands.
std::vector<int> argIds(const dnnl::primitive_desc_base &PD) {
  std::vector<int> Ids = {DNNL_ARG_SRC,
                          DNNL_ARG_SRC_1,
                          DNNL_ARG_WEIGHTS,
                          DNNL_ARG_BIAS,
                          DNNL_ARG_DST,
                          DNNL_ARG_SCRATCHPAD,
                          DNNL_ARG_ATTR_OUTPUT_SCALES,
                          DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
                          DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_WEIGHTS,
                          DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST};
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

/// Whether \p Other ran clearly faster than \p First on scratch memory.
bool otherIsFaster(const dnnl::primitive_desc_base &First,
                   const dnnl::primitive_desc_base &Other,
                   const dnnl::engine &E) {
  std::vector<Candidate> Cands;
  for (const dnnl::primitive_desc_base &C : {First, Other})
    if (auto Made = makeCandidate(C, E))
      Cands.push_back(std::move(*Made));
  if (Cands.size() < 2)
    return false;
  try {
    dnnl::stream S(E);
    double WarmMs = runMs(Cands[0], S);
    if (WarmMs > LargeMs)
      return false;
    WarmMs += runMs(Cands[1], S);
    int Rounds = std::clamp(static_cast<int>(BudgetMs / std::max(WarmMs, 1e-3)),
                            1, MaxRounds);
    // Rounds interleave the candidates, so that a load spike costs each of
    // them about alike; the minimum is what each can do.
    for (int R = 0; R < Rounds; ++R)
      for (Candidate &C : Cands)
        C.BestMs = std::min(C.BestMs, runMs(C, S));
  } catch (const dnnl::error &) {
    // An argument this does not provide: oneDNN's choice stands.
    return false;
  }
  return Cands[1].BestMs < Cands[0].BestMs * ClearlyFaster;
}

/// Appends \p Vals to \p Key as bytes.
template <typename T>
void appendAll(std::string &Key, const T *Vals, size_t N) {
  Key.append(reinterpret_cast<const char *>(Vals), N * sizeof(T));
}

/// Appends what defines \p Md: dims, data type and blocking (not its
/// unused bytes, which oneDNN leaves unset).
void appendDesc(std::string &Key, const dnnl::memory::desc &Md) {
  const dnnl_memory_desc_t &D = Md.data;
  appendAll(Key, &D.ndims, 1);
  appendAll(Key, D.dims, D.ndims);
  appendAll(Key, &D.data_type, 1);
  appendAll(Key, &D.format_kind, 1);
  if (D.format_kind != dnnl_blocked)
    return;
  const dnnl_blocking_desc_t &B = D.format_desc.blocking;
  appendAll(Key, B.strides, D.ndims);
  appendAll(Key, &B.inner_nblks, 1);
  appendAll(Key, B.inner_blks, B.inner_nblks);
  appendAll(Key, B.inner_idxs, B.inner_nblks);
}

/// What a kernel's speed depends on: the operands' layouts, a
/// convolution's geometry and the post-op chain's kinds and algorithms
/// (not the scales).
std::string decisionKey(const dnnl::primitive_desc_base &PD,
                        const_dnnl_op_desc_t OpD) {
  std::string Key(1, static_cast<char>(PD.get_kind()));
  for (const dnnl::memory::desc &Md :
       {PD.src_desc(), PD.weights_desc(), PD.weights_desc(1), PD.dst_desc()})
    appendDesc(Key, Md);
  if (PD.get_kind() == dnnl::primitive::kind::convolution) {
    const auto &C = *static_cast<const dnnl_convolution_desc_t *>(OpD);
    int Spatial = std::max(C.src_desc.ndims - 2, 0);
    appendAll(Key, C.strides, Spatial);
    appendAll(Key, C.dilates, Spatial);
    appendAll(Key, C.padding[0], Spatial);
    appendAll(Key, C.padding[1], Spatial);
  }
  // One letter per post-op (the kind's enum value is not reliable for
  // every kind in oneDNN 2.6), and an eltwise's algorithm.
  dnnl::post_ops Post = PD.get_primitive_attr().get_post_ops();
  for (int I = 0; I < Post.len(); ++I) {
    switch (Post.kind(I)) {
    case dnnl::primitive::kind::eltwise: {
      float Scale, Alpha, Beta;
      dnnl::algorithm Alg;
      Post.get_params_eltwise(I, Scale, Alg, Alpha, Beta);
      Key += 'e';
      appendAll(Key, &Alg, 1);
      break;
    }
    case dnnl::primitive::kind::sum:
      Key += 's';
      break;
    case dnnl::primitive::kind::binary:
      Key += 'b';
      break;
    default:
      Key += 'o';
      break;
    }
  }
  return Key;
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
  auto Kind = PD.get_kind();
  if (!isaOf(First).contains("amx") ||
      (Kind != dnnl::primitive::kind::convolution &&
       Kind != dnnl::primitive::kind::matmul))
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
  // One decision per operation and post-op chain for the process, so that
  // compiling a module again gives the same kernels (and bits).
  std::string Key = decisionKey(PD, OpD);
  static std::mutex Mu;
  static std::map<std::string, bool> Decided;
  {
    std::lock_guard<std::mutex> Lock(Mu);
    auto It = Decided.find(Key);
    if (It != Decided.end())
      return It->second ? *Other : PD;
  }
  bool TakeOther = otherIsFaster(PD, *Other, E);
  std::lock_guard<std::mutex> Lock(Mu);
  return Decided.emplace(Key, TakeOther).first->second ? *Other : PD;
}
