//===- ImportConv.cpp - Conv, Gemm, MatMul and BatchNormalization ---------===//
//
// Weighted ops become call_module of the standard kinds (Conv2d, Linear,
// BatchNorm2d) with their initializers as parameters, so fuse, prepare,
// convert and compile apply unchanged. A weight that is a graph value (the
// dequantized weight of a QDQ model) gives call_function conv2d / linear,
// named after the module its weight belongs to.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Support/Error.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace qfx;
using namespace qfx::onnximport;

/// A float constant (not derived from the batch size), or nullptr.
static const Tensor *floatConst(const OnnxValue *V) {
  return V && V->isConst() && V->Const->dtype() == DType::F32 && V->Dep.empty()
             ? &*V->Const
             : nullptr;
}

/// The rank of an input, from its constant or its node type.
static int64_t rankOf(const OnnxValue *V) {
  if (V->isConst())
    return V->Const->rank();
  return V->N->type() ? static_cast<int64_t>(V->N->type()->Dims.size()) : -1;
}

/// The initializer name behind a QDQ weight, the get_attr its dequantize
/// reads ("layer1.0.conv1.weight"), or "".
static std::string qdqWeightName(const Node *W) {
  if (W->op() == OpCode::CallMethod && W->target() == "dequantize" &&
      W->numArgs() > 0 && W->arg(0).isNode())
    W = W->arg(0).getNode();
  if (W->op() != OpCode::GetAttr)
    return "";
  const Argument *Name = W->meta("onnx_name");
  return Name && Name->isString() ? Name->getString() : W->name().str();
}

/// call_function \p Target whose weight \p W is a graph value (QDQ). When
/// the node name gives no module path, the weight's initializer name does
/// ("conv1.weight": node %conv1 in scope conv1), as for a constant weight,
/// so that fold-qdq names the quantized module as the module it came from.
llvm::Expected<Node *> qfx::onnximport::emitWeighted(NodeReader &R,
                                                     llvm::StringRef Target,
                                                     std::vector<Argument> Args,
                                                     const Node *W) {
  std::string Path;
  if (R.modulePath().empty())
    Path = R.newModulePath(qdqWeightName(W), "");
  auto N = R.emit(OpCode::CallFunction, Target, std::move(Args), Path);
  if (N && !Path.empty())
    (*N)->setScope(Path);
  return N;
}

llvm::Expected<Node *>
qfx::onnximport::emitWeightedConv(NodeReader &R, llvm::StringRef Target,
                                  Node *X, std::vector<Argument> Params) {
  auto WN = R.node(1);
  if (!WN)
    return WN.takeError();
  Argument Bias;
  if (R.hasInput(2)) {
    auto BN = R.node(2);
    if (!BN)
      return BN.takeError();
    Bias = Argument(*BN);
  }
  std::vector<Argument> Args = {Argument(X), Argument(*WN), Bias};
  Args.insert(Args.end(), Params.begin(), Params.end());
  return emitWeighted(R, Target, std::move(Args), *WN);
}

static llvm::Expected<std::vector<int64_t>>
pairAttr(NodeReader &R, llvm::StringRef Name, int64_t Default) {
  auto V = R.attrInts(Name, {Default, Default});
  if (!V)
    return V.takeError();
  if (V->size() != 2)
    return R.error("attribute '" + Name + "' must have 2 values, got " +
                   llvm::Twine(V->size()));
  for (int64_t X : *V)
    if (X < (Name == "dilations" || Name == "strides" ? 1 : 0) || X > 1 << 20)
      return R.error("attribute '" + Name + "' has an out-of-range value " +
                     llvm::Twine(X));
  return V;
}

/// ONNX pads [top, left, bottom, right] as PyTorch's symmetric padding.
llvm::Expected<std::vector<int64_t>> qfx::onnximport::readPads(NodeReader &R) {
  auto AutoPad = R.attrString("auto_pad", "NOTSET");
  if (!AutoPad)
    return AutoPad.takeError();
  if (*AutoPad != "NOTSET" && *AutoPad != "VALID")
    return R.error("auto_pad '" + *AutoPad +
                   "' is not supported (NOTSET and VALID are)");
  auto Pads = R.attrInts("pads", {0, 0, 0, 0});
  if (!Pads)
    return Pads.takeError();
  if (Pads->size() != 4)
    return R.error("attribute 'pads' must have 4 values, got " +
                   llvm::Twine(Pads->size()));
  for (int64_t P : *Pads)
    if (P < 0 || P > 1 << 20)
      return R.error("attribute 'pads' has an out-of-range value " +
                     llvm::Twine(P));
  if ((*Pads)[0] != (*Pads)[2] || (*Pads)[1] != (*Pads)[3])
    return R.error("asymmetric pads [" + llvm::Twine((*Pads)[0]) + ", " +
                   llvm::Twine((*Pads)[1]) + ", " + llvm::Twine((*Pads)[2]) +
                   ", " + llvm::Twine((*Pads)[3]) + "] are not supported");
  return std::vector<int64_t>{(*Pads)[0], (*Pads)[1]};
}

