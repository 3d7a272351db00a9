//===- ImportConvFamily.cpp - Conv1d and ConvTranspose2d ------------------===//
//
// torch.onnx.export writes nn.Conv1d as Conv with a [out, in / group, k]
// weight and one-value strides / dilations / kernel_shape, two-value pads.
// It becomes a Conv1d module with the initializers as parameters, as 2-d
// Conv becomes Conv2d; ConvTranspose becomes ConvTranspose2d. With a QDQ
// weight (a DequantizeLinear output) they are conv1d / conv_transpose2d
// calls on the dequantized weight, as 2-d Conv becomes conv2d, for fold-qdq.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/Support/Error.h"

using namespace qfx;
using namespace qfx::onnximport;

/// A one-value attribute (strides, dilations) at least \p Min.
static llvm::Expected<int64_t> singleAttr(NodeReader &R, llvm::StringRef Name,
                                          int64_t Default, int64_t Min) {
  auto V = R.attrInts(Name, {Default});
  if (!V)
    return V.takeError();
  if (V->size() != 1)
    return R.error("attribute '" + Name + "' must have 1 value, got " +
                   llvm::Twine(V->size()));
  if ((*V)[0] < Min || (*V)[0] > 1 << 20)
    return R.error("attribute '" + Name + "' has an out-of-range value " +
                   llvm::Twine((*V)[0]));
  return (*V)[0];
}

/// ONNX pads [begin, end] as PyTorch's symmetric padding.
static llvm::Expected<int64_t> pads1d(NodeReader &R) {
  auto AutoPad = R.attrString("auto_pad", "NOTSET");
  if (!AutoPad)
    return AutoPad.takeError();
  if (*AutoPad != "NOTSET" && *AutoPad != "VALID")
    return R.error("auto_pad '" + *AutoPad +
                   "' is not supported (NOTSET and VALID are)");
  auto Pads = R.attrInts("pads", {0, 0});
  if (!Pads)
    return Pads.takeError();
  if (Pads->size() != 2)
    return R.error("attribute 'pads' must have 2 values, got " +
                   llvm::Twine(Pads->size()));
  if ((*Pads)[0] < 0 || (*Pads)[0] > 1 << 20)
    return R.error("attribute 'pads' has an out-of-range value " +
                   llvm::Twine((*Pads)[0]));
  if ((*Pads)[0] != (*Pads)[1])
    return R.error("asymmetric pads [" + llvm::Twine((*Pads)[0]) + ", " +
                   llvm::Twine((*Pads)[1]) + "] are not supported");
  return (*Pads)[0];
}

/// A float initializer operand (not computed from the batch size).
static const Tensor *floatInit(const OnnxValue *V) {
  return V && V->isConst() && V->Const->dtype() == DType::F32 && V->Dep.empty()
             ? &*V->Const
             : nullptr;
}

