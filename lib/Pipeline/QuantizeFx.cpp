//===- QuantizeFx.cpp - prepare_fx and calibration for C++ models ---------===//
//
// The prepare half of the quantize_fx API (convert lives in ConvertFx.cpp):
// tracing, the fuse / qconfig-propagation / prepare pipeline, and running
// observed graphs with live observers and fake-quant modules.
//
//===----------------------------------------------------------------------===//

#include "qfx/Pipeline/QuantizeFx.h"

#include "qfx/NN/Module.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Fuse.h"
#include "qfx/Transforms/Pass.h"
#include "qfx/Transforms/Prepare.h"
#include "qfx/Transforms/PrepareQat.h"
#include "qfx/Transforms/QConfigPropagation.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace qfx;

//===----------------------------------------------------------------------===//
// Running observed graphs
//===----------------------------------------------------------------------===//

using HookResult = std::optional<llvm::Expected<Tensor>>;

/// PyTorch's QAT conv-bn / linear-bn folding factor per output channel:
/// bn.weight / sqrt(bn.running_var + bn.eps); empty without a BatchNorm.
static llvm::Expected<std::vector<float>> bnScaleFactor(const ModuleInfo &M,
                                                        llvm::StringRef Path) {
  llvm::StringRef K = M.kind();
  if (K != "ConvBn2d" && K != "ConvBnReLU2d" && K != "LinearBn1d" &&
      K != "ConvBn1d" && K != "ConvBnReLU1d")
    return std::vector<float>();
  const ModuleInfo *BN = M.child("1");
  const Tensor *Var = BN ? BN->tensor("running_var") : nullptr;
  if (!Var || !Var->hasData() || Var->dtype() != DType::F32)
    return makeError(K + " '" + Path + "' has no BatchNorm running_var");
  const Tensor *Gamma = BN->tensor("weight");
  const Argument *EpsA = BN->attr("eps");
  double Eps = EpsA && EpsA->isFloat() ? EpsA->getFloat() : 1e-5;
  std::vector<float> SF(Var->numElements());
  for (size_t C = 0; C < SF.size(); ++C) {
    float G = Gamma && Gamma->hasData() ? Gamma->data<float>()[C] : 1.0f;
    SF[C] = G / std::sqrt(Var->data<float>()[C] + static_cast<float>(Eps));
  }
  return SF;
}

/// \p W with output channel c (dimension 0) multiplied by \p SF[c], or
/// divided when \p Divide.
static Tensor scaleChannels(const Tensor &W, llvm::ArrayRef<float> SF,
                            bool Divide) {
  Tensor R = W.clone();
  int64_t Inner = W.numElements() / W.dim(0);
  float *D = R.data<float>();
  for (int64_t C = 0; C < W.dim(0); ++C)
    for (int64_t I = 0; I < Inner; ++I)
      D[C * Inner + I] =
          Divide ? D[C * Inner + I] / SF[C] : D[C * Inner + I] * SF[C];
  return R;
}

/// Runs weighted module \p Path with its weight passed through its
/// weight_fake_quant child, as torch.ao.nn.qat modules do; BatchNorm of
/// ConvBn kinds is folded into the weight first and unfolded after.
static llvm::Expected<Tensor>
runWithFakeQuantWeight(GraphModule &GM, llvm::StringRef Path, ModuleInfo &M,
                       ModuleInfo &FQ, std::vector<Operand> Args) {
  ModuleInfo *H = weightHolder(M);
  const Tensor *WPtr = H ? H->tensor("weight") : nullptr;
  if (!WPtr || !WPtr->hasData() || WPtr->dtype() != DType::F32)
    return makeError("module '" + Path +
                     "' has no f32 weight to fake-quantize");
  Tensor W = *WPtr; // Shares storage: restored below.
  auto SF = bnScaleFactor(M, Path);
  if (!SF)
    return SF.takeError();
  if (!SF->empty() && static_cast<int64_t>(SF->size()) != W.dim(0))
    return makeError("module '" + Path +
                     "': BatchNorm size does not match the weight");
  Tensor In = SF->empty() ? W : scaleChannels(W, *SF, /*Divide=*/false);
  auto FQW = runObserverModule(FQ, (Path + ".weight_fake_quant").str(), In);
  if (!FQW)
    return FQW.takeError();
  Tensor Eff = SF->empty() ? *FQW : scaleChannels(*FQW, *SF, /*Divide=*/true);
  H->setTensor("weight", Eff);
  auto Out = runModule(GM, Path, std::move(Args));
  H->setTensor("weight", W);
  return Out;
}

