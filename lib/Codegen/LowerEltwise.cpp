//===- LowerEltwise.cpp - Activations and mul: post-ops, prims, tables ---===//
//
// hardswish, hardsigmoid, sigmoid, tanh and silu fuse into a preceding conv
// or linear as an eltwise post-op. After an int8 anchor the post-ops redo
// what the reference computes between the two ops: round the accumulator on
// the anchor's grid, clamp it to the anchor's int8 range (and its clamp),
// dequantize (the clip's scale), apply the activation and requantize (the
// activation's scale; the destination zero point and saturation are the
// primitive's), so the result equals the unfused one up to float rounding.
// oneDNN 2.6's brgemm kernels share one set of parameters between post-ops
// of the same algorithm, so a chain never uses an algorithm twice (one
// activation per group; hardsigmoid is linear + bounded_relu). Alone, an
// activation is an eltwise primitive (f32) or a 256-entry table built from
// the op table's own kernel (int8, exact). mul is a binary primitive (f32) or
// a host loop on the operands' layout (int8, exact).
//
//===----------------------------------------------------------------------===//

#include "EltwiseKernels.h"
#include "Lowerer.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include <cassert>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;
using Alg = dnnl::algorithm;

namespace {

dnnl::primitive_attr userAttr() {
  dnnl::primitive_attr A;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return A;
}

/// \p X on the grid of scale \p S, as quantize_val rounds clamp bounds.
double onGrid(double X, double S) {
  if (std::isinf(X))
    return X;
  float Inv = 1.0f / static_cast<float>(S);
  return std::nearbyint(static_cast<float>(X) * Inv) * S;
}

std::string describeQ(const QuantParams &Q) {
  char Buf[64];
  std::snprintf(Buf, sizeof(Buf), "scale=%g zp=%lld", Q.Scale,
                static_cast<long long>(Q.ZeroPoint));
  return Buf;
}

const char *actName(ActKind A) {
  switch (A) {
  case ActKind::Hardswish:
    return "hardswish";
  case ActKind::Hardsigmoid:
    return "hardsigmoid";
  case ActKind::Sigmoid:
    return "sigmoid";
  case ActKind::Tanh:
    return "tanh";
  case ActKind::Silu:
    return "silu";
  case ActKind::None:
    break;
  }
  return "none";
}

} // namespace

void codegen::appendActivation(dnnl::post_ops &PO, ActKind A,
                               std::string &Detail, float Scale) {
  switch (A) {
  case ActKind::Hardswish:
    PO.append_eltwise(Scale, Alg::eltwise_hardswish, 0.0f, 0.0f);
    break;
  case ActKind::Hardsigmoid:
    // oneDNN 2.6 has no hardsigmoid: min(max(x + 3, 0), 6) / 6.
    PO.append_eltwise(1.0f, Alg::eltwise_linear, 1.0f, 3.0f);
    PO.append_eltwise(Scale / 6.0f, Alg::eltwise_bounded_relu, 6.0f, 0.0f);
    break;
  case ActKind::Sigmoid:
    PO.append_eltwise(Scale, Alg::eltwise_logistic, 0.0f, 0.0f);
    break;
  case ActKind::Tanh:
    PO.append_eltwise(Scale, Alg::eltwise_tanh, 0.0f, 0.0f);
    break;
  case ActKind::Silu:
    PO.append_eltwise(Scale, Alg::eltwise_swish, 1.0f, 0.0f);
    break;
  case ActKind::None:
    return;
  }
  Detail += std::string(" ") + actName(A);
}

//===----------------------------------------------------------------------===//
// Fusion
//===----------------------------------------------------------------------===//

