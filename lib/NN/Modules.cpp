//===- Modules.cpp - Built-in modules -------------------------------------===//
//
// Constructors record torch.nn's attribute names and types so that the
// module-kind table (Runtime/Op.cpp) binds them to the op's parameters;
// forward() goes through that same table, which is why eager execution and
// the interpreter agree.
//
//===----------------------------------------------------------------------===//

#include "qfx/NN/Modules.h"

#include "qfx/NN/Functional.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <cstdio>
#include <string>

using namespace qfx;
using namespace qfx::nn;

//===----------------------------------------------------------------------===//
// StandardModule
//===----------------------------------------------------------------------===//

/// Applies the module's op to \p X through dispatch: the input, the
/// module's tensors (none when absent) and its attributes as keywords. Used
/// when a policy inlines a built-in module, so the op lands in the graph as
/// call_function with get_attr operands.
static Value dispatchModuleOp(const Module &M, const Value &X) {
  const ModuleKindDef *K = lookupModuleKind(M.kind());
  if (!K)
    throw Error(M.kind().str() +
                ": module kind has no built-in implementation");
  std::vector<OpArg> Args{X};
  for (const char *Name : K->LeadingAttrs) {
    auto It = M.attrs().find(Name);
    Args.push_back(It != M.attrs().end() ? OpArg(It->second)
                                         : OpArg(Argument::none()));
  }
  for (const char *Name : K->TensorOperands) {
    const Tensor *T = M.tensor(Name);
    Args.push_back(T ? OpArg(*T) : OpArg(Argument::none()));
  }
  OpKwargs Kwargs;
  for (const char *Name : K->AttrOperands) {
    auto It = M.attrs().find(Name);
    if (It != M.attrs().end())
      Kwargs.emplace_back(Name, OpArg(It->second));
  }
  return dispatch(K->Op, std::move(Args), std::move(Kwargs));
}

Value StandardModule::forward(Value X) {
  if (X.isSymbolic())
    return dispatchModuleOp(*this, X);
  auto Fail = [&](llvm::Error E) -> Error {
    return Error(kind().str() + ": " + errorToString(std::move(E)));
  };
  auto Bound = bindModuleCall(info(), {Operand(X.tensor())});
  if (!Bound)
    throw Fail(Bound.takeError());
  llvm::Expected<Tensor> R = Bound->first->Run(Bound->second);
  if (!R)
    throw Fail(R.takeError());
  return Value(std::move(*R));
}

//===----------------------------------------------------------------------===//
// Layers with parameters
//===----------------------------------------------------------------------===//

static Argument pairAttr(const std::array<int64_t, 2> &P) {
  return Argument::ints({P[0], P[1]});
}

static Argument pairAttr(int64_t V) { return Argument::ints({V, V}); }

Conv2d::Conv2d(const Conv2dOptions &O) : StandardModule("Conv2d") {
  if (O.In <= 0 || O.Out <= 0 || O.Groups <= 0 || O.Kernel[0] <= 0 ||
      O.Kernel[1] <= 0)
    throw Error("Conv2d: channels, groups and kernel size must be positive");
  if (O.In % O.Groups || O.Out % O.Groups)
    throw Error("Conv2d: in_channels (" + std::to_string(O.In) +
                ") and out_channels (" + std::to_string(O.Out) +
                ") must be divisible by groups (" + std::to_string(O.Groups) +
                ")");
  setAttr("in_channels", Argument::integer(O.In));
  setAttr("out_channels", Argument::integer(O.Out));
  setAttr("kernel_size", pairAttr(O.Kernel));
  setAttr("stride", pairAttr(O.Stride));
  setAttr("padding", pairAttr(O.Padding));
  setAttr("dilation", pairAttr(O.Dilation));
  setAttr("groups", Argument::integer(O.Groups));
  // torch's reset_parameters bounds both tensors by 1/sqrt(fan_in).
  int64_t InPerGroup = O.In / O.Groups;
  double Bound =
      1.0 / std::sqrt(double(InPerGroup * O.Kernel[0] * O.Kernel[1]));
  weight = register_parameter(
      "weight",
      uniformInit({O.Out, InPerGroup, O.Kernel[0], O.Kernel[1]}, Bound));
  bias = register_parameter("bias",
                            O.Bias ? uniformInit({O.Out}, Bound) : Tensor());
}

