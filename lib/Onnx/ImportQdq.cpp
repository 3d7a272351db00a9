//===- ImportQdq.cpp - QuantizeLinear and DequantizeLinear ----------------===//
//
// QDQ models import as a reference quantized graph:
//   QuantizeLinear(x, s, zp)      -> quantize_per_tensor(x, s, zp, "quint8")
//   DequantizeLinear(activation)  -> x.dequantize()
//   DequantizeLinear(initializer) -> get_attr of an s8/u8/s32 tensor carrying
//                                    its qparams (per-channel with axis), then
//                                    .dequantize()
// The fold-qdq pass (Transforms) turns the groups into quantized modules.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Support/Error.h"

#include <cmath>

using namespace qfx;
using namespace qfx::onnximport;

/// Scale and zero point of a Q or DQ node, per tensor or along \p Axis.
static llvm::Expected<QuantParams> readQParams(NodeReader &R,
                                               llvm::ArrayRef<int64_t> Dims,
                                               std::optional<DType> &ZpType) {
  auto Scale = R.constant(1, "the scale");
  if (!Scale)
    return Scale.takeError();
  const Tensor &S = *(*Scale)->Const;
  if (S.dtype() != DType::F32)
    return R.error("the scale must be float");
  std::vector<int64_t> Zps(S.numElements(), 0);
  ZpType = DType::U8;
  if (R.hasInput(2)) {
    auto Zp = R.constant(2, "the zero point");
    if (!Zp)
      return Zp.takeError();
    const Tensor &Z = *(*Zp)->Const;
    if (Z.numElements() != S.numElements())
      return R.error("the zero point has " + llvm::Twine(Z.numElements()) +
                     " elements, the scale " + llvm::Twine(S.numElements()));
    ZpType = Z.dtype();
    Zps = tensorInts(Z);
  }
  QuantParams Q;
  if (S.rank() == 0 || (S.numElements() == 1 && Dims.empty())) {
    Q = QuantParams::perTensor(S.getAsDouble(0), Zps[0]);
  } else {
    if (S.rank() != 1)
      return R.error("the scale must be a scalar or 1-d");
    auto Axis = R.attrInt("axis", 1);
    if (!Axis)
      return Axis.takeError();
    int64_t Rank = Dims.size();
    int64_t A = *Axis < 0 ? *Axis + Rank : *Axis;
    std::vector<double> Scales;
    for (int64_t I = 0; I < S.numElements(); ++I)
      Scales.push_back(S.getAsDouble(I));
    Q = QuantParams::perChannel(std::move(Scales), Zps, A);
  }
  std::string Bad = Q.validate(Dims);
  if (!Bad.empty())
    return R.error(Bad);
  return Q;
}

/// A get_attr of \p T (an integer tensor with qparams) at the root.
static llvm::Expected<Node *> quantizedConst(NodeReader &R, Tensor T,
                                             llvm::StringRef OnnxName) {
  GraphModule &GM = R.gm();
  std::string Name;
  for (char C : OnnxName)
    Name += llvm::isAlnum(C) || C == '_' ? C : '_';
  if (Name.empty() || llvm::isDigit(Name[0]))
    Name = "_" + Name;
  std::string Attr = Name;
  for (int I = 1; GM.root().tensor(Attr) || GM.root().child(Attr); ++I)
    Attr = Name + "_" + std::to_string(I);
  GM.root().setTensor(Attr, std::move(T));
  Node *G = GM.graph().getAttr(Attr);
  if (G->name() != OnnxName)
    G->setMeta("onnx_name", Argument::string(OnnxName.str()));
  if (llvm::Error E = typeNode(GM, G))
    return R.error(errorToString(std::move(E)));
  return G;
}