bool Lowerer::growActivation(Group &G, const Node &U, const LoweringRule &RU,
                             const Node *Cur) const {
  // One activation: a second could repeat a post-op algorithm.
  if (!(G.Rule->PostOps & PostEltwise) || G.Dequant || !G.Acts.empty() ||
      U.arg(0).getNode() != Cur)
    return false;
  const TensorType &T = typeOf(&U), &C = typeOf(Cur);
  if (T.Dims != C.Dims)
    return false;
  LowerKind K = G.Rule->Kind;
  bool Int8 = typeOf(G.Anchor).Dtype != DType::F32;
  if (!Int8) {
    // Float conv, linear and add take any eltwise post-op.
    if (T.Dtype != DType::F32 || C.Dtype != DType::F32 ||
        (K != LowerKind::Conv && K != LowerKind::Linear && K != LowerKind::Add))
      return false;
  } else {
    // int8 adds are host kernels and the dynamic linear writes f32 with
    // its own post-ops; a residual sum would need requantizing first.
    if ((K != LowerKind::Conv && K != LowerKind::Linear) || G.SumOther ||
        T.Dtype != C.Dtype || !T.Quant.isPerTensor())
      return false;
  }
  G.Acts.push_back({RU.Act, T.Dtype, T.Quant});
  return true;
}

void Lowerer::growFloatIsland(Group &G, const Node &Deq) const {
  LowerKind K = G.Rule->Kind;
  if ((K != LowerKind::Conv && K != LowerKind::Linear) || !G.Acts.empty() ||
      G.SumOther)
    return;
  const Node *Act = firstOperandUser(Deq);
  const LoweringRule *RA = Act ? lookupLoweringRule(*Act, GM) : nullptr;
  if (!RA || RA->Kind != LowerKind::Activation ||
      typeOf(Act).Dtype != DType::F32 || typeOf(Act).Dims != typeOf(&Deq).Dims)
    return;
  const Node *Q = firstOperandUser(*Act);
  const LoweringRule *RQ = Q ? lookupLoweringRule(*Q, GM) : nullptr;
  if (!RQ || RQ->Kind != LowerKind::Quantize)
    return;
  const TensorType &T = typeOf(Q);
  if (T.Dtype != typeOf(G.Anchor).Dtype || !T.Quant.isPerTensor() ||
      T.Dims != typeOf(Act).Dims)
    return;
  // The island computes what the int8 activation would: dequantize, the
  // function, quantize_per_tensor.
  G.Dequant = false;
  G.Members.push_back(Act);
  G.Members.push_back(Q);
  G.Acts.push_back({RA->Act, T.Dtype, T.Quant});
}

dnnl::post_ops Lowerer::int8ActPostOps(const Group &G, DType OutDt,
                                       const QuantParams &AnchorQ,
                                       const QuantParams &OutQ,
                                       std::string &Detail) const {
  assert(G.Acts.size() == 1 && "one activation per group");
  dnnl::post_ops PO;
  // The output scales leave the accumulator in units of the anchor's grid
  // (zero point not added): round, clamp to the integers the anchor's
  // output can hold (and its own clamp, on that grid), dequantize.
  auto IntBounds = [](DType Dt, const QuantParams &Q) {
    double Min = Dt == DType::U8 ? 0 : -128, Max = Dt == DType::U8 ? 255 : 127;
    return std::make_pair(Min - Q.ZeroPoint, Max - Q.ZeroPoint);
  };
  auto [Lo, Hi] = IntBounds(typeOf(G.Anchor).Dtype, AnchorQ);
  if (G.Clamp.Active) {
    Lo = std::max(Lo, onGrid(G.Clamp.Lo, AnchorQ.Scale) / AnchorQ.Scale);
    Hi = std::min(Hi, onGrid(G.Clamp.Hi, AnchorQ.Scale) / AnchorQ.Scale);
  }
  PO.append_eltwise(1.0f, Alg::eltwise_round, 0.0f, 0.0f);
  PO.append_eltwise(static_cast<float>(AnchorQ.Scale), Alg::eltwise_clip,
                    static_cast<float>(std::round(Lo)),
                    static_cast<float>(std::round(Hi)));
  Detail += " round clip(" + std::to_string(static_cast<int>(Lo)) + "," +
            std::to_string(static_cast<int>(Hi)) + ")";
  // The activation, requantized by its scale; the destination adds the
  // zero point and saturates.
  const ActPost &A = G.Acts.back();
  float Inv = 1.0f / static_cast<float>(A.Q.Scale);
  appendActivation(PO, A.Act, Detail, Inv);
  if (OutDt != DType::F32) {
    Detail += " requant(" + describeQ(OutQ) + ")";
    return PO;
  }
  // A fused dequantize: round and saturate here (clip_v2, not clip: see
  // above), back to real units.
  auto [L, H] = IntBounds(A.Dt, A.Q);
  PO.append_eltwise(1.0f, Alg::eltwise_round, 0.0f, 0.0f);
  PO.append_eltwise(static_cast<float>(A.Q.Scale), Alg::eltwise_clip_v2,
                    static_cast<float>(L), static_cast<float>(H));
  Detail += " f32-dst";
  return PO;
}