Linear::Linear(int64_t In, int64_t Out, bool Bias) : StandardModule("Linear") {
  if (In <= 0 || Out <= 0)
    throw Error("Linear: in_features and out_features must be positive");
  setAttr("in_features", Argument::integer(In));
  setAttr("out_features", Argument::integer(Out));
  double Bound = 1.0 / std::sqrt(double(In));
  weight = register_parameter("weight", uniformInit({Out, In}, Bound));
  bias =
      register_parameter("bias", Bias ? uniformInit({Out}, Bound) : Tensor());
}

/// A 1-D f32 tensor filled with \p V.
static Tensor filled(int64_t N, float V) {
  Tensor T(DType::F32, {N});
  for (int64_t I = 0; I < N; ++I)
    T.data<float>()[I] = V;
  return T;
}

BatchNorm2d::BatchNorm2d(int64_t NumFeatures, double Eps, double Momentum)
    : StandardModule("BatchNorm2d") {
  if (NumFeatures <= 0)
    throw Error("BatchNorm2d: num_features must be positive");
  setAttr("num_features", Argument::integer(NumFeatures));
  setAttr("eps", Argument::real(Eps));
  setAttr("momentum", Argument::real(Momentum));
  // PyTorch's registration order, which is the state_dict's.
  weight = register_parameter("weight", filled(NumFeatures, 1.0f));
  bias = register_parameter("bias", filled(NumFeatures, 0.0f));
  running_mean = register_buffer("running_mean", filled(NumFeatures, 0.0f));
  running_var = register_buffer("running_var", filled(NumFeatures, 1.0f));
  num_batches_tracked =
      register_buffer("num_batches_tracked", Tensor(DType::S64, {}));
}

//===----------------------------------------------------------------------===//
// Conv family
//===----------------------------------------------------------------------===//