llvm::Error qfx::onnximport::importConv(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto X = R.node(0);
  auto W = R.input(1);
  if (!X)
    return X.takeError();
  if (!W)
    return W.takeError();
  if (rankOf(*W) == 3)
    return importConv1d(R);
  if (rankOf(*W) != 4)
    return R.error("only 1-d and 2-d convolution are supported (the weight "
                   "has rank " +
                   llvm::Twine(rankOf(*W)) + ")");
  auto Group = R.attrInt("group", 1);
  auto Strides = pairAttr(R, "strides", 1);
  auto Dilations = pairAttr(R, "dilations", 1);
  auto Pads = readPads(R);
  auto Kernel = R.attrInts("kernel_shape", {});
  if (llvm::Error E = firstError(Group, Strides, Dilations, Pads, Kernel))
    return E;
  llvm::ArrayRef<int64_t> WDims =
      (*W)->isConst() ? (*W)->Const->shape()
                      : llvm::ArrayRef<int64_t>((*W)->N->type()->Dims);
  if (!Kernel->empty() && *Kernel != std::vector<int64_t>{WDims[2], WDims[3]})
    return R.error("kernel_shape does not match the weight's shape " +
                   formatShape(WDims));
  if (*Group < 1 || WDims[0] % *Group)
    return R.error("group " + llvm::Twine(*Group) + " does not divide " +
                   llvm::Twine(WDims[0]) + " output channels");
  const Tensor *WC = floatConst(*W);
  const Tensor *BC = nullptr;
  if (R.hasInput(2)) {
    auto B = R.input(2);
    if (!B)
      return B.takeError();
    BC = floatConst(*B);
    if (BC && (BC->rank() != 1 || BC->dim(0) != WDims[0]))
      return R.error("the bias has shape " + formatShape(BC->shape()) +
                     ", expected [" + llvm::Twine(WDims[0]) + "]");
  }
  Node *Out;
  if (WC && (BC || !R.hasInput(2))) {
    std::string Path = R.newModulePath((*W)->InitName, "conv");
    ModuleInfo &M = R.gm().addModule(Path, "Conv2d");
    M.setAttr("in_channels", Argument::integer(WDims[1] * *Group));
    M.setAttr("out_channels", Argument::integer(WDims[0]));
    M.setAttr("kernel_size", Argument::ints({WDims[2], WDims[3]}));
    M.setAttr("stride", Argument::ints(*Strides));
    M.setAttr("padding", Argument::ints(*Pads));
    M.setAttr("dilation", Argument::ints(*Dilations));
    M.setAttr("groups", Argument::integer(*Group));
    M.setTensor("weight", *WC);
    if (BC)
      M.setTensor("bias", *BC);
    auto N = R.emit(OpCode::CallModule, Path, {Argument(*X)});
    if (!N)
      return N.takeError();
    Out = *N;
  } else {
    auto N = emitWeightedConv(R, "conv2d", *X,
                              {Argument::ints(*Strides), Argument::ints(*Pads),
                               Argument::ints(*Dilations),
                               Argument::integer(*Group)});
    if (!N)
      return N.takeError();
    Out = *N;
  }
  R.defineNode(0, Out);
  return llvm::Error::success();
}

/// A [K, N] matrix transposed to [N, K] (and scaled).
static Tensor transposed(const Tensor &T, double Scale) {
  int64_t K = T.dim(0), N = T.dim(1);
  Tensor Out(DType::F32, {N, K});
  for (int64_t I = 0; I < K; ++I)
    for (int64_t J = 0; J < N; ++J)
      Out.data<float>()[J * K + I] =
          static_cast<float>(T.data<float>()[I * N + J] * Scale);
  return Out;
}