//===----------------------------------------------------------------------===//
// Activations alone
//===----------------------------------------------------------------------===//

/// The table of int8 op \p N for inputs of dtype \p Dt and qparams \p Q:
/// the op table's kernel run on all 256 codes, indexed by the input byte.
static llvm::Expected<std::optional<std::array<uint8_t, 256>>>
int8Table(const Node &N, DType Dt, const QuantParams &Q,
          const TensorType &OutT) {
  Tensor Codes(Dt, {256});
  auto *Bytes = static_cast<uint8_t *>(Codes.rawData());
  for (int B = 0; B < 256; ++B)
    Bytes[B] = static_cast<uint8_t>(B);
  Codes.setQuant(Q);
  std::vector<Operand> Ops{Operand(Codes)};
  for (size_t I = 1; I < N.numArgs(); ++I) {
    if (N.arg(I).isNode())
      return std::nullopt;
    Ops.emplace_back(N.arg(I));
  }
  std::vector<std::pair<std::string, Operand>> Kw;
  for (const auto &KV : N.kwargs()) {
    if (KV.second.isNode())
      return std::nullopt;
    Kw.emplace_back(KV.first, Operand(KV.second));
  }
  auto R = runOp(N.target(), std::move(Ops), std::move(Kw));
  if (!R)
    return nodeError(N, llvm::toString(R.takeError()));
  if (R->dtype() != Dt || R->numElements() != 256 || R->quant() != OutT.Quant)
    return std::nullopt;
  std::array<uint8_t, 256> T;
  std::memcpy(T.data(), R->rawData(), 256);
  return T;
}

//===----------------------------------------------------------------------===//
// Float islands as tables
//===----------------------------------------------------------------------===//

std::vector<const Node *> Lowerer::tableIsland(const Node &Deq) const {
  const TensorType &In = typeOf(Deq.arg(0).getNode());
  if (In.Dtype == DType::F32 || !In.Quant.isPerTensor() || !Opts.FusePostOps)
    return {};
  std::vector<const Node *> Island = {&Deq};
  const Node *Cur = &Deq;
  while (const Node *U = firstOperandUser(*Cur)) {
    const LoweringRule *R = lookupLoweringRule(*U, GM);
    if (!R || typeOf(U).Dims != In.Dims)
      return {};
    if (R->Kind == LowerKind::Quantize) {
      if (!typeOf(U).Quant.isPerTensor() ||
          U->target() != "quantize_per_tensor")
        return {};
      Island.push_back(U);
      return Island;
    }
    bool Unary = R->Kind == LowerKind::Activation ||
                 R->Kind == LowerKind::Gelu || R->Kind == LowerKind::Alias ||
                 R->Kind == LowerKind::Eltwise;
    if (!Unary || typeOf(U).Dtype != DType::F32)
      return {};
    // Every other operand must be a constant the table can bake in.
    for (size_t I = 1; I < U->numArgs(); ++I)
      if (U->arg(I).isNode())
        return {};
    for (const auto &KV : U->kwargs())
      if (KV.second.isNode())
        return {};
    Island.push_back(U);
    Cur = U;
  }
  return {};
}

bool Lowerer::prefersTable(const Node &Deq) const {
  std::vector<const Node *> Island = tableIsland(Deq);
  return llvm::any_of(Island, [&](const Node *N) {
    const LoweringRule *R = lookupLoweringRule(*N, GM);
    return R && R->Kind == LowerKind::Gelu;
  });
}

