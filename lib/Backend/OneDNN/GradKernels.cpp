//===- GradKernels.cpp - oneDNN fp32 convolution backward -----------------===//
//
// Each backward primitive is built once per shape and parameters, with a
// forward-training primitive descriptor as the hint oneDNN requires, and
// picks its own (blocked) layouts. An Entry records the primitive and, per
// argument, the caller's plain layout, the primitive's layout and the
// reorder between them. Entries live in a deterministic std::map; a call
// looks one up, wraps the tensors' storage in oneDNN memories and runs it.
//
// The engine, stream and error helpers repeat FloatKernels.cpp's on purpose:
// they are a few lines, and sharing them would need a private header for
// two files.
//
//===----------------------------------------------------------------------===//

#include "qfx/Backend/OneDNN/GradKernels.h"

#include "DnnlSupport.h"

#include "llvm/Support/ErrorHandling.h"

#include <cassert>
#include <memory>
#include <unordered_map>
#include <utility>
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

/// One argument of a primitive: the caller's layout, the primitive's and
/// the reorder between them (caller to primitive for inputs, the other way
/// for outputs).
struct Port {
  int Arg;
  memory::desc User, Prim;
  Step Convert;
  bool IsOutput;
};

Port makePort(int Arg, const memory::desc &User, const memory::desc &Prim,
              bool IsOutput) {
  Step Convert = IsOutput ? makeReorder(Prim, User) : makeReorder(User, Prim);
  return {Arg, User, Prim, std::move(Convert), IsOutput};
}

/// A backward primitive and its arguments, in the order execute() takes
/// their storage.
struct Entry {
  Step Main;
  std::vector<Port> Ports;
};

/// The first element of every cache Key (see DnnlSupport.h).
enum OpId : int64_t { OpConvBwdData, OpConvBwdWeights };

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

/// Input port \p P's data in the primitive's layout: the caller's storage
/// itself, or a reordered copy of it.
memory bindInput(const Port &P, void *Data) {
  memory User(P.User, engine(), Data);
  if (!P.Convert)
    return User;
  memory Prim(P.Prim, engine());
  run(P.Convert, {{DNNL_ARG_FROM, User}, {DNNL_ARG_TO, Prim}});
  return Prim;
}

const Port &portFor(const Entry &E, int Arg) {
  for (const Port &P : E.Ports)
    if (P.Arg == Arg)
      return P;
  llvm_unreachable("the primitive has no such argument");
}

/// Runs \p E with port I reading or writing \p Data[I] (caller layouts).
/// Arguments already in \p Args (an input reordered once for two
/// primitives) are used as they are.
void execute(const Entry &E, llvm::ArrayRef<void *> Data,
             std::unordered_map<int, memory> Args = {}) {
  assert(Data.size() == E.Ports.size() && "one buffer per port expected");
  std::vector<std::pair<const Port *, std::pair<memory, memory>>> Outs;
  for (size_t I = 0; I < Data.size(); ++I) {
    const Port &P = E.Ports[I];
    if (Args.count(P.Arg))
      continue;
    if (!P.IsOutput) {
      Args.emplace(P.Arg, bindInput(P, Data[I]));
      continue;
    }
    memory User(P.User, engine(), Data[I]);
    memory Prim = P.Convert ? memory(P.Prim, engine()) : User;
    if (P.Convert)
      Outs.push_back({&P, {Prim, User}});
    Args.emplace(P.Arg, Prim);
  }
  run(E.Main, Args);
  for (auto &[P, FromTo] : Outs)
    run(P->Convert,
        {{DNNL_ARG_FROM, FromTo.first}, {DNNL_ARG_TO, FromTo.second}});
  stream().wait();
}

//===----------------------------------------------------------------------===//
// Shapes and descriptors
//===----------------------------------------------------------------------===//

/// Shapes and parameters of one conv2d, in the cache key's order.
struct ConvShape {
  int64_t N, C, H, W, O, KH, KW, OH, OW;
  ref::Conv2dParams P;
  bool HasBias;

  Key key(OpId Op) const {
    return {Op,
            N,
            C,
            H,
            W,
            O,
            KH,
            KW,
            OH,
            OW,
            P.Groups,
            P.Stride[0],
            P.Stride[1],
            P.Padding[0],
            P.Padding[1],
            P.Dilation[0],
            P.Dilation[1],
            HasBias};
  }

  memory::dims src() const { return {N, C, H, W}; }
  memory::dims dst() const { return {N, O, OH, OW}; }
  /// Grouped weights are the same OIHW bytes viewed as [G, O/G, I/G, KH,
  /// KW].
  memory::dims wei() const {
    if (P.Groups == 1)
      return {O, C, KH, KW};
    return {P.Groups, O / P.Groups, C / P.Groups, KH, KW};
  }
  memory::desc userWei() const {
    return memory::desc(wei(), F32, P.Groups == 1 ? Tag::oihw : Tag::goihw);
  }
  memory::dims strides() const { return {P.Stride[0], P.Stride[1]}; }
  /// oneDNN counts dilation as the gap between taps: PyTorch's minus one.
  memory::dims dilation() const {
    return {P.Dilation[0] - 1, P.Dilation[1] - 1};
  }
  /// The same padding on both sides: with it oneDNN's floor rule gives
  /// PyTorch's output size.
  memory::dims padding() const { return {P.Padding[0], P.Padding[1]}; }
};

