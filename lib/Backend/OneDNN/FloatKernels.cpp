//===- FloatKernels.cpp - oneDNN fp32 primitives for hot float ops -------===//
//
// Every op builds (once per shape and parameters) an Entry: the main
// primitive, the layouts it wants and the reorders between those and the
// callers' plain layouts. Entries live in a deterministic std::map; a call
// looks one up, wraps the tensors' storage in oneDNN memories and runs it.
//
//===----------------------------------------------------------------------===//

#include "qfx/Backend/OneDNN/FloatKernels.h"

#include "DnnlSupport.h"

#include "llvm/Support/ErrorHandling.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

using namespace qfx;
using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using namespace qfx::onednn::detail;

namespace {

constexpr memory::data_type F32 = memory::data_type::f32;

//===----------------------------------------------------------------------===//
// Cached primitives
//===----------------------------------------------------------------------===//

/// One op instance: the callers' layouts (User*), the main primitive's
/// layouts and the reorders between them. Weights and bias descriptors are
/// empty for ops without them.
struct Entry {
  memory::desc UserSrc, UserWei, UserDst;
  memory::desc Src, Wei, Bias, Dst;
  Step Main, SrcIn, WeiIn, DstOut;
};

/// Builds the entry for \p Prim, made from \p PD, whose layouts may differ
/// from the callers'. \p UserWei is empty for ops without weights.
Entry makeEntry(const dnnl::primitive_desc &PD, dnnl::primitive Prim,
                const memory::desc &UserSrc, const memory::desc &UserWei,
                const memory::desc &UserDst) {
  Entry E;
  E.UserSrc = UserSrc;
  E.UserWei = UserWei;
  E.UserDst = UserDst;
  E.Src = PD.src_desc(0);
  E.Dst = PD.dst_desc(0);
  // Weights and bias are weights #0 and #1; queries of absent ones give
  // empty descriptors.
  E.Wei = PD.weights_desc(0);
  E.Bias = PD.weights_desc(1);
  E.Main = {std::move(Prim), PD.scratchpad_desc()};
  E.SrcIn = makeReorder(UserSrc, E.Src);
  if (UserWei)
    E.WeiIn = makeReorder(UserWei, E.Wei);
  E.DstOut = makeReorder(E.Dst, UserDst);
  return E;
}

/// The first element of every cache Key (see DnnlSupport.h).
enum OpId : int64_t { OpConv2d, OpLinear, OpMaxPool2d, OpAvgPool2d };

PrimitiveCache<Entry> &cache() {
  static PrimitiveCache<Entry> C;
  return C;
}

template <typename BuildFn>
std::shared_ptr<const Entry> lookup(const Key &K, BuildFn &&Build) {
  return cache().lookup(K, std::forward<BuildFn>(Build));
}

//===----------------------------------------------------------------------===//
// Execution
//===----------------------------------------------------------------------===//

void *mutableData(const Tensor &T) { return const_cast<void *>(T.rawData()); }

/// \p User itself when no reorder is needed, else a reordered copy.
memory reorderIn(const Step &R, const memory &User, const memory::desc &To) {
  if (!R)
    return User;
  memory M(To, engine());
  run(R, {{DNNL_ARG_FROM, User}, {DNNL_ARG_TO, M}});
  return M;
}

/// Runs \p E on the tensors' storage (caller layouts), writing \p Y.
void execute(const Entry &E, const Tensor &X, const Tensor *W,
             const Tensor *Bias, Tensor &Y) {
  std::unordered_map<int, memory> Args;
  memory UserSrc(E.UserSrc, engine(), mutableData(X));
  Args.emplace(DNNL_ARG_SRC, reorderIn(E.SrcIn, UserSrc, E.Src));
  if (W) {
    memory UserWei(E.UserWei, engine(), mutableData(*W));
    Args.emplace(DNNL_ARG_WEIGHTS, reorderIn(E.WeiIn, UserWei, E.Wei));
  }
  if (Bias)
    Args.emplace(DNNL_ARG_BIAS, memory(E.Bias, engine(), mutableData(*Bias)));
  memory UserDst(E.UserDst, engine(), Y.rawData());
  memory Dst = E.DstOut ? memory(E.Dst, engine()) : UserDst;
  Args.emplace(DNNL_ARG_DST, Dst);
  run(E.Main, std::move(Args));
  if (E.DstOut)
    run(E.DstOut, {{DNNL_ARG_FROM, Dst}, {DNNL_ARG_TO, UserDst}});
  stream().wait();
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

void assertF32(const Tensor &T, int64_t Rank) {
  (void)T;
  (void)Rank;
  assert(T.dtype() == DType::F32 && T.hasData() && "f32 tensor expected");
  assert((Rank < 0 || T.rank() == Rank) && "unexpected rank");
}

/// PyTorch's (and oneDNN's) floor-mode window count along one dimension.
int64_t windows(int64_t In, int64_t PadSum, int64_t Extent, int64_t Stride) {
  return (In + PadSum - Extent) / Stride + 1;
}

/// PyTorch's pooling output size: ceil mode rounds the window count up but
/// drops a last window that would start in the right padding.
int64_t poolOut(int64_t In, int64_t K, int64_t S, int64_t Pad, int64_t D,
                bool Ceil) {
  int64_t Extent = D * (K - 1) + 1;
  if (!Ceil)
    return windows(In, 2 * Pad, Extent, S);
  int64_t Out = (In + 2 * Pad - Extent + S - 1) / S + 1;
  if ((Out - 1) * S >= In + Pad)
    --Out;
  return Out;
}

/// Right/bottom padding that makes oneDNN's floor rule produce \p Out
/// windows. Never negative: when floor mode leaves input rows unused it can
/// come out below zero, and zero yields the same window count because the
/// shortfall is less than one stride.
int64_t poolPadRight(int64_t In, int64_t Out, int64_t K, int64_t S,
                     int64_t PadL, int64_t D) {
  return std::max<int64_t>(0, (Out - 1) * S + D * (K - 1) + 1 - In - PadL);
}

} // namespace

//===----------------------------------------------------------------------===//
// conv2d
//===----------------------------------------------------------------------===//

namespace {

/// Shapes and parameters of one conv2d, in the cache key's order.
struct ConvShape {
  int64_t N, C, H, W, O, KH, KW, OH, OW, Groups;
  ref::Conv2dParams P;
  bool HasBias;

