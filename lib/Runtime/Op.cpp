//===- Op.cpp - Operands, schema binding and the module-kind table --------===//
//
// The op definitions themselves (schemas, inference, kernels) are in
// OpTable.cpp; this file holds the machinery around them.
//
//===----------------------------------------------------------------------===//

#include "qfx/Runtime/Op.h"

#include "QuantKernels.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

#include <atomic>
#include <cmath>

using namespace qfx;

//===----------------------------------------------------------------------===//
// Operand
//===----------------------------------------------------------------------===//

Operand::Operand(Argument Arg) : K(Kind::Arg), A(std::move(Arg)) {
  assert(!A.isNode() && "node references must be resolved before running");
}

Operand Operand::list(std::vector<Operand> Elems) {
  Operand O;
  O.K = Kind::List;
  O.L = std::move(Elems);
  return O;
}

const Tensor &Operand::tensor() const {
  assert(isTensor() && "operand is not a tensor");
  return T;
}

const Argument &Operand::arg() const {
  assert(K == Kind::Arg && "operand is not a plain argument");
  return A;
}

const std::vector<Operand> &Operand::elems() const {
  assert(isList() && "operand is not a list");
  return L;
}

//===----------------------------------------------------------------------===//
// BoundArgs
//===----------------------------------------------------------------------===//

llvm::Error BoundArgs::error(size_t I, const llvm::Twine &Msg) const {
  return makeError(Op + ": " + Names[I] + ": " + Msg);
}

static const char *kindName(const Operand &O) {
  if (O.isTensor())
    return "a tensor";
  if (O.isList())
    return "a list";
  switch (O.arg().kind()) {
  case Argument::Kind::None:
    return "none";
  case Argument::Kind::Int:
    return "an int";
  case Argument::Kind::Float:
    return "a float";
  case Argument::Kind::Bool:
    return "a bool";
  case Argument::Kind::String:
    return "a string";
  default:
    return "a value";
  }
}

llvm::Expected<const Tensor *> BoundArgs::tensor(size_t I) const {
  if (!Values[I].isTensor())
    return error(I,
                 llvm::Twine("expected a tensor, got ") + kindName(Values[I]));
  return &Values[I].tensor();
}

llvm::Expected<const Tensor *> BoundArgs::optTensor(size_t I) const {
  if (Values[I].isNone())
    return nullptr;
  return tensor(I);
}

llvm::Expected<std::vector<Tensor>> BoundArgs::tensorList(size_t I) const {
  if (!Values[I].isList())
    return error(I, llvm::Twine("expected a list of tensors, got ") +
                        kindName(Values[I]));
  std::vector<Tensor> R;
  for (const Operand &E : Values[I].elems()) {
    if (!E.isTensor())
      return error(I, llvm::Twine("expected a list of tensors, found ") +
                          kindName(E) + " in it");
    R.push_back(E.tensor());
  }
  return R;
}

llvm::Expected<int64_t> BoundArgs::integer(size_t I) const {
  const Operand &O = Values[I];
  if (O.kind() != Operand::Kind::Arg || !O.arg().isInt())
    return error(I, llvm::Twine("expected an int, got ") + kindName(O));
  return O.arg().getInt();
}

llvm::Expected<double> BoundArgs::real(size_t I) const {
  const Operand &O = Values[I];
  if (O.kind() == Operand::Kind::Arg && O.arg().isFloat())
    return O.arg().getFloat();
  if (O.kind() == Operand::Kind::Arg && O.arg().isInt())
    return static_cast<double>(O.arg().getInt());
  return error(I, llvm::Twine("expected a number, got ") + kindName(O));
}

llvm::Expected<bool> BoundArgs::boolean(size_t I) const {
  const Operand &O = Values[I];
  if (O.kind() != Operand::Kind::Arg || !O.arg().isBool())
    return error(I, llvm::Twine("expected a bool, got ") + kindName(O));
  return O.arg().getBool();
}

llvm::Expected<std::vector<int64_t>> BoundArgs::ints(size_t I) const {
  const Operand &O = Values[I];
  if (O.kind() == Operand::Kind::Arg && O.arg().isInt())
    return std::vector<int64_t>{O.arg().getInt()};
  if (O.kind() == Operand::Kind::Arg && O.arg().isList())
    if (auto L = O.arg().getIntList())
      return *L;
  return error(I, llvm::Twine("expected an int or a list of ints, got ") +
                      kindName(O));
}

llvm::Expected<std::array<int64_t, 2>> BoundArgs::pair(size_t I) const {
  auto L = ints(I);
  if (!L)
    return L.takeError();
  if (L->size() == 1 && !(Values[I].arg().isList()))
    return std::array<int64_t, 2>{(*L)[0], (*L)[0]};
  if (L->size() != 2)
    return error(I, "expected an int or two ints, got " +
                        llvm::Twine(L->size()) + " ints");
  return std::array<int64_t, 2>{(*L)[0], (*L)[1]};
}

//===----------------------------------------------------------------------===//
// Binding
//===----------------------------------------------------------------------===//

