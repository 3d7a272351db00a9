//===- FunctionalArith.cpp - sub, div, interpolate, embedding, split ------===//
//
// The arith family's functionals and Value operators. split and chunk
// return one narrow per piece: the IR gives every node one tensor type, so
// a multi-output op is recorded as its pieces, each a single-output node
// reading the input (what torch.fx's getitem nodes after a split are).
//
//===----------------------------------------------------------------------===//

#include "qfx/NN/Functional.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Support/Error.h"

#include <numeric>

using namespace qfx;
using namespace qfx::nn;

Value F::sub(const Value &A, const Value &B, double Alpha) {
  if (Alpha == 1.0)
    return dispatch("sub", {A, B});
  return dispatch("sub", {A, B}, {{"alpha", OpArg(Alpha)}});
}
Value F::sub(const Value &A, double S) { return dispatch("sub", {A, S}); }
Value F::rsub(const Value &A, double S) { return dispatch("rsub", {A, S}); }

static OpKwargs roundingKwargs(const std::string &Mode) {
  if (Mode.empty())
    return {};
  return {{"rounding_mode", OpArg(Argument::string(Mode))}};
}

Value F::div(const Value &A, const Value &B, const std::string &RoundingMode) {
  return dispatch("div", {A, B}, roundingKwargs(RoundingMode));
}
Value F::div(const Value &A, double S, const std::string &RoundingMode) {
  return dispatch("div", {A, S}, roundingKwargs(RoundingMode));
}
Value F::neg(const Value &X) { return dispatch("neg", {X}); }
Value F::reciprocal(const Value &X) { return dispatch("reciprocal", {X}); }

Value nn::operator-(const Value &A, const Value &B) { return F::sub(A, B); }
Value nn::operator-(const Value &A, double S) { return F::sub(A, S); }
Value nn::operator-(double S, const Value &A) { return F::rsub(A, S); }
Value nn::operator-(const Value &A) { return F::neg(A); }
Value nn::operator/(const Value &A, const Value &B) { return F::div(A, B); }
Value nn::operator/(const Value &A, double S) { return F::div(A, S); }
Value nn::operator/(double S, const Value &A) { return F::reciprocal(A) * S; }

Value F::interpolate(const Value &X, const InterpolateOptions &O) {
  OpKwargs KW;
  if (O.Size)
    KW.emplace_back("size", OpArg(Argument::ints(*O.Size)));
  if (O.ScaleFactor) {
    std::vector<Argument> L;
    for (double F : *O.ScaleFactor)
      L.push_back(Argument::real(F));
    KW.emplace_back("scale_factor", OpArg(Argument::list(std::move(L))));
  }
  if (O.Mode != "nearest")
    KW.emplace_back("mode", OpArg(Argument::string(O.Mode)));
  if (O.AlignCorners)
    KW.emplace_back("align_corners", OpArg(*O.AlignCorners));
  if (O.RecomputeScaleFactor)
    KW.emplace_back("recompute_scale_factor", OpArg(*O.RecomputeScaleFactor));
  return dispatch("interpolate", {X}, std::move(KW));
}

Value F::embedding(const Value &Indices, const Value &Weight,
                   std::optional<int64_t> PaddingIdx) {
  if (!PaddingIdx)
    return dispatch("embedding", {Indices, Weight});
  return dispatch("embedding", {Indices, Weight, *PaddingIdx});
}

Value F::narrow(const Value &X, int64_t Dim, int64_t Start, int64_t Length) {
  return dispatch("narrow", {X, Dim, Start, Length});
}

/// The dimension \p Dim of \p X normalized, or an error naming \p Op.
static int64_t pieceDim(const Value &X, int64_t Dim, const char *Op) {
  llvm::Expected<int64_t> D = ref::normalizeDim(Dim, X.dim());
  if (!D)
    throw Error(std::string(Op) + ": dim: " + errorToString(D.takeError()));
  return *D;
}

/// The narrows of \p X along \p Dim of extents \p Sizes.
static std::vector<Value> pieces(const Value &X, int64_t Dim,
                                 const std::vector<int64_t> &Sizes) {
  std::vector<Value> R;
  int64_t Start = 0;
  for (int64_t S : Sizes) {
    R.push_back(F::narrow(X, Dim, Start, S));
    Start += S;
  }
  return R;
}

std::vector<Value> F::split(const Value &X, int64_t SplitSize, int64_t Dim) {
  int64_t D = pieceDim(X, Dim, "split");
  int64_t Extent = X.shape()[D];
  if (SplitSize < 0 || (SplitSize == 0 && Extent != 0))
    throw Error("split: split_size_or_sections: split_size must be positive, "
                "got " +
                std::to_string(SplitSize));
  return pieces(X, D, ref::splitSizes(Extent, SplitSize));
}

std::vector<Value> F::split(const Value &X, const std::vector<int64_t> &Sizes,
                            int64_t Dim) {
  int64_t D = pieceDim(X, Dim, "split");
  int64_t Extent = X.shape()[D];
  for (int64_t S : Sizes)
    if (S < 0)
      throw Error("split: split_size_or_sections: sizes must be "
                  "non-negative, got " +
                  formatShape(Sizes));
  int64_t Sum = std::accumulate(Sizes.begin(), Sizes.end(), int64_t(0));
  if (Sum != Extent)
    throw Error("split: split_size_or_sections: sizes " + formatShape(Sizes) +
                " sum to " + std::to_string(Sum) + " but dimension " +
                std::to_string(D) + " has extent " + std::to_string(Extent));
  return pieces(X, D, Sizes);
}

std::vector<Value> F::chunk(const Value &X, int64_t Chunks, int64_t Dim) {
  int64_t D = pieceDim(X, Dim, "chunk");
  if (Chunks <= 0)
    throw Error("chunk: chunks: must be positive, got " +
                std::to_string(Chunks));
  return pieces(X, D, ref::chunkSizes(X.shape()[D], Chunks));
}

std::vector<Value> Value::split(int64_t SplitSize, int64_t Dim) const {
  return F::split(*this, SplitSize, Dim);
}

std::vector<Value> Value::chunk(int64_t Chunks, int64_t Dim) const {
  return F::chunk(*this, Chunks, Dim);
}
