//===- LowerArith.cpp - sub/div, interpolate, embedding, narrow -----------===//
//
// The arith family's lowerings. sub / div / rsub of two f32 tensors are
// oneDNN binary primitives (the second operand may broadcast); with a scalar
// they are eltwise_linear (x - s, s - x, -x: exact, one rounding;
// reciprocal is eltwise_pow with exponent -1) or a
// binary_div by a broadcast constant (exact division, as PyTorch). f32
// bilinear interpolate whose coordinates oneDNN computes as PyTorch does is
// a resampling primitive; nearest (f32 and int8) is a resampling primitive
// when oneDNN's source index map equals PyTorch's floor(dst * scale), which
// is checked per axis at compile time. The other interpolate cases (int8
// bilinear among them, for PyTorch's requantization), and
// embedding, run as host kernels with tables computed at compile time, in
// the input's own layout (no reorder). narrow is a oneDNN copy from a
// sub-memory of its input.
//
//===----------------------------------------------------------------------===//

#include "Lowerer.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/ArithParams.h"
#include "qfx/Runtime/KernelsArith.h"
#include "qfx/Support/Error.h"

#include <cmath>
#include <cstring>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;

namespace {

dnnl::primitive_attr scratchAttr() {
  dnnl::primitive_attr A;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return A;
}

/// Row-major strides of \p Dims in layout \p L (logical NCHW order).
std::vector<int64_t> stridesOf(llvm::ArrayRef<int64_t> Dims, Layout L) {
  std::vector<int64_t> S(Dims.size(), 1);
  if (L == Layout::NHWC) {
    S[1] = 1;
    S[3] = Dims[1];
    S[2] = Dims[3] * Dims[1];
    S[0] = Dims[2] * S[2];
    return S;
  }
  for (size_t I = Dims.size(); I-- > 1;)
    S[I - 1] = S[I] * Dims[I];
  return S;
}

/// \p Dims padded with leading 1s to rank \p Rank.
memory::dims padded(llvm::ArrayRef<int64_t> Dims, size_t Rank) {
  memory::dims D(Rank - Dims.size(), 1);
  D.insert(D.end(), Dims.begin(), Dims.end());
  return D;
}

/// A plain descriptor of \p Dims (rank >= 1).
memory::desc plainDesc(DType T, const memory::dims &Dims) {
  return makeDesc(T, llvm::ArrayRef<int64_t>(Dims.data(), Dims.size()),
                  Layout::Plain);
}

} // namespace

//===----------------------------------------------------------------------===//
// sub, rsub, div, neg
//===----------------------------------------------------------------------===//