const OpDef *qfx::lookupOp(llvm::StringRef Name) {
  llvm::ArrayRef<OpDef> Ops = allOps();
  auto It = llvm::partition_point(
      Ops, [&](const OpDef &D) { return llvm::StringRef(D.Name) < Name; });
  if (It != Ops.end() && It->Name == Name)
    return &*It;
  return nullptr;
}

llvm::Expected<BoundArgs>
qfx::bindArgs(const OpDef &Def, std::vector<Operand> Positional,
              std::vector<std::pair<std::string, Operand>> Keywords) {
  size_t N = Def.Params.size();
  if (Positional.size() > N)
    return makeError(llvm::Twine(Def.Name) + ": takes at most " +
                     llvm::Twine(N) + " arguments, got " +
                     llvm::Twine(Positional.size()));
  std::vector<std::optional<Operand>> Slots(N);
  for (size_t I = 0; I < Positional.size(); ++I)
    Slots[I] = std::move(Positional[I]);
  for (auto &KV : Keywords) {
    auto It = llvm::find_if(
        Def.Params, [&](const OpParam &P) { return KV.first == P.Name; });
    if (It == Def.Params.end())
      return makeError(llvm::Twine(Def.Name) + ": unknown argument '" +
                       KV.first + "'");
    size_t I = It - Def.Params.begin();
    if (Slots[I])
      return makeError(llvm::Twine(Def.Name) + ": argument '" + KV.first +
                       "' given twice");
    Slots[I] = std::move(KV.second);
  }
  std::vector<const char *> Names;
  std::vector<Operand> Values;
  for (size_t I = 0; I < N; ++I) {
    const OpParam &P = Def.Params[I];
    if (!Slots[I] && !P.Default)
      return makeError(llvm::Twine(Def.Name) + ": missing argument '" + P.Name +
                       "'");
    Names.push_back(P.Name);
    Values.push_back(Slots[I] ? std::move(*Slots[I]) : Operand(*P.Default));
  }
  return BoundArgs(Def.Name, std::move(Names), std::move(Values));
}

/// The verifier rejects call_function / call_method nodes whose target is
/// not in the op table, so unknown ops fail when a graph is loaded, not
/// when it runs. Installed in every binary that can run a graph.
static const bool OpTargetCheckInstalled = [] {
  setOpTargetCheck(
      [](llvm::StringRef Name) -> bool { return lookupOp(Name) != nullptr; });
  return true;
}();

static llvm::Expected<const OpDef *> findOp(llvm::StringRef Name) {
  if (const OpDef *D = lookupOp(Name))
    return D;
  return makeError("unknown op '" + Name + "'");
}

llvm::Expected<TensorType>
qfx::inferOp(llvm::StringRef Name, std::vector<Operand> Positional,
             std::vector<std::pair<std::string, Operand>> Keywords) {
  auto D = findOp(Name);
  if (!D)
    return D.takeError();
  auto B = bindArgs(**D, std::move(Positional), std::move(Keywords));
  if (!B)
    return B.takeError();
  return (*D)->Infer(*B);
}

llvm::Expected<Tensor>
qfx::runOp(llvm::StringRef Name, std::vector<Operand> Positional,
           std::vector<std::pair<std::string, Operand>> Keywords) {
  auto D = findOp(Name);
  if (!D)
    return D.takeError();
  auto B = bindArgs(**D, std::move(Positional), std::move(Keywords));
  if (!B)
    return B.takeError();
  return (*D)->Run(*B);
}

//===----------------------------------------------------------------------===//
// Module kinds
//===----------------------------------------------------------------------===//