  Key key() const {
    return {OpConv2d,
            N,
            C,
            H,
            W,
            O,
            KH,
            KW,
            Groups,
            P.Stride[0],
            P.Stride[1],
            P.Padding[0],
            P.Padding[1],
            P.Dilation[0],
            P.Dilation[1],
            HasBias};
  }
};

/// The primitive picks its own layouts (format_tag::any): blocked layouts
/// are much faster than NCHW, and the reorders are cheap next to the
/// convolution itself.
Entry buildConv(const ConvShape &S) {
  const auto &P = S.P;
  memory::dims Src{S.N, S.C, S.H, S.W}, Dst{S.N, S.O, S.OH, S.OW};
  // Grouped weights are the same OIHW bytes viewed as [G, O/G, I/G, KH, KW].
  bool Grouped = S.Groups > 1;
  memory::dims Wei = Grouped ? memory::dims{S.Groups, S.O / S.Groups,
                                            S.C / S.Groups, S.KH, S.KW}
                             : memory::dims{S.O, S.C, S.KH, S.KW};
  memory::desc UserWei(Wei, F32, Grouped ? Tag::goihw : Tag::oihw);
  memory::desc AnySrc(Src, F32, Tag::any), AnyWei(Wei, F32, Tag::any),
      AnyDst(Dst, F32, Tag::any), BiasMd({S.O}, F32, Tag::x);
  memory::dims Strides{P.Stride[0], P.Stride[1]};
  // oneDNN counts dilation as the gap between taps: PyTorch's minus one.
  memory::dims Dil{P.Dilation[0] - 1, P.Dilation[1] - 1};
  memory::dims Pad{P.Padding[0], P.Padding[1]};
  using Conv = dnnl::convolution_forward;
  auto Prop = dnnl::prop_kind::forward_inference;
  auto Alg = dnnl::algorithm::convolution_direct;
  Conv::desc D = S.HasBias ? Conv::desc(Prop, Alg, AnySrc, AnyWei, BiasMd,
                                        AnyDst, Strides, Dil, Pad, Pad)
                           : Conv::desc(Prop, Alg, AnySrc, AnyWei, AnyDst,
                                        Strides, Dil, Pad, Pad);
  Conv::primitive_desc PD(D, userScratchpad(), engine());
  return makeEntry(PD, Conv(PD), memory::desc(Src, F32, Tag::nchw), UserWei,
                   memory::desc(Dst, F32, Tag::nchw));
}

} // namespace

Tensor onednn::conv2d(const Tensor &X, const Tensor &W, const Tensor *Bias,
                      const ref::Conv2dParams &P) {
  assertF32(X, 4);
  assertF32(W, 4);
  if (Bias)
    assertF32(*Bias, 1);
  ConvShape S{X.dim(0), X.dim(1), X.dim(2), X.dim(3),
              W.dim(0), W.dim(2), W.dim(3), 0,
              0,        P.Groups, P,        Bias != nullptr};
  S.OH = windows(S.H, 2 * P.Padding[0], P.Dilation[0] * (S.KH - 1) + 1,
                 P.Stride[0]);
  S.OW = windows(S.W, 2 * P.Padding[1], P.Dilation[1] * (S.KW - 1) + 1,
                 P.Stride[1]);
  assert(W.dim(1) * P.Groups == S.C && "conv2d: channels do not match");
  // The primitive writes every element.
  Tensor Y = Tensor::uninitialized(DType::F32, {S.N, S.O, S.OH, S.OW});
  if (Y.numElements() == 0)
    return Y;
  guarded("conv2d", [&] {
    auto E = lookup(S.key(), [&] { return buildConv(S); });
    execute(*E, X, &W, Bias, Y);
  });
  return Y;
}

//===----------------------------------------------------------------------===//
// linear
//===----------------------------------------------------------------------===//

namespace {

/// y = x W^T + b as a matmul whose weights are W's bytes read transposed
/// ([in, out] with strides {1, in}), so no copy of W is needed.
Entry buildLinear(int64_t M, int64_t K, int64_t N, bool HasBias) {
  memory::desc Src({M, K}, F32, Tag::ab), Dst({M, N}, F32, Tag::ab);
  memory::desc Wei({K, N}, F32, memory::dims{1, K});
  memory::desc BiasMd({1, N}, F32, Tag::ab);
  using MatMul = dnnl::matmul;
  MatMul::desc D = HasBias ? MatMul::desc(Src, Wei, BiasMd, Dst)
                           : MatMul::desc(Src, Wei, Dst);
  MatMul::primitive_desc PD(D, userScratchpad(), engine());
  return makeEntry(PD, MatMul(PD), Src, Wei, Dst);
}

/// Fills each row of \p Y with \p Bias (or zeros): a product over an empty
/// input dimension.
void fillWithBias(Tensor &Y, const Tensor *Bias, int64_t M, int64_t N) {
  float *Out = Y.data<float>();
  for (int64_t I = 0; I < M; ++I)
    for (int64_t J = 0; J < N; ++J)
      Out[I * N + J] = Bias ? Bias->data<float>()[J] : 0.0f;
}

} // namespace

Tensor onednn::linear(const Tensor &X, const Tensor &W, const Tensor *Bias) {
  assertF32(X, -1);
  assertF32(W, 2);
  assert(X.rank() >= 1 && X.shape().back() == W.dim(1) &&
         "linear: input features do not match");
  if (Bias)
    assertF32(*Bias, 1);
  int64_t K = W.dim(1), N = W.dim(0), M = numElements(X.shape().drop_back());
  Shape OutShape(X.shape().begin(), X.shape().end());
  OutShape.back() = N;
  Tensor Y(DType::F32, OutShape);
  if (Y.numElements() == 0)
    return Y;
  if (K == 0) {
    fillWithBias(Y, Bias, M, N);
    return Y;
  }
  guarded("linear", [&] {
    Key LinearKey{OpLinear, M, K, N, Bias != nullptr};
    auto E = lookup(LinearKey,
                    [&] { return buildLinear(M, K, N, Bias != nullptr); });
    execute(*E, X, &W, Bias, Y);
  });
  return Y;
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

bool onednn::supportsPool2d(const ref::Pool2dParams &P, bool IsMax) {
  // Max pooling ignores padding and counting rules; oneDNN matches PyTorch
  // for every stride, padding, dilation and ceil mode.
  if (IsMax)
    return true;
  // oneDNN's average always divides by a window count; it has no divisor
  // parameter.
  if (P.DivisorOverride)
    return false;
  // PyTorch's avg_pool2d has no dilation, so there is no PyTorch rule for
  // counting dilated taps to match.
  if (P.Dilation[0] != 1 || P.Dilation[1] != 1)
    return false;
  // With padding counted, oneDNN divides by the full kernel area, PyTorch
  // by the part of the window inside the declared padding. They differ only
  // for a ceil-mode window reaching past that padding, which needs a stride
  // above one; whether it happens depends on the input size, unknown here.
  if (P.CountIncludePad && P.CeilMode && (P.Stride[0] > 1 || P.Stride[1] > 1))
    return false;
  return true;
}

namespace {

/// Shapes and parameters of one pooling, with the right/bottom padding that
/// reproduces PyTorch's output size.
struct PoolShape {
  int64_t N, C, H, W, OH, OW, PadRH, PadRW;
  ref::Pool2dParams P;
  bool IsMax;

  PoolShape(const Tensor &X, const ref::Pool2dParams &Params, bool Max)
      : N(X.dim(0)), C(X.dim(1)), H(X.dim(2)), W(X.dim(3)), P(Params),
        IsMax(Max) {
    OH = poolOut(H, P.Kernel[0], P.Stride[0], P.Padding[0], P.Dilation[0],
                 P.CeilMode);
    OW = poolOut(W, P.Kernel[1], P.Stride[1], P.Padding[1], P.Dilation[1],
                 P.CeilMode);
    PadRH = poolPadRight(H, OH, P.Kernel[0], P.Stride[0], P.Padding[0],
                         P.Dilation[0]);
    PadRW = poolPadRight(W, OW, P.Kernel[1], P.Stride[1], P.Padding[1],
                         P.Dilation[1]);
  }

  Key key() const {
    bool IncludePad = !IsMax && P.CountIncludePad;
    return {IsMax ? OpMaxPool2d : OpAvgPool2d,
            N,
            C,
            H,
            W,
            P.Kernel[0],
            P.Kernel[1],
            P.Stride[0],
            P.Stride[1],
            P.Padding[0],
            P.Padding[1],
            PadRH,
            PadRW,
            P.Dilation[0],
            P.Dilation[1],
            IncludePad};
  }
};

/// Pooling is memory-bound and has NCHW implementations, so it runs on the
/// callers' layout and needs no reorders.
Entry buildPool(const PoolShape &S) {
  const auto &P = S.P;
  memory::desc Src({S.N, S.C, S.H, S.W}, F32, Tag::nchw);
  memory::desc Dst({S.N, S.C, S.OH, S.OW}, F32, Tag::nchw);
  auto Alg = S.IsMax             ? dnnl::algorithm::pooling_max
             : P.CountIncludePad ? dnnl::algorithm::pooling_avg_include_padding
                                 : dnnl::algorithm::pooling_avg_exclude_padding;
  // pooling_v2 is the oneDNN 2.x pooling that takes a dilation (again the
  // gap between taps: PyTorch's minus one).
  using Pool = dnnl::pooling_v2_forward;
  Pool::desc D(dnnl::prop_kind::forward_inference, Alg, Src, Dst,
               {P.Stride[0], P.Stride[1]}, {P.Kernel[0], P.Kernel[1]},
               {P.Dilation[0] - 1, P.Dilation[1] - 1},
               {P.Padding[0], P.Padding[1]}, {S.PadRH, S.PadRW});
  Pool::primitive_desc PD(D, userScratchpad(), engine());
  return makeEntry(PD, Pool(PD), Src, memory::desc(), Dst);
}

/// Whether the window of output (\p OY, \p OX) reads a NaN in plane \p XP.
bool windowHasNaN(const float *XP, const PoolShape &S, int64_t OY, int64_t OX) {
  const auto &P = S.P;
  for (int64_t KY = 0; KY < P.Kernel[0]; ++KY) {
    int64_t IY = OY * P.Stride[0] - P.Padding[0] + KY * P.Dilation[0];
    if (IY < 0 || IY >= S.H)
      continue;
    for (int64_t KX = 0; KX < P.Kernel[1]; ++KX) {
      int64_t IX = OX * P.Stride[1] - P.Padding[1] + KX * P.Dilation[1];
      if (IX >= 0 && IX < S.W && std::isnan(XP[IY * S.W + IX]))
        return true;
    }
  }
  return false;
}

/// oneDNN's max pooling skips NaN (every comparison with it is false) where
/// PyTorch propagates it, so the windows of planes holding a NaN are
/// rechecked. Planes without one, the usual case, cost a scan.
void propagateNaN(const Tensor &X, const PoolShape &S, Tensor &Y) {
  const int64_t Plane = S.H * S.W, OutPlane = S.OH * S.OW;
  for (int64_t PI = 0; PI < S.N * S.C; ++PI) {
    const float *XP = X.data<float>() + PI * Plane;
    if (std::none_of(XP, XP + Plane, [](float V) { return std::isnan(V); }))
      continue;
    float *YP = Y.data<float>() + PI * OutPlane;
    for (int64_t OY = 0; OY < S.OH; ++OY)
      for (int64_t OX = 0; OX < S.OW; ++OX)
        if (windowHasNaN(XP, S, OY, OX))
          YP[OY * S.OW + OX] = std::numeric_limits<float>::quiet_NaN();
  }
}

Tensor pool2d(const Tensor &X, const ref::Pool2dParams &P, bool IsMax) {
  assertF32(X, 4);
  assert(onednn::supportsPool2d(P, IsMax) &&
         "pooling parameters oneDNN cannot match; use the reference kernel");
  PoolShape S(X, P, IsMax);
  Tensor Y = Tensor::uninitialized(DType::F32, {S.N, S.C, S.OH, S.OW});
  if (Y.numElements() == 0)
    return Y;
  guarded(IsMax ? "max_pool2d" : "avg_pool2d", [&] {
    auto E = lookup(S.key(), [&] { return buildPool(S); });
    execute(*E, X, nullptr, nullptr, Y);
  });
  // Averages propagate NaN through the sum already.
  if (IsMax)
    propagateNaN(X, S, Y);
  return Y;
}

} // namespace

Tensor onednn::maxPool2d(const Tensor &X, const ref::Pool2dParams &P) {
  return pool2d(X, P, /*IsMax=*/true);
}

Tensor onednn::avgPool2d(const Tensor &X, const ref::Pool2dParams &P) {
  return pool2d(X, P, /*IsMax=*/false);
}

size_t onednn::primitiveCacheSize() { return cache().size(); }