ConvShape makeShape(llvm::ArrayRef<int64_t> XShape,
                    llvm::ArrayRef<int64_t> WShape,
                    llvm::ArrayRef<int64_t> GradOutShape,
                    const ref::Conv2dParams &P, bool HasBias) {
  assert(XShape.size() == 4 && WShape.size() == 4 && GradOutShape.size() == 4 &&
         "conv2d backward expects 4-D tensors");
  assert(WShape[1] * P.Groups == XShape[1] &&
         "conv2d backward: channels do not match");
  assert(GradOutShape[0] == XShape[0] && GradOutShape[1] == WShape[0] &&
         "conv2d backward: output gradient does not match");
  return {XShape[0],       XShape[1], XShape[2], XShape[3],
          WShape[0],       WShape[2], WShape[3], GradOutShape[2],
          GradOutShape[3], P,         HasBias};
}

/// The forward-training descriptor the backward primitives take as a hint
/// (it fixes the algorithm and layouts they must agree with).
dnnl::convolution_forward::primitive_desc forwardHint(const ConvShape &S) {
  using Conv = dnnl::convolution_forward;
  memory::desc Src(S.src(), F32, Tag::any), Wei(S.wei(), F32, Tag::any),
      Dst(S.dst(), F32, Tag::any), Bias({S.O}, F32, Tag::x);
  auto Prop = dnnl::prop_kind::forward_training;
  auto Alg = dnnl::algorithm::convolution_direct;
  Conv::desc D = S.HasBias
                     ? Conv::desc(Prop, Alg, Src, Wei, Bias, Dst, S.strides(),
                                  S.dilation(), S.padding(), S.padding())
                     : Conv::desc(Prop, Alg, Src, Wei, Dst, S.strides(),
                                  S.dilation(), S.padding(), S.padding());
  return Conv::primitive_desc(D, engine());
}

Entry buildBackwardData(const ConvShape &S) {
  using Bwd = dnnl::convolution_backward_data;
  memory::desc DiffSrc(S.src(), F32, Tag::any), Wei(S.wei(), F32, Tag::any),
      DiffDst(S.dst(), F32, Tag::any);
  Bwd::desc D(dnnl::algorithm::convolution_direct, DiffSrc, Wei, DiffDst,
              S.strides(), S.dilation(), S.padding(), S.padding());
  Bwd::primitive_desc PD(D, userScratchpad(), engine(), forwardHint(S));
  Entry E;
  E.Main = {Bwd(PD), PD.scratchpad_desc()};
  E.Ports.push_back(makePort(DNNL_ARG_DIFF_DST,
                             memory::desc(S.dst(), F32, Tag::nchw),
                             PD.diff_dst_desc(), /*IsOutput=*/false));
  E.Ports.push_back(makePort(DNNL_ARG_WEIGHTS, S.userWei(), PD.weights_desc(),
                             /*IsOutput=*/false));
  E.Ports.push_back(makePort(DNNL_ARG_DIFF_SRC,
                             memory::desc(S.src(), F32, Tag::nchw),
                             PD.diff_src_desc(), /*IsOutput=*/true));
  return E;
}

/// The blocked layouts the weights primitive picks are what makes it fast:
/// with plain NCHW it falls back to a much slower implementation.
Entry buildBackwardWeights(const ConvShape &S) {
  using Bwd = dnnl::convolution_backward_weights;
  memory::desc Src(S.src(), F32, Tag::any), DiffWei(S.wei(), F32, Tag::any),
      DiffDst(S.dst(), F32, Tag::any), DiffBias({S.O}, F32, Tag::x);
  auto Alg = dnnl::algorithm::convolution_direct;
  Bwd::desc D =
      S.HasBias ? Bwd::desc(Alg, Src, DiffWei, DiffBias, DiffDst, S.strides(),
                            S.dilation(), S.padding(), S.padding())
                : Bwd::desc(Alg, Src, DiffWei, DiffDst, S.strides(),
                            S.dilation(), S.padding(), S.padding());
  Bwd::primitive_desc PD(D, userScratchpad(), engine(), forwardHint(S));
  Entry E;
  E.Main = {Bwd(PD), PD.scratchpad_desc()};
  E.Ports.push_back(makePort(DNNL_ARG_SRC,
                             memory::desc(S.src(), F32, Tag::nchw),
                             PD.src_desc(), /*IsOutput=*/false));
  E.Ports.push_back(makePort(DNNL_ARG_DIFF_DST,
                             memory::desc(S.dst(), F32, Tag::nchw),
                             PD.diff_dst_desc(), /*IsOutput=*/false));
  E.Ports.push_back(makePort(DNNL_ARG_DIFF_WEIGHTS, S.userWei(),
                             PD.diff_weights_desc(), /*IsOutput=*/true));
  if (S.HasBias)
    E.Ports.push_back(makePort(DNNL_ARG_DIFF_BIAS, DiffBias,
                               PD.diff_bias_desc(), /*IsOutput=*/true));
  return E;
}