// Standard leaf modules, as PyTorch's nn modules call their functionals.
// Tensors named here but absent from a module (bias=False) pass none.
static const ModuleKindDef ModuleKinds[] = {
    {"AdaptiveAvgPool2d", "adaptive_avg_pool2d", {}, {"output_size"}},
    {"AvgPool2d",
     "avg_pool2d",
     {},
     {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
      "divisor_override"}},
    {"BatchNorm1d",
     "batch_norm",
     {"running_mean", "running_var", "weight", "bias"},
     {"eps"}},
    {"BatchNorm2d",
     "batch_norm",
     {"running_mean", "running_var", "weight", "bias"},
     {"eps"}},
    {"Conv1d",
     "conv1d",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups"}},
    {"Conv2d",
     "conv2d",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups"}},
    {"ConvTranspose2d",
     "conv_transpose2d",
     {"weight", "bias"},
     {"stride", "padding", "output_padding", "groups", "dilation"}},
    {"Dropout", "dropout", {}, {"p"}},
    {"Flatten", "flatten", {}, {"start_dim", "end_dim"}},
    {"Hardsigmoid", "hardsigmoid", {}, {}},
    {"Hardswish", "hardswish", {}, {}},
    {"Hardtanh", "hardtanh", {}, {"min_val", "max_val"}},
    {"Identity", "identity", {}, {}},
    {"LeakyReLU", "leaky_relu", {}, {"negative_slope"}},
    {"Linear", "linear", {"weight", "bias"}, {}},
    {"MaxPool2d",
     "max_pool2d",
     {},
     {"kernel_size", "stride", "padding", "dilation", "ceil_mode"}},
    // Quantized modules of the reference quantized graph
    // (docs/quantization.md): output qparams are attributes, weights s8.
    {"QuantizedBNReLU2d",
     "quantized_batch_norm_relu",
     {"running_mean", "running_var", "weight", "bias"},
     {"eps", "scale", "zero_point"}},
    {"QuantizedBatchNorm2d",
     "quantized_batch_norm",
     {"running_mean", "running_var", "weight", "bias"},
     {"eps", "scale", "zero_point"}},
    {"QuantizedConv1d",
     "quantized_conv1d",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedConv2d",
     "quantized_conv2d",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedConvAdd2d",
     "quantized_conv2d_add",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedConvAddReLU2d",
     "quantized_conv2d_add_relu",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedConvTranspose2d",
     "quantized_conv_transpose2d",
     {"weight", "bias"},
     {"stride", "padding", "output_padding", "groups", "dilation", "scale",
      "zero_point"}},
    {"QuantizedConvReLU1d",
     "quantized_conv1d_relu",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedConvReLU2d",
     "quantized_conv2d_relu",
     {"weight", "bias"},
     {"stride", "padding", "dilation", "groups", "scale", "zero_point"}},
    {"QuantizedLinear",
     "quantized_linear",
     {"weight", "bias"},
     {"scale", "zero_point"}},
    {"QuantizedLinearDynamic",
     "quantized_linear_dynamic",
     {"weight", "bias"},
     {"reduce_range"}},
    {"QuantizedLinearReLU",
     "quantized_linear_relu",
     {"weight", "bias"},
     {"scale", "zero_point"}},
    {"ReLU", "relu", {}, {}},
    {"ReLU6", "relu6", {}, {}},
    {"SiLU", "silu", {}, {}},
    {"Sigmoid", "sigmoid", {}, {}},
    {"Softmax", "softmax", {}, {"dim"}},
    {"Tanh", "tanh", {}, {}},
    // arith family.
    {"Embedding", "embedding", {"weight"}, {"padding_idx"}},
    {"Upsample",
     "interpolate",
     {},
     {"size", "scale_factor", "mode", "align_corners",
      "recompute_scale_factor"}},
    // Transformer modules.
    {"GELU", "gelu", {}, {"approximate"}},
    {"LayerNorm",
     "layer_norm",
     {"weight", "bias"},
     {"eps"},
     {"normalized_shape"}},
    {"QuantizedLayerNorm",
     "quantized_layer_norm",
     {"weight", "bias"},
     {"eps", "scale", "zero_point"},
     {"normalized_shape"}},
};

const ModuleKindDef *qfx::lookupModuleKind(llvm::StringRef Kind) {
  for (const ModuleKindDef &D : ModuleKinds)
    if (Kind == D.Kind)
      return &D;
  return nullptr;
}

llvm::Expected<std::pair<const OpDef *, BoundArgs>>
qfx::bindModuleCall(const ModuleInfo &M, std::vector<Operand> Inputs) {
  const ModuleKindDef *K = lookupModuleKind(M.kind());
  if (!K)
    return makeError("module kind '" + M.kind() +
                     "' has no built-in implementation");
  const OpDef *D = lookupOp(K->Op);
  assert(D && "module kind table names an unknown op");
  std::vector<Operand> Positional = std::move(Inputs);
  // Float kinds holding a quantized weight (convert's weight-only form, like
  // PyTorch's reference modules) compute with the dequantized weight.
  bool FloatKind = !llvm::StringRef(K->Kind).startswith("Quantized");
  for (const char *Name : K->LeadingAttrs) {
    const Argument *A = M.attr(Name);
    Positional.push_back(A ? Operand(*A) : Operand(Argument::none()));
  }
  for (const char *Name : K->TensorOperands) {
    const Tensor *T = M.tensor(Name);
    if (T && FloatKind && !T->quant().isNone() && T->dtype() != DType::F32)
      Positional.push_back(
          Operand(T->hasData() ? qref::dequantize(*T)
                               : Tensor::declared(DType::F32, T->shape())));
    else
      Positional.push_back(T ? Operand(*T) : Operand(Argument::none()));
  }
  std::vector<std::pair<std::string, Operand>> Keywords;
  for (const char *Name : K->AttrOperands)
    if (const Argument *A = M.attr(Name))
      Keywords.emplace_back(Name, Operand(*A));
  auto B = bindArgs(*D, std::move(Positional), std::move(Keywords));
  if (!B)
    return B.takeError();
  return std::make_pair(D, std::move(*B));
}

//===----------------------------------------------------------------------===//
// Kernel mode
//===----------------------------------------------------------------------===//

static std::atomic<KernelMode> CurrentMode{KernelMode::OneDNN};

void qfx::setKernelMode(KernelMode M) { CurrentMode = M; }
KernelMode qfx::kernelMode() { return CurrentMode; }