llvm::Expected<bool> Lowerer::lowerArithBinary(const Node &N) {
  auto Bound = bindDeclared(N);
  if (!Bound)
    return Bound.takeError();
  const BoundArgs &B = Bound->second;
  llvm::StringRef Op = N.target();
  if (!N.arg(0).isNode())
    return false;
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const Value X = Vals[*XV];
  const TensorType &OutT = typeOf(&N);
  if (X.Dt != DType::F32 || OutT.Dtype != DType::F32)
    return false;
  double Alpha = 1.0;
  if (Op == "sub" || Op == "rsub") {
    auto A = B.real(2);
    if (!A)
      return A.takeError();
    Alpha = *A;
  }
  if (Op == "div") {
    auto R = divRounding(B);
    if (!R)
      return R.takeError();
    if (*R != ref::DivRounding::None)
      return false;
  }
  memory::desc DstMd = makeDesc(DType::F32, OutT.Dims, X.L);
  bool Unary = Op == "neg" || Op == "reciprocal";
  if (Unary || !B.operand(1).isTensor()) {
    double S = 0.0;
    if (!Unary) {
      auto SV = B.real(1);
      if (!SV)
        return SV.takeError();
      S = *SV;
    }
    if (Op == "div") {
      // x / s by a broadcast constant: oneDNN divides, as PyTorch does.
      memory::dims One(X.Dims.empty() ? 1 : X.Dims.size(), 1);
      memory::desc SMd = plainDesc(DType::F32, One);
      Tensor ST = Tensor::fromFloats({1}, {static_cast<float>(S)});
      int SBuf = addConstant(ST, SMd, SMd, N.name().str() + ".other");
      dnnl::binary::primitive_desc PD;
      try {
        PD = dnnl::binary::primitive_desc(
            dnnl::binary::desc(dnnl::algorithm::binary_div, X.Md, SMd, DstMd),
            scratchAttr(), P.Engine);
      } catch (const dnnl::error &) {
        return false;
      }
      int Dst = newValue(DType::F32, OutT.Dims, X.L, {}, N.name().str());
      addPrimitive(PD, dnnl::binary(PD), N.name().str(), "binary",
                   {arg(DNNL_ARG_SRC_0, *XV),
                    {DNNL_ARG_SRC_1, SBuf, 0, SMd},
                    arg(DNNL_ARG_DST, Dst)})
          .Info.Detail = "div by scalar";
      bindNode(&N, Dst);
      return true;
    }
    // alpha * x + beta: x - s (sub), s - alpha x (rsub), -x (neg); and
    // reciprocal as alpha * x^beta with beta -1.
    float A = 1.0f, Be = 0.0f;
    auto Alg = dnnl::algorithm::eltwise_linear;
    if (Op == "sub")
      Be = static_cast<float>(-S * Alpha);
    else if (Op == "rsub") {
      A = static_cast<float>(-Alpha);
      Be = static_cast<float>(S);
    } else if (Op == "neg") {
      A = -1.0f;
    } else {
      Alg = dnnl::algorithm::eltwise_pow;
      Be = -1.0f;
    }
    dnnl::eltwise_forward::primitive_desc PD;
    try {
      PD = dnnl::eltwise_forward::primitive_desc(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, Alg,
                                      X.Md, A, Be),
          scratchAttr(), P.Engine);
    } catch (const dnnl::error &) {
      return false;
    }
    int Dst = newValue(DType::F32, OutT.Dims, X.L, {}, N.name().str());
    addPrimitive(PD, dnnl::eltwise_forward(PD), N.name().str(), "eltwise",
                 {arg(DNNL_ARG_SRC, *XV), arg(DNNL_ARG_DST, Dst)})
        .Info.Detail = Op == "reciprocal" ? "pow -1" : "linear";
    bindNode(&N, Dst);
    return true;
  }
  // Two tensors: oneDNN broadcasts the second source only, so the first
  // (input for sub / div, other for rsub) must have the output's shape.
  if (Alpha != 1.0 || !N.arg(1).isNode())
    return false;
  auto YV = valueOf(N.arg(1).getNode());
  if (!YV)
    return YV.takeError();
  int First = Op == "rsub" ? *YV : *XV, Second = Op == "rsub" ? *XV : *YV;
  // a - b with a broadcast a is -(b - a): exact, as rounding to nearest is
  // symmetric; division has no such form.
  bool Negate = Op != "div" && Vals[First].Dims != OutT.Dims &&
                Vals[Second].Dims == OutT.Dims;
  if (Negate)
    std::swap(First, Second);
  if (Vals[First].Dims != OutT.Dims || Vals[First].Dt != DType::F32 ||
      Vals[Second].Dt != DType::F32)
    return false;
  int S0 = First, S1;
  memory::desc Md1;
  if (Vals[Second].Dims == OutT.Dims) {
    S1 = inLayout(Second, Vals[First].L);
    Md1 = Vals[S1].Md;
  } else {
    // A broadcast operand: its plain bytes with leading 1s.
    S1 = inLayout(Second, Layout::Plain);
    Md1 = plainDesc(DType::F32, padded(Vals[S1].Dims, OutT.Dims.size()));
  }
  DstMd = makeDesc(DType::F32, OutT.Dims, Vals[First].L);
  auto Alg =
      Op == "div" ? dnnl::algorithm::binary_div : dnnl::algorithm::binary_sub;
  dnnl::primitive_attr Attr = scratchAttr();
  if (Negate) {
    dnnl::post_ops PO;
    PO.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, -1.0f, 0.0f);
    Attr.set_post_ops(PO);
  }
  dnnl::binary::primitive_desc PD;
  try {
    PD = dnnl::binary::primitive_desc(
        dnnl::binary::desc(Alg, Vals[S0].Md, Md1, DstMd), Attr, P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  int Dst = newValue(DType::F32, OutT.Dims, Vals[First].L, {}, N.name().str());
  const Value V1 = Vals[S1];
  addPrimitive(PD, dnnl::binary(PD), N.name().str(), "binary",
               {arg(DNNL_ARG_SRC_0, S0),
                {DNNL_ARG_SRC_1, V1.Buf, V1.Offset, Md1},
                arg(DNNL_ARG_DST, Dst)})
      .Info.Detail = Op == "div" ? "div"
                     : Negate    ? "sub, negated"
                                 : "sub";
  bindNode(&N, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// interpolate
//===----------------------------------------------------------------------===//

namespace {

/// oneDNN's nearest source index (ref_resampling: round-half-away of the
/// half-pixel coordinate).
int64_t dnnlNearest(int64_t O, int64_t In, int64_t Out) {
  float F = static_cast<float>(Out) / static_cast<float>(In);
  float C = (static_cast<float>(O) + 0.5f) / F - 0.5f;
  auto I = static_cast<int64_t>(std::round(C));
  return std::min<int64_t>(std::max<int64_t>(I, 0), In - 1);
}

/// Whether oneDNN computes what PyTorch does for \p P on input \p In (of
/// dtype \p Dt): the same source coordinates on both axes; never for int8
/// bilinear, where oneDNN's weights and rounding differ from PyTorch's
/// quantized kernel by 1 LSB at ties (measured), which the conv after it
/// amplifies.
bool dnnlResamples(const ref::InterpParams &P, llvm::ArrayRef<int64_t> In,
                   DType Dt) {
  if (P.Mode == ref::InterpMode::Bilinear && Dt != DType::F32)
    return false;
  for (int K = 0; K < 2; ++K) {
    int64_t I = In[2 + K], O = P.Size[K];
    if (P.Mode == ref::InterpMode::Nearest) {
      for (int64_t D = 0; D < O; ++D)
        if (dnnlNearest(D, I, O) !=
            ref::nearestSourceIndex(D, I, O, P.Scales[K]))
          return false;
      continue;
    }
    // Linear: oneDNN's half-pixel coordinates use in / out, PyTorch's
    // 1 / scale_factor when given; align_corners has no oneDNN form.
    if (P.AlignCorners)
      return false;
    if (P.Scales[K] && static_cast<float>(1.0 / *P.Scales[K]) !=
                           static_cast<float>(I) / static_cast<float>(O))
      return false;
  }
  return true;
}

/// The taps of every output row and column.
struct InterpTables {
  std::vector<ref::LinearTap> H, W;
};

template <typename T>
void interpolateHost(const T *In, T *Out, llvm::ArrayRef<int64_t> Dims,
                     const std::vector<int64_t> &SI,
                     const std::vector<int64_t> &SO, const ref::InterpParams &P,
                     const InterpTables &Tb, bool Quantized,
                     const QuantParams &Q, DType Dt) {
  int64_t N = Dims[0], C = Dims[1];
  int64_t QMin = Dt == DType::U8 ? 0 : -128, QMax = Dt == DType::U8 ? 255 : 127;
  for (int64_t Nn = 0; Nn < N; ++Nn)
    for (int64_t Cc = 0; Cc < C; ++Cc) {
      const T *Pi = In + Nn * SI[0] + Cc * SI[1];
      T *Po = Out + Nn * SO[0] + Cc * SO[1];
      for (int64_t H = 0; H < P.Size[0]; ++H) {
        const ref::LinearTap &TH = Tb.H[H];
        const T *R0 = Pi + TH.I0 * SI[2], *R1 = Pi + TH.I1 * SI[2];
        for (int64_t W = 0; W < P.Size[1]; ++W) {
          const ref::LinearTap &TW = Tb.W[W];
          T &Dst = Po[H * SO[2] + W * SO[3]];
          if (P.Mode == ref::InterpMode::Nearest) {
            Dst = R0[TW.I0 * SI[3]];
            continue;
          }
          float A = R0[TW.I0 * SI[3]], Bv = R0[TW.I1 * SI[3]];
          float Cv = R1[TW.I0 * SI[3]], D = R1[TW.I1 * SI[3]];
          if (!Quantized) {
            float T0 = A * TW.L0 + Bv * TW.L1, T1 = Cv * TW.L0 + D * TW.L1;
            Dst = static_cast<T>(T0 * TH.L0 + T1 * TH.L1);
            continue;
          }
          // ref::interpolateQuantized's rounding.
          float R = TH.L0 * (TW.L0 * A + TW.L1 * Bv) +
                    TH.L1 * (TW.L0 * Cv + TW.L1 * D) -
                    static_cast<float>(Q.ZeroPoint);
          float Rq = static_cast<float>(Q.ZeroPoint) + std::nearbyint(R);
          Dst =
              static_cast<T>(std::min<float>(std::max<float>(Rq, QMin), QMax));
        }
      }
    }
}

} // namespace

llvm::Expected<bool> Lowerer::lowerInterpolate(const Node &N) {
  auto Bound = bindDeclared(N);
  if (!Bound)
    return Bound.takeError();
  auto PE = interpolateParams(Bound->second);
  if (!PE)
    return PE.takeError();
  ref::InterpParams Prm = *PE;
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const Value X = Vals[*XV];
  const TensorType &OutT = typeOf(&N);
  if (OutT.Dtype != X.Dt || (X.Dt != DType::F32 && OutT.Quant != X.Q))
    return false;
  int Dst = newValue(X.Dt, OutT.Dims, X.L, X.Q, N.name().str());
  if (dnnlResamples(Prm, X.Dims, X.Dt)) {
    auto Alg = Prm.Mode == ref::InterpMode::Nearest
                   ? dnnl::algorithm::resampling_nearest
                   : dnnl::algorithm::resampling_linear;
    try {
      dnnl::resampling_forward::primitive_desc PD(
          dnnl::resampling_forward::desc(dnnl::prop_kind::forward_inference,
                                         Alg, X.Md, Vals[Dst].Md),
          scratchAttr(), P.Engine);
      addPrimitive(PD, dnnl::resampling_forward(PD), N.name().str(),
                   "resampling",
                   {arg(DNNL_ARG_SRC, *XV), arg(DNNL_ARG_DST, Dst)})
          .Info.Detail =
          Prm.Mode == ref::InterpMode::Nearest ? "nearest" : "linear";
      bindNode(&N, Dst);
      return true;
    } catch (const dnnl::error &) {
      // Falls through to the host kernel.
    }
  }
  // PyTorch's own index and weight rules, on the input's layout.
  InterpTables Tb;
  for (int K = 0; K < 2; ++K) {
    int64_t I = X.Dims[2 + K], O = Prm.Size[K];
    std::vector<ref::LinearTap> &V = K ? Tb.W : Tb.H;
    for (int64_t D = 0; D < O; ++D) {
      ref::LinearTap T;
      if (Prm.Mode == ref::InterpMode::Nearest)
        T.I0 = T.I1 = ref::nearestSourceIndex(D, I, O, Prm.Scales[K]);
      else
        T = ref::linearSourceTap(D, I, O, Prm.AlignCorners, Prm.Scales[K],
                                 X.Dt != DType::F32);
      V.push_back(T);
    }
  }
  const Value D = Vals[Dst];
  std::vector<int64_t> SI = stridesOf(X.Dims, X.L), SO = stridesOf(D.Dims, D.L);
  auto Fn = [X, D, SI, SO, Prm, Tb](Program &Prog) -> llvm::Error {
    const void *In = Prog.address(X.Buf, X.Offset);
    void *Out = Prog.address(D.Buf, D.Offset);
    switch (X.Dt) {
    case DType::F32:
      interpolateHost(static_cast<const float *>(In), static_cast<float *>(Out),
                      X.Dims, SI, SO, Prm, Tb, false, X.Q, X.Dt);
      break;
    case DType::U8:
      interpolateHost(static_cast<const uint8_t *>(In),
                      static_cast<uint8_t *>(Out), X.Dims, SI, SO, Prm, Tb,
                      true, X.Q, X.Dt);
      break;
    default:
      interpolateHost(static_cast<const int8_t *>(In),
                      static_cast<int8_t *>(Out), X.Dims, SI, SO, Prm, Tb, true,
                      X.Q, X.Dt);
      break;
    }
    return llvm::Error::success();
  };
  addHost(N.name().str(), "interpolate", std::move(Fn), {X.Buf}, {D.Buf})
      .Info.Detail =
      Prm.Mode == ref::InterpMode::Nearest ? "nearest" : "bilinear";
  bindNode(&N, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// embedding, narrow
//===----------------------------------------------------------------------===//

llvm::Expected<bool> Lowerer::lowerEmbedding(const Node &N) {
  auto Bound = bindDeclared(N);
  if (!Bound)
    return Bound.takeError();
  const BoundArgs &B = Bound->second;
  // The table: the module's weight, or a get_attr constant.
  const Tensor *W = nullptr;
  if (N.op() == OpCode::CallModule) {
    if (const ModuleInfo *M = GM.lookupModule(N.target()))
      W = M->tensor("weight");
  } else if (N.numArgs() > 1 && N.arg(1).isNode() &&
             N.arg(1).getNode()->op() == OpCode::GetAttr) {
    W = GM.lookupTensor(N.arg(1).getNode()->target());
  }
  if (!W || !W->hasData() || W->dtype() != DType::F32 || W->rank() != 2 ||
      !B.operand(0).isTensor())
    return false;
  auto IV = valueOf(N.arg(0).getNode());
  if (!IV)
    return IV.takeError();
  const Value Idx = Vals[*IV];
  if (Idx.Dt != DType::S64 && Idx.Dt != DType::S32)
    return false;
  const TensorType &OutT = typeOf(&N);
  memory::desc WMd = makeDesc(DType::F32, W->shape(), Layout::Plain);
  int WBuf = addConstant(*W, WMd, WMd, N.name().str() + ".weight");
  int Dst = newValue(DType::F32, OutT.Dims, Layout::Plain, {}, N.name().str());
  const Value D = Vals[Dst];
  int64_t Num = W->dim(0), Dim = W->dim(1);
  int64_t Count = numElements(Idx.Dims);
  bool Wide = Idx.Dt == DType::S64;
  auto Fn = [=](Program &Prog) -> llvm::Error {
    const void *IP = Prog.address(Idx.Buf, Idx.Offset);
    const float *WP = static_cast<const float *>(Prog.address(WBuf));
    float *Out = static_cast<float *>(Prog.address(D.Buf, D.Offset));
    for (int64_t I = 0; I < Count; ++I) {
      int64_t K = Wide ? static_cast<const int64_t *>(IP)[I]
                       : static_cast<const int32_t *>(IP)[I];
      if (K < 0 || K >= Num)
        return makeError("embedding: input: index " + llvm::Twine(K) +
                         " is out of range for " + llvm::Twine(Num) +
                         " embeddings");
      std::memcpy(Out + I * Dim, WP + K * Dim, sizeof(float) * Dim);
    }
    return llvm::Error::success();
  };
  addHost(N.name().str(), "embedding", std::move(Fn), {Idx.Buf, WBuf}, {D.Buf})
      .Info.Detail = "gather rows";
  bindNode(&N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerNarrow(const Node &N) {
  auto Bound = bindDeclared(N);
  if (!Bound)
    return Bound.takeError();
  auto NP = narrowParams(Bound->second);
  if (!NP)
    return NP.takeError();
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  const Value X = Vals[*XV];
  if (X.Dt == DType::S64 || X.Dims.empty())
    return false;
  const TensorType &OutT = typeOf(&N);
  memory::dims Dims(X.Dims.begin(), X.Dims.end()), Offs(X.Dims.size(), 0);
  Dims[NP->Dim] = NP->Length;
  Offs[NP->Dim] = NP->Start;
  Value Src = X;
  try {
    Src.Md = X.Md.submemory_desc(Dims, Offs);
  } catch (const dnnl::error &) {
    return false;
  }
  Src.Dims.assign(Dims.begin(), Dims.end());
  Src.PermSource = -1;
  int SrcV = addValue(Src);
  int Dst = newValue(X.Dt, OutT.Dims, X.L, X.Q, N.name().str());
  addReorder(SrcV, Dst, dnnl::primitive_attr(), N.name().str(), "narrow");
  bindNode(&N, Dst);
  return true;
}