Conv1d::Conv1d(const Conv1dOptions &O) : StandardModule("Conv1d") {
  if (O.In <= 0 || O.Out <= 0 || O.Groups <= 0 || O.Kernel <= 0)
    throw Error("Conv1d: channels, groups and kernel size must be positive");
  if (O.Stride <= 0 || O.Dilation <= 0 || O.Padding < 0)
    throw Error("Conv1d: stride and dilation must be positive, padding "
                "non-negative");
  if (O.In % O.Groups || O.Out % O.Groups)
    throw Error("Conv1d: in_channels (" + std::to_string(O.In) +
                ") and out_channels (" + std::to_string(O.Out) +
                ") must be divisible by groups (" + std::to_string(O.Groups) +
                ")");
  setAttr("in_channels", Argument::integer(O.In));
  setAttr("out_channels", Argument::integer(O.Out));
  setAttr("kernel_size", Argument::ints({O.Kernel}));
  setAttr("stride", Argument::ints({O.Stride}));
  setAttr("padding", Argument::ints({O.Padding}));
  setAttr("dilation", Argument::ints({O.Dilation}));
  setAttr("groups", Argument::integer(O.Groups));
  // torch's reset_parameters bounds both tensors by 1/sqrt(fan_in).
  int64_t InPerGroup = O.In / O.Groups;
  double Bound = 1.0 / std::sqrt(double(InPerGroup * O.Kernel));
  weight = register_parameter(
      "weight", uniformInit({O.Out, InPerGroup, O.Kernel}, Bound));
  bias = register_parameter("bias",
                            O.Bias ? uniformInit({O.Out}, Bound) : Tensor());
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions &O)
    : StandardModule("ConvTranspose2d") {
  if (O.In <= 0 || O.Out <= 0 || O.Groups <= 0 || O.Kernel[0] <= 0 ||
      O.Kernel[1] <= 0)
    throw Error("ConvTranspose2d: channels, groups and kernel size must be "
                "positive");
  if (O.In % O.Groups || O.Out % O.Groups)
    throw Error("ConvTranspose2d: in_channels (" + std::to_string(O.In) +
                ") and out_channels (" + std::to_string(O.Out) +
                ") must be divisible by groups (" + std::to_string(O.Groups) +
                ")");
  for (int I = 0; I < 2; ++I)
    if (O.OutputPadding[I] >= O.Stride[I] &&
        O.OutputPadding[I] >= O.Dilation[I])
      throw Error("ConvTranspose2d: output_padding must be smaller than "
                  "either stride or dilation");
  setAttr("in_channels", Argument::integer(O.In));
  setAttr("out_channels", Argument::integer(O.Out));
  setAttr("kernel_size", pairAttr(O.Kernel));
  setAttr("stride", pairAttr(O.Stride));
  setAttr("padding", pairAttr(O.Padding));
  setAttr("output_padding", pairAttr(O.OutputPadding));
  setAttr("groups", Argument::integer(O.Groups));
  setAttr("dilation", pairAttr(O.Dilation));
  // torch computes fan_in from weight.size(1) = out / groups.
  int64_t OutPerGroup = O.Out / O.Groups;
  double Bound =
      1.0 / std::sqrt(double(OutPerGroup * O.Kernel[0] * O.Kernel[1]));
  weight = register_parameter(
      "weight",
      uniformInit({O.In, OutPerGroup, O.Kernel[0], O.Kernel[1]}, Bound));
  bias = register_parameter("bias",
                            O.Bias ? uniformInit({O.Out}, Bound) : Tensor());
}

BatchNorm1d::BatchNorm1d(int64_t NumFeatures, double Eps, double Momentum)
    : StandardModule("BatchNorm1d") {
  if (NumFeatures <= 0)
    throw Error("BatchNorm1d: num_features must be positive");
  setAttr("num_features", Argument::integer(NumFeatures));
  setAttr("eps", Argument::real(Eps));
  setAttr("momentum", Argument::real(Momentum));
  weight = register_parameter("weight", filled(NumFeatures, 1.0f));
  bias = register_parameter("bias", filled(NumFeatures, 0.0f));
  running_mean = register_buffer("running_mean", filled(NumFeatures, 0.0f));
  running_var = register_buffer("running_var", filled(NumFeatures, 1.0f));
  num_batches_tracked =
      register_buffer("num_batches_tracked", Tensor(DType::S64, {}));
}