/// Adds a Linear module for weight \p W ([out, in]) and bias \p B (or none)
/// and applies it to \p X.
static llvm::Error linearModule(NodeReader &R, Node *X, llvm::StringRef WName,
                                Tensor W, std::optional<Tensor> B) {
  std::string Path = R.newModulePath(WName, "linear");
  ModuleInfo &M = R.gm().addModule(Path, "Linear");
  M.setAttr("in_features", Argument::integer(W.dim(1)));
  M.setAttr("out_features", Argument::integer(W.dim(0)));
  M.setTensor("weight", std::move(W));
  if (B)
    M.setTensor("bias", std::move(*B));
  auto N = R.emit(OpCode::CallModule, Path, {Argument(X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importGemm(NodeReader &R) {
  auto TransA = R.attrInt("transA", 0);
  auto TransB = R.attrInt("transB", 0);
  auto Alpha = R.attrFloat("alpha", 1.0);
  auto Beta = R.attrFloat("beta", 1.0);
  if (llvm::Error E = firstError(TransA, TransB, Alpha, Beta))
    return E;
  if (*TransA)
    return R.error("transA = 1 is not supported");
  auto X = R.node(0);
  auto B = R.input(1);
  if (!X)
    return X.takeError();
  if (!B)
    return B.takeError();
  const Tensor *BC = floatConst(*B);
  if (BC && BC->rank() == 2) {
    Tensor W = *TransB ? BC->clone() : transposed(*BC, 1.0);
    if (*Alpha != 1.0)
      for (int64_t I = 0; I < W.numElements(); ++I)
        W.data<float>()[I] = static_cast<float>(W.data<float>()[I] * *Alpha);
    std::optional<Tensor> Bias;
    if (R.hasInput(2)) {
      auto C = R.input(2);
      if (!C)
        return C.takeError();
      const Tensor *CC = floatConst(*C);
      if (!CC)
        return R.error("input C must be a float constant when B is one");
      int64_t Out = W.dim(0);
      if (CC->numElements() != Out && CC->numElements() != 1)
        return R.error("C has shape " + formatShape(CC->shape()) +
                       ", expected [" + llvm::Twine(Out) + "]");
      Bias = Tensor(DType::F32, {Out});
      for (int64_t I = 0; I < Out; ++I)
        Bias->data<float>()[I] = static_cast<float>(
            CC->data<float>()[CC->numElements() == 1 ? 0 : I] * *Beta);
    }
    return linearModule(R, *X, (*B)->InitName, std::move(W), std::move(Bias));
  }
  if (!*TransB || *Alpha != 1.0 || *Beta != 1.0)
    return R.error("a weight that is not a float constant needs transB = 1 "
                   "and alpha = beta = 1");
  auto W = R.node(1);
  if (!W)
    return W.takeError();
  Argument Bias;
  if (R.hasInput(2)) {
    auto C = R.node(2);
    if (!C)
      return C.takeError();
    Bias = Argument(*C);
  }
  auto N = emitWeighted(R, "linear", {Argument(*X), Argument(*W), Bias}, *W);
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// The dequantize of a rank-2 s8 initializer [in, out] that only \p R's
/// MatMul reads (a QDQ nn.Linear as torch and ORT's quantizer write it),
/// or nullptr.
static Node *qdqMatMulWeight(NodeReader &R, const OnnxValue &B) {
  Node *Dq = B.N;
  if (!Dq || Dq->op() != OpCode::CallMethod || Dq->target() != "dequantize" ||
      Dq->hasUsers() || R.state().Uses[R.proto().input(1)] != 1 ||
      !Dq->arg(0).isNode())
    return nullptr;
  Node *G = Dq->arg(0).getNode();
  if (G->op() != OpCode::GetAttr || G->users().size() != 1)
    return nullptr;
  const Tensor *T = R.gm().lookupTensor(G->target());
  if (!T || T->dtype() != DType::S8 || T->rank() != 2 || T->quant().isNone())
    return nullptr;
  return Dq;
}

/// Turns \p Dq's [in, out] weight into linear's [out, in] in place (a
/// per-channel axis swaps with it) and emits linear(x, weight).
static llvm::Error qdqLinear(NodeReader &R, Node *X, Node *Dq) {
  Node *G = Dq->arg(0).getNode();
  const Tensor &T = *R.gm().lookupTensor(G->target());
  int64_t In = T.dim(0), Out = T.dim(1);
  Tensor W(DType::S8, {Out, In});
  for (int64_t I = 0; I < In; ++I)
    for (int64_t O = 0; O < Out; ++O)
      W.data<int8_t>()[O * In + I] = T.data<int8_t>()[I * Out + O];
  QuantParams Q = T.quant();
  if (Q.isPerChannel())
    Q.Axis = 1 - Q.Axis;
  W.setQuant(Q);
  *R.gm().lookupTensor(G->target()) = std::move(W);
  for (Node *Nd : {G, Dq})
    if (llvm::Error E = typeNode(R.gm(), Nd))
      return R.error(errorToString(std::move(E)));
  auto N = emitWeighted(R, "linear", {Argument(X), Argument(Dq)}, Dq);
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importMatMul(NodeReader &R) {
  auto X = R.node(0);
  auto B = R.input(1);
  if (!X)
    return X.takeError();
  if (!B)
    return B.takeError();
  const Tensor *BC = floatConst(*B);
  if (BC && BC->rank() == 2)
    return linearModule(R, *X, (*B)->InitName, transposed(*BC, 1.0),
                        std::nullopt);
  if (Node *Dq = qdqMatMulWeight(R, **B))
    return qdqLinear(R, *X, Dq);
  if (!(*B)->isConst())
    return importMatMulOfActivations(R); // attention: q k^T, attn v
  if (rankOf(*B) != 2)
    return R.error("only a rank-2 right operand is supported");
  auto W = R.node(1);
  if (!W)
    return W.takeError();
  auto T = R.emit(OpCode::CallMethod, "transpose",
                  {Argument(*W), Argument::integer(0), Argument::integer(1)});
  if (!T)
    return T.takeError();
  auto N = R.emit(OpCode::CallFunction, "linear", {Argument(*X), Argument(*T)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

double qfx::onnximport::shortestDouble(double V) {
  float F = static_cast<float>(V);
  for (int Digits = 1; Digits < 10; ++Digits) {
    char Buf[40];
    std::snprintf(Buf, sizeof(Buf), "%.*g", Digits, double(F));
    double D = std::strtod(Buf, nullptr);
    if (static_cast<float>(D) == F)
      return D;
  }
  return F;
}

llvm::Error qfx::onnximport::importBatchNorm(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto Training = R.attrInt("training_mode", 0);
  auto Eps = R.attrFloat("epsilon", 1e-5);
  auto Momentum = R.attrFloat("momentum", 0.9);
  if (llvm::Error E = firstError(Training, Eps, Momentum))
    return E;
  if (*Training)
    return R.error("training_mode = 1 is not supported");
  auto X = R.node(0);
  if (!X)
    return X.takeError();
  size_t Rank = (*X)->type()->Dims.size();
  if (Rank < 2 || Rank > 4)
    return R.error("only 2-d and 3-d input (BatchNorm1d) and 4-d input "
                   "(BatchNorm2d) are supported");
  int64_t C = (*X)->type()->Dims[1];
  static const char *Names[] = {"scale", "B", "input_mean", "input_var"};
  static const char *Tensors[] = {"weight", "bias", "running_mean",
                                  "running_var"};
  std::vector<Tensor> Ts;
  std::string WName;
  for (size_t I = 1; I <= 4; ++I) {
    auto V = R.constant(I, Names[I - 1]);
    if (!V)
      return V.takeError();
    const Tensor *T = floatConst(*V);
    if (!T || T->rank() != 1 || T->dim(0) != C)
      return R.error(llvm::Twine(Names[I - 1]) + " must be a float [" +
                     llvm::Twine(C) + "] constant");
    Ts.push_back(*T);
    if (I == 1)
      WName = (*V)->InitName;
  }
  std::string Path = R.newModulePath(WName, "bn");
  ModuleInfo &M =
      R.gm().addModule(Path, Rank == 4 ? "BatchNorm2d" : "BatchNorm1d");
  M.setAttr("num_features", Argument::integer(C));
  // ONNX stores float attributes; PyTorch's doubles (1e-5, not 1e-5f).
  M.setAttr("eps", Argument::real(shortestDouble(*Eps)));
  // ONNX's momentum weighs the running value; PyTorch's the new one.
  M.setAttr("momentum",
            Argument::real(std::round((1.0 - shortestDouble(*Momentum)) * 1e9) /
                           1e9));
  for (size_t I = 0; I < 4; ++I)
    M.setTensor(Tensors[I], Ts[I], /*IsBuffer=*/I >= 2);
  M.setTensor("num_batches_tracked", Tensor(DType::S64, {}), true);
  auto N = R.emit(OpCode::CallModule, Path, {Argument(*X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}