/// The call_function form of a convolution whose weight is a graph value,
/// defining the ONNX node's output.
static llvm::Error emitFunction(NodeReader &R, llvm::StringRef Target, Node *X,
                                std::vector<Argument> Params) {
  auto N = emitWeightedConv(R, Target, X, std::move(Params));
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importConv1d(NodeReader &R) {
  auto X = R.node(0);
  auto W = R.input(1);
  if (!X)
    return X.takeError();
  if (!W)
    return W.takeError();
  auto Group = R.attrInt("group", 1);
  auto Stride = singleAttr(R, "strides", 1, 1);
  auto Dilation = singleAttr(R, "dilations", 1, 1);
  auto Pad = pads1d(R);
  auto Kernel = R.attrInts("kernel_shape", {});
  if (llvm::Error E = firstError(Group, Stride, Dilation, Pad, Kernel))
    return E;
  const Tensor *WC = floatInit(*W);
  if (!WC)
    return emitFunction(R, "conv1d", *X,
                        {Argument::ints({*Stride}), Argument::ints({*Pad}),
                         Argument::ints({*Dilation}),
                         Argument::integer(*Group)});
  llvm::ArrayRef<int64_t> WDims = WC->shape();
  if (!Kernel->empty() && *Kernel != std::vector<int64_t>{WDims[2]})
    return R.error("kernel_shape does not match the weight's shape " +
                   formatShape(WDims));
  if (*Group < 1 || WDims[0] % *Group)
    return R.error("group " + llvm::Twine(*Group) + " does not divide " +
                   llvm::Twine(WDims[0]) + " output channels");
  const Tensor *BC = nullptr;
  if (R.hasInput(2)) {
    auto B = R.input(2);
    if (!B)
      return B.takeError();
    BC = floatInit(*B);
    if (!BC || BC->rank() != 1 || BC->dim(0) != WDims[0])
      return R.error("the bias must be a float [" + llvm::Twine(WDims[0]) +
                     "] constant");
  }
  std::string Path = R.newModulePath((*W)->InitName, "conv");
  ModuleInfo &M = R.gm().addModule(Path, "Conv1d");
  M.setAttr("in_channels", Argument::integer(WDims[1] * *Group));
  M.setAttr("out_channels", Argument::integer(WDims[0]));
  M.setAttr("kernel_size", Argument::ints({WDims[2]}));
  M.setAttr("stride", Argument::ints({*Stride}));
  M.setAttr("padding", Argument::ints({*Pad}));
  M.setAttr("dilation", Argument::ints({*Dilation}));
  M.setAttr("groups", Argument::integer(*Group));
  M.setTensor("weight", *WC);
  if (BC)
    M.setTensor("bias", *BC);
  auto N = R.emit(OpCode::CallModule, Path, {Argument(*X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// A two-value attribute (strides, dilations, output_padding) in
/// [Min, 2^20].
static llvm::Expected<std::vector<int64_t>>
pairAttr2(NodeReader &R, llvm::StringRef Name, int64_t Default, int64_t Min) {
  auto V = R.attrInts(Name, {Default, Default});
  if (!V)
    return V.takeError();
  if (V->size() != 2)
    return R.error("attribute '" + Name + "' must have 2 values, got " +
                   llvm::Twine(V->size()));
  for (int64_t X : *V)
    if (X < Min || X > 1 << 20)
      return R.error("attribute '" + Name + "' has an out-of-range value " +
                     llvm::Twine(X));
  return V;
}

/// torch.onnx.export writes nn.ConvTranspose2d as ConvTranspose with the
/// [in, out / group, kH, kW] weight, pads and (when non-zero)
/// output_padding; an explicit output_shape is not supported.
llvm::Error qfx::onnximport::importConvTranspose(NodeReader &R) {
  auto X = R.node(0);
  auto W = R.input(1);
  if (!X)
    return X.takeError();
  if (!W)
    return W.takeError();
  const Tensor *WC = floatInit(*W);
  if ((*W)->isConst() && (!WC || WC->rank() != 4))
    return R.error("only 2-d transposed convolution with a float constant "
                   "weight is supported");
  auto OutShape = R.attrInts("output_shape", {});
  auto Group = R.attrInt("group", 1);
  auto Strides = pairAttr2(R, "strides", 1, 1);
  auto Dilations = pairAttr2(R, "dilations", 1, 1);
  auto OutPad = pairAttr2(R, "output_padding", 0, 0);
  auto Pads = readPads(R);
  auto Kernel = R.attrInts("kernel_shape", {});
  if (llvm::Error E =
          firstError(OutShape, Group, Strides, Dilations, OutPad, Pads, Kernel))
    return E;
  if (!OutShape->empty())
    return R.error("attribute 'output_shape' is not supported (PyTorch "
                   "writes pads and output_padding)");
  for (int I = 0; I < 2; ++I)
    if ((*OutPad)[I] >= (*Strides)[I] && (*OutPad)[I] >= (*Dilations)[I])
      return R.error("output_padding must be smaller than either stride or "
                     "dilation");
  if (!WC)
    return emitFunction(R, "conv_transpose2d", *X,
                        {Argument::ints(*Strides), Argument::ints(*Pads),
                         Argument::ints(*OutPad), Argument::integer(*Group),
                         Argument::ints(*Dilations)});
  llvm::ArrayRef<int64_t> WDims = WC->shape();
  if (!Kernel->empty() && *Kernel != std::vector<int64_t>{WDims[2], WDims[3]})
    return R.error("kernel_shape does not match the weight's shape " +
                   formatShape(WDims));
  if (*Group < 1 || WDims[0] % *Group)
    return R.error("group " + llvm::Twine(*Group) + " does not divide " +
                   llvm::Twine(WDims[0]) + " input channels");
  int64_t OC = WDims[1] * *Group;
  const Tensor *BC = nullptr;
  if (R.hasInput(2)) {
    auto B = R.input(2);
    if (!B)
      return B.takeError();
    BC = floatInit(*B);
    if (!BC || BC->rank() != 1 || BC->dim(0) != OC)
      return R.error("the bias must be a float [" + llvm::Twine(OC) +
                     "] constant");
  }
  std::string Path = R.newModulePath((*W)->InitName, "conv");
  ModuleInfo &M = R.gm().addModule(Path, "ConvTranspose2d");
  M.setAttr("in_channels", Argument::integer(WDims[0]));
  M.setAttr("out_channels", Argument::integer(OC));
  M.setAttr("kernel_size", Argument::ints({WDims[2], WDims[3]}));
  M.setAttr("stride", Argument::ints(*Strides));
  M.setAttr("padding", Argument::ints(*Pads));
  M.setAttr("output_padding", Argument::ints(*OutPad));
  M.setAttr("groups", Argument::integer(*Group));
  M.setAttr("dilation", Argument::ints(*Dilations));
  M.setTensor("weight", *WC);
  if (BC)
    M.setTensor("bias", *BC);
  auto N = R.emit(OpCode::CallModule, Path, {Argument(*X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}