Value BatchNorm1d::forward(Value X) {
  if (X.defined() && X.dim() != 2 && X.dim() != 3)
    throw Error("BatchNorm1d: expected 2D or 3D input (got " +
                std::to_string(X.dim()) + "D input)");
  return StandardModule::forward(std::move(X));
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

ReLU::ReLU() : StandardModule("ReLU") {}
ReLU6::ReLU6() : StandardModule("ReLU6") {}
Hardswish::Hardswish() : StandardModule("Hardswish") {}
Hardsigmoid::Hardsigmoid() : StandardModule("Hardsigmoid") {}
Sigmoid::Sigmoid() : StandardModule("Sigmoid") {}
Tanh::Tanh() : StandardModule("Tanh") {}
SiLU::SiLU() : StandardModule("SiLU") {}
Identity::Identity() : StandardModule("Identity") {}

Hardtanh::Hardtanh(double MinVal, double MaxVal) : StandardModule("Hardtanh") {
  if (!(MinVal < MaxVal))
    throw Error("Hardtanh: max_val must be greater than min_val");
  setAttr("min_val", Argument::real(MinVal));
  setAttr("max_val", Argument::real(MaxVal));
}

LeakyReLU::LeakyReLU(double NegativeSlope) : StandardModule("LeakyReLU") {
  setAttr("negative_slope", Argument::real(NegativeSlope));
}

Softmax::Softmax(int64_t Dim) : StandardModule("Softmax") {
  setAttr("dim", Argument::integer(Dim));
}

//===----------------------------------------------------------------------===//
// Pooling and reshaping
//===----------------------------------------------------------------------===//

MaxPool2d::MaxPool2d(int64_t Kernel, int64_t Stride, int64_t Padding,
                     int64_t Dilation, bool CeilMode)
    : StandardModule("MaxPool2d") {
  if (Kernel <= 0 || Stride < 0 || Padding < 0 || Dilation <= 0)
    throw Error("MaxPool2d: kernel_size and dilation must be positive, "
                "stride and padding non-negative");
  setAttr("kernel_size", pairAttr(Kernel));
  setAttr("stride", pairAttr(Stride ? Stride : Kernel));
  setAttr("padding", pairAttr(Padding));
  setAttr("dilation", pairAttr(Dilation));
  setAttr("ceil_mode", Argument::boolean(CeilMode));
}

AvgPool2d::AvgPool2d(int64_t Kernel, int64_t Stride, int64_t Padding,
                     bool CeilMode, bool CountIncludePad,
                     std::optional<int64_t> DivisorOverride)
    : StandardModule("AvgPool2d") {
  if (Kernel <= 0 || Stride < 0 || Padding < 0)
    throw Error("AvgPool2d: kernel_size must be positive, stride and "
                "padding non-negative");
  if (DivisorOverride && *DivisorOverride == 0)
    throw Error("AvgPool2d: divisor_override must be non-zero");
  setAttr("kernel_size", pairAttr(Kernel));
  setAttr("stride", pairAttr(Stride ? Stride : Kernel));
  setAttr("padding", pairAttr(Padding));
  setAttr("ceil_mode", Argument::boolean(CeilMode));
  setAttr("count_include_pad", Argument::boolean(CountIncludePad));
  if (DivisorOverride)
    setAttr("divisor_override", Argument::integer(*DivisorOverride));
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(std::array<int64_t, 2> OutputSize)
    : StandardModule("AdaptiveAvgPool2d") {
  if (OutputSize[0] <= 0 || OutputSize[1] <= 0)
    throw Error("AdaptiveAvgPool2d: output_size must be positive");
  setAttr("output_size", pairAttr(OutputSize));
}

Flatten::Flatten(int64_t StartDim, int64_t EndDim) : StandardModule("Flatten") {
  setAttr("start_dim", Argument::integer(StartDim));
  setAttr("end_dim", Argument::integer(EndDim));
}

/// "0.5" rather than std::to_string's "0.500000".
static std::string formatNumber(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

Dropout::Dropout(double P) : StandardModule("Dropout") {
  if (!(P >= 0.0 && P <= 1.0))
    throw Error("Dropout: dropout probability has to be between 0 and 1, "
                "but got " +
                formatNumber(P));
  setAttr("p", Argument::real(P));
}

Value Dropout::forward(Value X) {
  // The module table has no training operand (an interpreted graph always
  // evaluates), so the mode comes from here.
  return F::dropout(X, attrs().at("p").getFloat(), is_training());
}

//===----------------------------------------------------------------------===//
// arith family: Upsample, Embedding
//===----------------------------------------------------------------------===//

Upsample::Upsample(const UpsampleOptions &O) : StandardModule("Upsample") {
  if (O.Size.has_value() == O.ScaleFactor.has_value())
    throw Error("Upsample: exactly one of size and scale_factor must be set");
  if (O.Mode != "nearest" && O.Mode != "bilinear")
    throw Error("Upsample: mode: '" + O.Mode +
                "' is not supported (expected 'nearest' or 'bilinear')");
  if (O.AlignCorners && O.Mode == "nearest")
    throw Error("Upsample: align_corners option can only be set with the "
                "interpolating modes: linear | bilinear | bicubic | trilinear");
  if (O.Size)
    setAttr("size", Argument::ints({(*O.Size)[0], (*O.Size)[1]}));
  if (O.ScaleFactor)
    setAttr("scale_factor",
            Argument::list({Argument::real((*O.ScaleFactor)[0]),
                            Argument::real((*O.ScaleFactor)[1])}));
  setAttr("mode", Argument::string(O.Mode));
  // nn.Upsample passes align_corners through; F.interpolate turns None
  // into False for bilinear.
  if (O.AlignCorners)
    setAttr("align_corners", Argument::boolean(*O.AlignCorners));
}

Embedding::Embedding(int64_t NumEmbeddings, int64_t EmbeddingDim,
                     std::optional<int64_t> PaddingIdx)
    : StandardModule("Embedding") {
  if (NumEmbeddings <= 0 || EmbeddingDim <= 0)
    throw Error("Embedding: num_embeddings and embedding_dim must be positive");
  if (PaddingIdx &&
      (*PaddingIdx < -NumEmbeddings || *PaddingIdx >= NumEmbeddings))
    throw Error("Embedding: padding_idx must be within num_embeddings");
  setAttr("num_embeddings", Argument::integer(NumEmbeddings));
  setAttr("embedding_dim", Argument::integer(EmbeddingDim));
  // torch initializes with N(0, 1); a uniform of the same variance keeps
  // to the shared generator (trained values come from state_dicts).
  Tensor W = uniformInit({NumEmbeddings, EmbeddingDim}, std::sqrt(3.0));
  if (PaddingIdx) {
    int64_t Row = *PaddingIdx < 0 ? *PaddingIdx + NumEmbeddings : *PaddingIdx;
    setAttr("padding_idx", Argument::integer(Row));
    for (int64_t J = 0; J < EmbeddingDim; ++J)
      W.data<float>()[Row * EmbeddingDim + J] = 0.0f;
  }
  weight = register_parameter("weight", W);
}

//===----------------------------------------------------------------------===//
// Transformer modules
//===----------------------------------------------------------------------===//

LayerNorm::LayerNorm(std::vector<int64_t> NormalizedShape, double Eps,
                     bool ElementwiseAffine)
    : StandardModule("LayerNorm") {
  if (NormalizedShape.empty() ||
      llvm::any_of(NormalizedShape, [](int64_t D) { return D <= 0; }))
    throw Error("LayerNorm: normalized_shape must be non-empty and positive");
  setAttr("normalized_shape", Argument::ints(NormalizedShape));
  setAttr("eps", Argument::real(Eps));
  setAttr("elementwise_affine", Argument::boolean(ElementwiseAffine));
  int64_t N = numElements(NormalizedShape);
  weight = register_parameter(
      "weight",
      ElementwiseAffine ? filled(N, 1.0f).reshaped(NormalizedShape) : Tensor());
  bias = register_parameter(
      "bias",
      ElementwiseAffine ? filled(N, 0.0f).reshaped(NormalizedShape) : Tensor());
}

GELU::GELU(const std::string &Approximate) : StandardModule("GELU") {
  if (Approximate != "none" && Approximate != "tanh")
    throw Error("GELU: approximate must be 'none' or 'tanh', got '" +
                Approximate + "'");
  setAttr("approximate", Argument::string(Approximate));
}

//===----------------------------------------------------------------------===//
// Sequential
//===----------------------------------------------------------------------===//

Sequential::Sequential() : Module("Sequential") {}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> Mods)
    : Sequential() {
  for (std::shared_ptr<Module> &M : Mods)
    push_back(std::move(M));
}

void Sequential::push_back(std::shared_ptr<Module> M) {
  register_module(std::to_string(size()), std::move(M));
}

Value Sequential::forward(Value X) {
  for (const auto &KV : children())
    X = KV.second->call({X});
  return X;
}