void *mutableData(const Tensor &T) { return const_cast<void *>(T.rawData()); }

/// The bias gradient: GradOut summed over all but the channel dimension.
void sumPerChannel(const Tensor &GradOut, Tensor &GradBias) {
  const int64_t N = GradOut.dim(0), O = GradOut.dim(1);
  const int64_t Plane = GradOut.dim(2) * GradOut.dim(3);
  const float *G = GradOut.data<float>();
  for (int64_t Ch = 0; Ch < O; ++Ch) {
    double Sum = 0;
    for (int64_t NI = 0; NI < N; ++NI)
      for (int64_t I = 0; I < Plane; ++I)
        Sum += G[(NI * O + Ch) * Plane + I];
    GradBias.data<float>()[Ch] = static_cast<float>(Sum);
  }
}

void assertF32(const Tensor &T) {
  (void)T;
  assert(T.dtype() == DType::F32 && T.hasData() && "f32 tensor expected");
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

namespace {

/// Allocates the requested gradients; false when an operand is empty, in
/// which case they are final: zero, but for the bias's, which is still the
/// sum of GradOut (with no input channels the output is the bias alone).
bool allocateGrads(const Tensor &X, const Tensor &W, const Tensor &GradOut,
                   Tensor *GradX, Tensor *GradW, Tensor *GradBias) {
  if (GradX)
    *GradX = Tensor(DType::F32, X.shape());
  if (GradW)
    *GradW = Tensor(DType::F32, W.shape());
  if (GradBias)
    *GradBias = Tensor(DType::F32, {W.dim(0)});
  if (X.numElements() != 0 && W.numElements() != 0 &&
      GradOut.numElements() != 0)
    return true;
  if (GradBias)
    sumPerChannel(GradOut, *GradBias);
  return false;
}

} // namespace

void onednn::conv2dBackward(const Tensor &X, const Tensor &W,
                            const Tensor &GradOut, const ref::Conv2dParams &P,
                            Tensor *GradX, Tensor *GradW, Tensor *GradBias) {
  // X is read only for the weights' gradient, W only for the input's.
  if (GradW)
    assertF32(X);
  if (GradX)
    assertF32(W);
  assertF32(GradOut);
  assert((!GradBias || GradW) && "the bias gradient comes with the weights'");
  if (!allocateGrads(X, W, GradOut, GradX, GradW, GradBias))
    return;
  ConvShape S = makeShape(X.shape(), W.shape(), GradOut.shape(), P,
                          /*HasBias=*/false);
  guarded("conv2d backward", [&] {
    // GradOut in the data primitive's layout, reused by the weights
    // primitive when it wants the same one (it usually does).
    std::unordered_map<int, memory> Shared;
    memory::desc SharedDesc;
    if (GradX) {
      auto E =
          lookup(S.key(OpConvBwdData), [&] { return buildBackwardData(S); });
      const Port &DiffDst = portFor(*E, DNNL_ARG_DIFF_DST);
      Shared.emplace(DNNL_ARG_DIFF_DST,
                     bindInput(DiffDst, mutableData(GradOut)));
      SharedDesc = DiffDst.Prim;
      execute(*E, {mutableData(GradOut), mutableData(W), GradX->rawData()},
              Shared);
    }
    if (!GradW)
      return;
    S.HasBias = GradBias != nullptr;
    auto E = lookup(S.key(OpConvBwdWeights),
                    [&] { return buildBackwardWeights(S); });
    if (!GradX || portFor(*E, DNNL_ARG_DIFF_DST).Prim != SharedDesc)
      Shared.clear();
    std::vector<void *> Data{mutableData(X), mutableData(GradOut),
                             GradW->rawData()};
    if (GradBias)
      Data.push_back(GradBias->rawData());
    execute(*E, Data, Shared);
  });
}

Tensor onednn::conv2dBackwardData(const Tensor &GradOut, const Tensor &W,
                                  llvm::ArrayRef<int64_t> XShape,
                                  const ref::Conv2dParams &P) {
  Tensor GradX;
  // Only X's shape is read: a declared tensor has no storage.
  conv2dBackward(Tensor::declared(DType::F32, XShape), W, GradOut, P, &GradX,
                 nullptr, nullptr);
  return GradX;
}

void onednn::conv2dBackwardWeights(const Tensor &X, const Tensor &GradOut,
                                   llvm::ArrayRef<int64_t> WShape,
                                   const ref::Conv2dParams &P, Tensor &GradW,
                                   Tensor *GradBias) {
  conv2dBackward(X, Tensor::declared(DType::F32, WShape), GradOut, P, nullptr,
                 &GradW, GradBias);
}

size_t onednn::gradPrimitiveCacheSize() { return cache().size(); }