llvm::Error qfx::onnximport::importQuantizeLinear(NodeReader &R) {
  R.state().SawQdq = true;
  auto X = R.input(0);
  if (!X)
    return X.takeError();
  llvm::ArrayRef<int64_t> Dims =
      (*X)->isConst() ? (*X)->Const->shape()
                      : llvm::ArrayRef<int64_t>((*X)->N->type()->Dims);
  std::optional<DType> ZpType;
  auto Q = readQParams(R, Dims, ZpType);
  if (!Q)
    return Q.takeError();
  if (ZpType != DType::U8 && ZpType != DType::S8)
    return R.error("only uint8 and int8 quantization is supported");
  if ((*X)->isConst()) {
    // A float weight quantized in the graph: quantize it now.
    const Tensor &F = *(*X)->Const;
    if (F.dtype() != DType::F32)
      return R.error("the input must be float");
    OnnxValue Out;
    Out.Const = Tensor(*ZpType, F.shape());
    double Lo = *ZpType == DType::U8 ? 0 : -128, Hi = Lo + 255;
    int64_t Inner = 1;
    for (int64_t D = Q->Axis + 1; Q->isPerChannel() && D < F.rank(); ++D)
      Inner *= F.dim(D);
    for (int64_t I = 0; I < F.numElements(); ++I) {
      int64_t C = Q->isPerChannel() ? (I / Inner) % F.dim(Q->Axis) : 0;
      double S = Q->isPerChannel() ? Q->Scales[C] : Q->Scale;
      int64_t Z = Q->isPerChannel() ? Q->ZeroPoints[C] : Q->ZeroPoint;
      double V = std::nearbyint(F.getAsDouble(I) / S) + Z;
      if (std::isnan(V))
        return R.error("the input has a NaN");
      Out.Const->setFromDouble(I, std::clamp(V, Lo, Hi));
    }
    Out.Const->setQuant(*Q);
    Out.InitName =
        (*X)->InitName.empty() ? R.proto().output(0) : (*X)->InitName;
    R.define(0, std::move(Out));
    return llvm::Error::success();
  }
  if (!Q->isPerTensor())
    return R.error("per-channel quantization of activations is not supported");
  auto N =
      R.emit(OpCode::CallFunction, "quantize_per_tensor",
             {Argument((*X)->N), Argument::real(Q->Scale),
              Argument::integer(Q->ZeroPoint),
              Argument::string(*ZpType == DType::U8 ? "quint8" : "qint8")});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importDequantizeLinear(NodeReader &R) {
  R.state().SawQdq = true;
  auto X = R.input(0);
  if (!X)
    return X.takeError();
  Node *In;
  if ((*X)->isConst()) {
    const Tensor &T = *(*X)->Const;
    if (T.dtype() != DType::S8 && T.dtype() != DType::U8 &&
        T.dtype() != DType::S32)
      return R.error("the input must be an int8, uint8 or int32 tensor, got " +
                     dtypeName(T.dtype()));
    std::optional<DType> ZpType;
    auto Q = readQParams(R, T.shape(), ZpType);
    if (!Q)
      return Q.takeError();
    if (R.hasInput(2) && ZpType != T.dtype())
      return R.error("the zero point's type differs from the input's");
    Tensor Stored = T.clone();
    Stored.setQuant(*Q);
    std::string Name =
        (*X)->InitName.empty() ? R.proto().input(0) : (*X)->InitName;
    auto G = quantizedConst(R, std::move(Stored), Name);
    if (!G)
      return G.takeError();
    In = *G;
  } else {
    In = (*X)->N;
    const auto &Ty = In->type();
    if (!Ty || Ty->Quant.isNone())
      return R.error("the input is not a quantized tensor (no "
                     "QuantizeLinear before it)");
    std::optional<DType> ZpType;
    auto Q = readQParams(R, Ty->Dims, ZpType);
    if (!Q)
      return Q.takeError();
    if (!Q->isPerTensor() ||
        std::fabs(Q->Scale - Ty->Quant.Scale) >
            1e-6 * std::fabs(Ty->Quant.Scale) ||
        Q->ZeroPoint != Ty->Quant.ZeroPoint)
      return R.error("scale and zero point differ from the QuantizeLinear "
                     "that made the input");
  }
  auto N = R.emit(OpCode::CallMethod, "dequantize", {Argument(In)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}