llvm::Expected<bool>
Lowerer::lowerTableIsland(const Node &Deq,
                          llvm::ArrayRef<const Node *> Island) {
  auto XV = valueOf(Deq.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  int XIdx = Vals[*XV].PermSource >= 0 ? inLayout(*XV, Layout::Plain) : *XV;
  const Value X = Vals[XIdx];
  if (!X.Q.isPerTensor() || X.Dt == DType::F32)
    return false;
  // The island's own kernels on all 256 codes: the table is exact.
  Tensor T(X.Dt, {256});
  auto *Bytes = static_cast<uint8_t *>(T.rawData());
  for (int B = 0; B < 256; ++B)
    Bytes[B] = static_cast<uint8_t>(B);
  T.setQuant(X.Q);
  for (const Node *N : Island) {
    std::vector<Operand> Ops{Operand(T)};
    for (size_t I = 1; I < N->numArgs(); ++I)
      Ops.emplace_back(N->arg(I));
    llvm::Expected<Tensor> R = Tensor();
    if (N->op() == OpCode::CallModule) {
      R = runModule(GM, N->target(), std::move(Ops));
    } else {
      std::vector<std::pair<std::string, Operand>> Kw;
      for (const auto &KV : N->kwargs())
        Kw.emplace_back(KV.first, Operand(KV.second));
      R = runOp(N->target(), std::move(Ops), std::move(Kw));
    }
    if (!R)
      return nodeError(*N, llvm::toString(R.takeError()));
    T = std::move(*R);
  }
  const TensorType &OutT = typeOf(Island.back());
  if (T.dtype() != OutT.Dtype || T.numElements() != 256 ||
      T.quant() != OutT.Quant)
    return false;
  std::array<uint8_t, 256> Table;
  std::memcpy(Table.data(), T.rawData(), 256);
  std::string Name = Deq.name().str() + ".." + Island.back()->name().str();
  int Dst = newValue(OutT.Dtype, X.Dims, X.L, OutT.Quant, Name);
  const Value D = Vals[Dst];
  size_t Count = static_cast<size_t>(numElements(X.Dims));
  auto Fn = [X, D, Count, Table](Program &Prog) -> llvm::Error {
    lookupInt8(Table, Prog.address(X.Buf, X.Offset),
               Prog.address(D.Buf, D.Offset), Count);
    return llvm::Error::success();
  };
  HostStep &S = addHost(Name, "table_int8", std::move(Fn), {X.Buf}, {D.Buf});
  S.Info.Detail = std::to_string(Island.size() - 2) + " float ops, out " +
                  describeQ(OutT.Quant);
  // Every node of the island is done: the ones after Deq are skipped.
  for (const Node *N : Island)
    bindNode(N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerActivation(const Node &N,
                                              const LoweringRule &R) {
  auto XV = valueOf(N.arg(0).getNode());
  if (!XV)
    return XV.takeError();
  // Element-wise ops keep any layout; a permuted flatten is made plain.
  int XIdx = Vals[*XV].PermSource >= 0 ? inLayout(*XV, Layout::Plain) : *XV;
  const Value X = Vals[XIdx];
  const TensorType &OutT = typeOf(&N);
  if (OutT.Dims != X.Dims)
    return false;
  std::string Name = N.name().str();
  if (X.Dt != DType::F32) {
    if (OutT.Dtype != X.Dt || !X.Q.isPerTensor() || !OutT.Quant.isPerTensor())
      return false;
    auto T = int8Table(N, X.Dt, X.Q, OutT);
    if (!T)
      return T.takeError();
    if (!*T)
      return false;
    int Dst = newValue(X.Dt, X.Dims, X.L, OutT.Quant, Name);
    const Value D = Vals[Dst];
    size_t Count = static_cast<size_t>(numElements(X.Dims));
    auto Fn = [X, D, Count, Table = **T](Program &Prog) -> llvm::Error {
      lookupInt8(Table, Prog.address(X.Buf, X.Offset),
                 Prog.address(D.Buf, D.Offset), Count);
      return llvm::Error::success();
    };
    HostStep &S = addHost(Name, "table_int8", std::move(Fn), {X.Buf}, {D.Buf});
    S.Info.Detail =
        std::string(actName(R.Act)) + " out " + describeQ(OutT.Quant);
    bindNode(&N, Dst);
    return true;
  }
  if (OutT.Dtype != DType::F32)
    return false;
  int Dst = newValue(DType::F32, X.Dims, X.L, QuantParams(), Name);
  const Value D = Vals[Dst];
  if (R.Act == ActKind::Hardsigmoid) {
    size_t Count = static_cast<size_t>(numElements(X.Dims));
    auto Fn = [X, D, Count](Program &Prog) -> llvm::Error {
      hardsigmoidF32(static_cast<const float *>(Prog.address(X.Buf, X.Offset)),
                     static_cast<float *>(Prog.address(D.Buf, D.Offset)),
                     Count);
      return llvm::Error::success();
    };
    HostStep &S =
        addHost(Name, "hardsigmoid_f32", std::move(Fn), {X.Buf}, {D.Buf});
    S.Info.Detail = "hardsigmoid";
    bindNode(&N, Dst);
    return true;
  }
  dnnl::post_ops One;
  std::string Detail;
  appendActivation(One, R.Act, Detail);
  dnnl::algorithm A;
  float Scale, Alpha, Beta;
  One.get_params_eltwise(0, Scale, A, Alpha, Beta);
  dnnl::eltwise_forward::primitive_desc PD;
  try {
    PD = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, A, X.Md,
                                    Alpha, Beta),
        userAttr(), P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  PrimitiveStep &S =
      addPrimitive(PD, dnnl::eltwise_forward(PD), Name, "eltwise",
                   {arg(DNNL_ARG_SRC, XIdx), arg(DNNL_ARG_DST, Dst)});
  S.Info.Detail = llvm::StringRef(Detail).trim().str();
  bindNode(&N, Dst);
  return true;
}

//===----------------------------------------------------------------------===//
// mul
//===----------------------------------------------------------------------===//

namespace {

/// Whether \p Small broadcasts to \p Big (same rank, each dim equal or 1).
bool broadcastsTo(llvm::ArrayRef<int64_t> Small, llvm::ArrayRef<int64_t> Big) {
  if (Small.size() != Big.size())
    return false;
  for (size_t I = 0; I < Big.size(); ++I)
    if (Small[I] != Big[I] && Small[I] != 1)
      return false;
  return true;
}

/// Whether \p Gate is a per-channel gate [N or 1, C, 1, 1] of \p X [N, C,
/// H, W].
bool isChannelGate(llvm::ArrayRef<int64_t> Gate, llvm::ArrayRef<int64_t> X) {
  return X.size() == 4 && Gate.size() == 4 &&
         (Gate[0] == X[0] || Gate[0] == 1) && Gate[1] == X[1] && Gate[2] == 1 &&
         Gate[3] == 1;
}

} // namespace

llvm::Expected<bool> Lowerer::lowerScalarLinear(const Node &N, int X,
                                                double Alpha, double Beta) {
  if (Vals[X].PermSource >= 0)
    X = inLayout(X, Layout::Plain);
  const Value XV = Vals[X];
  if (XV.Dt != DType::F32 || typeOf(&N).Dims != XV.Dims)
    return false;
  dnnl::eltwise_forward::primitive_desc PD;
  try {
    PD = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(
            dnnl::prop_kind::forward_inference, Alg::eltwise_linear, XV.Md,
            static_cast<float>(Alpha), static_cast<float>(Beta)),
        userAttr(), P.Engine);
  } catch (const dnnl::error &) {
    return false;
  }
  std::string Name = N.name().str();
  int Dst = newValue(DType::F32, XV.Dims, XV.L, QuantParams(), Name);
  addPrimitive(PD, dnnl::eltwise_forward(PD), Name, "eltwise",
               {arg(DNNL_ARG_SRC, X), arg(DNNL_ARG_DST, Dst)})
      .Info.Detail = "linear";
  bindNode(&N, Dst);
  return true;
}

llvm::Expected<bool> Lowerer::lowerMul(const Node &N) {
  bool Int8 = N.target() == "quantized_mul";
  if (N.numArgs() < 2 || !N.arg(0).isNode())
    return false;
  auto AV = valueOf(N.arg(0).getNode());
  if (!AV)
    return AV.takeError();
  const TensorType &OutT = typeOf(&N);
  std::string Name = N.name().str();
  auto Plain = [&](int V) {
    return Vals[V].PermSource >= 0 ? inLayout(V, Layout::Plain) : V;
  };
  if (!N.arg(1).isNode()) {
    // x * scalar (f32): a linear eltwise.
    const Argument &S = N.arg(1);
    if (Int8 || !(S.isFloat() || S.isInt()) || !N.kwargs().empty())
      return false;
    return lowerScalarLinear(N, *AV, S.isFloat() ? S.getFloat() : S.getInt(),
                             0.0);
  }
  auto BV = valueOf(N.arg(1).getNode());
  if (!BV)
    return BV.takeError();
  int A = Plain(*AV), B = Plain(*BV);
  // The full-size operand first: oneDNN broadcasts its second source only
  // (mul commutes exactly, in float and in the int8 reference).
  if (Vals[A].Dims != OutT.Dims)
    std::swap(A, B);
  if (Vals[A].Dims != OutT.Dims || !broadcastsTo(Vals[B].Dims, Vals[A].Dims))
    return false;
  B = inLayout(B, Vals[A].L);
  const Value VA = Vals[A], VB = Vals[B];
  if (!Int8) {
    if (VA.Dt != DType::F32 || VB.Dt != DType::F32)
      return false;
    memory::desc DstMd = makeDesc(DType::F32, VA.Dims, VA.L);
    dnnl::binary::primitive_desc PD;
    try {
      PD = dnnl::binary::primitive_desc(
          dnnl::binary::desc(Alg::binary_mul, VA.Md, VB.Md, DstMd), userAttr(),
          P.Engine);
    } catch (const dnnl::error &) {
      return false;
    }
    int Dst = newValue(DType::F32, VA.Dims, VA.L, QuantParams(), Name);
    PrimitiveStep &S =
        addPrimitive(PD, dnnl::binary(PD), Name, "binary",
                     {arg(DNNL_ARG_SRC_0, A), arg(DNNL_ARG_SRC_1, B),
                      arg(DNNL_ARG_DST, Dst)});
    S.Info.Detail = VA.Dims == VB.Dims ? "mul" : "mul broadcast";
    bindNode(&N, Dst);
    return true;
  }
  bool Same = VA.Dims == VB.Dims;
  if (VA.Dt == DType::F32 || VB.Dt != VA.Dt || OutT.Dtype != VA.Dt ||
      !VA.Q.isPerTensor() || !VB.Q.isPerTensor() || !OutT.Quant.isPerTensor() ||
      (!Same && !isChannelGate(VB.Dims, VA.Dims)))
    return false;
  MulInt8 M;
  M.Dt = VA.Dt;
  M.ZeroA = static_cast<int32_t>(VA.Q.ZeroPoint);
  M.ZeroB = static_cast<int32_t>(VB.Q.ZeroPoint);
  M.ZeroOut = static_cast<int32_t>(OutT.Quant.ZeroPoint);
  // The reference's multiplier, in its order of float operations.
  M.Multiplier = static_cast<float>(VA.Q.Scale) *
                 static_cast<float>(VB.Q.Scale) *
                 (1.0f / static_cast<float>(OutT.Quant.Scale));
  int Dst = newValue(VA.Dt, VA.Dims, VA.L, OutT.Quant, Name);
  const Value D = Vals[Dst];
  std::function<llvm::Error(Program &)> Fn;
  if (Same) {
    size_t Count = static_cast<size_t>(numElements(VA.Dims));
    Fn = [M, VA, VB, D, Count](Program &Prog) -> llvm::Error {
      mulInt8(M, Prog.address(VA.Buf, VA.Offset),
              Prog.address(VB.Buf, VB.Offset), Prog.address(D.Buf, D.Offset),
              Count);
      return llvm::Error::success();
    };
  } else {
    bool ChannelsLast = VA.L == Layout::NHWC;
    bool GateBatch = VB.Dims[0] != 1;
    int64_t Nn = VA.Dims[0], C = VA.Dims[1], HW = VA.Dims[2] * VA.Dims[3];
    Fn = [=](Program &Prog) -> llvm::Error {
      mulInt8Channel(
          M, Prog.address(VA.Buf, VA.Offset), Prog.address(VB.Buf, VB.Offset),
          Prog.address(D.Buf, D.Offset), Nn, C, HW, ChannelsLast, GateBatch);
      return llvm::Error::success();
    };
  }
  HostStep &S =
      addHost(Name, "mul_int8", std::move(Fn), {VA.Buf, VB.Buf}, {D.Buf});
  S.Info.Detail = std::string(Same ? "" : "per-channel gate ") + "out " +
                  describeQ(OutT.Quant);
  bindNode(&N, Dst);
  return true;
}