/// The interpreter hook of observed graphs.
static HookResult runObservedModule(GraphModule &GM, const Node &N,
                                    const std::vector<Operand> &Args) {
  ModuleInfo *M = GM.lookupModule(N.target());
  if (!M)
    return std::nullopt;
  if (isObserverModule(*M)) {
    if (Args.size() != 1 || !Args[0].isTensor())
      return HookResult(
          makeError("observer '" + N.target() + "' takes one tensor"));
    return HookResult(runObserverModule(*M, N.target(), Args[0].tensor()));
  }
  if (ModuleInfo *FQ = M->child("weight_fake_quant"))
    return HookResult(runWithFakeQuantWeight(GM, N.target(), *M, *FQ, Args));
  return std::nullopt;
}

llvm::Expected<std::vector<Tensor>>
qfx::runObserved(GraphModule &GM, llvm::ArrayRef<Tensor> In) {
  Interpreter I(GM);
  I.setCallModuleHook([&GM](const Node &N, const std::vector<Operand> &Args) {
    return runObservedModule(GM, N, Args);
  });
  return I.run(In);
}

//===----------------------------------------------------------------------===//
// ObservedModule
//===----------------------------------------------------------------------===//

ObservedModule::ObservedModule(std::unique_ptr<GraphModule> GM)
    : GM(std::move(GM)) {}

ObservedModule::~ObservedModule() = default;

llvm::Expected<std::vector<Tensor>>
ObservedModule::operator()(llvm::ArrayRef<Tensor> In) {
  if (!GM)
    return makeError("observed module was released");
  return runObserved(*GM, In);
}

llvm::Error ObservedModule::calibrate(const Tensor &Data, int64_t BatchSize) {
  if (BatchSize <= 0)
    return makeError("calibration batch size must be positive, got " +
                     llvm::Twine(BatchSize));
  if (Data.rank() == 0)
    return makeError("calibration data must be a tensor with a batch "
                     "dimension");
  // Zero images would leave every observer empty, and convert would be the
  // first to complain, far from the cause.
  if (Data.dim(0) == 0)
    return makeError("no calibration data: the tensor has 0 images along "
                     "dimension 0");
  if (!Data.hasData())
    return makeError("calibration data has a shape but no values");
  if (!GM)
    return makeError("observed module was released");
  size_t NumInputs = GM->graph().placeholders().size();
  if (NumInputs != 1)
    return makeError("calibrate feeds one input, but the graph has " +
                     llvm::Twine(NumInputs));
  for (int64_t Begin = 0; Begin < Data.dim(0); Begin += BatchSize) {
    int64_t End = std::min(Data.dim(0), Begin + BatchSize);
    auto Out = (*this)({sliceRows(Data, Begin, End)});
    if (!Out)
      return prefixError(
          Out.takeError(),
          ("calibration batch at row " + llvm::Twine(Begin)).str());
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// prepare_fx
//===----------------------------------------------------------------------===//

llvm::Error qfx::prepareGraph(GraphModule &GM, const QConfigMapping &Mapping,
                              bool QAT, PassContext *Ctx) {
  PassContext Local;
  PassContext &C = Ctx ? *Ctx : Local;
  C.QConfigs = std::make_shared<const QConfigMapping>(Mapping);
  C.QAT = QAT;
  PassManager::Options Opts;
  Opts.VerifyEach = true;
  PassManager PM(Opts);
  PM.addPass(std::make_unique<Fuse>());
  PM.addPass(std::make_unique<QConfigPropagation>());
  if (QAT)
    PM.addPass(std::make_unique<PrepareQat>());
  else
    PM.addPass(std::make_unique<Prepare>());
  return PM.run(GM, C);
}

/// Traces \p Model in eval mode (restoring its mode after) and prepares.
static llvm::Expected<ObservedModule>
prepareModel(nn::Module &Model, const QConfigMapping &Mapping,
             llvm::ArrayRef<InputSpec> ExampleInputs, bool QAT,
             PassContext *Ctx) {
  bool WasTraining = Model.is_training();
  Model.eval();
  auto GM = symbolicTrace(Model, ExampleInputs);
  Model.train(WasTraining);
  if (!GM)
    return GM.takeError();
  if (llvm::Error E = prepareGraph(**GM, Mapping, QAT, Ctx))
    return E;
  return ObservedModule(std::move(*GM));
}

llvm::Expected<ObservedModule>
qfx::prepare_fx(nn::Module &Model, const QConfigMapping &Mapping,
                llvm::ArrayRef<InputSpec> ExampleInputs, PassContext *Ctx) {
  return prepareModel(Model, Mapping, ExampleInputs, /*QAT=*/false, Ctx);
}

llvm::Expected<ObservedModule>
qfx::prepare_qat_fx(nn::Module &Model, const QConfigMapping &Mapping,
                    llvm::ArrayRef<InputSpec> ExampleInputs, PassContext *Ctx) {
  return prepareModel(Model, Mapping, ExampleInputs, /*QAT=*/true, Ctx);
}
