//===- PreLowering.cpp - Graph rewrites compile() makes on a copy ---------===//

#include "PreLowering.h"

#include "qfx/Runtime/BatchNormFold.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"

using namespace qfx;

namespace {

/// The module \p N calls, or null.
const ModuleInfo *calledModule(const Node &N, const GraphModule &GM) {
  return N.op() == OpCode::CallModule ? GM.lookupModule(N.target()) : nullptr;
}

bool isWeightOnly(const ModuleInfo &M) {
  const Tensor *W = M.tensor("weight");
  return (M.kind() == "Linear" || M.kind() == "Conv2d") && W &&
         W->dtype() != DType::F32 && !W->quant().isNone();
}

/// The BatchNorm kind that folds into a module of kind \p Lin, if any.
llvm::StringRef foldingBatchNorm(llvm::StringRef Lin) {
  if (Lin == "Conv2d")
    return "BatchNorm2d";
  if (Lin == "Conv1d" || Lin == "Linear")
    return "BatchNorm1d";
  return "";
}

bool hasValues(const ModuleInfo &M, llvm::ArrayRef<llvm::StringRef> Names,
               bool Required) {
  for (llvm::StringRef Name : Names) {
    const Tensor *T = M.tensor(Name);
    if (T ? T->dtype() != DType::F32 || !T->hasData() : Required)
      return false;
  }
  return true;
}

/// How often each module is named by a call_module or (through one of its
/// tensors) a get_attr.
llvm::StringMap<unsigned> moduleUses(const GraphModule &GM) {
  llvm::StringMap<unsigned> Uses;
  for (const Node *N : GM.graph().nodes())
    if (N->op() == OpCode::CallModule)
      ++Uses[N->target()];
    else if (N->op() == OpCode::GetAttr)
      ++Uses[N->target().rsplit('.').first];
  return Uses;
}

/// The module call \p BN folds into, or null: its sole input is a call of
/// a float conv / linear module that nothing else uses and that is named
/// nowhere else (its weights change), with every tensor's values known. A
/// linear's output must be [N, C], the only shape where BatchNorm1d
/// normalizes its features.
Node *foldTarget(const Node &BN, const GraphModule &GM,
                 const llvm::StringMap<unsigned> &Uses) {
  const ModuleInfo *B = calledModule(BN, GM);
  if (!B || BN.numArgs() != 1 || !BN.kwargs().empty() || !BN.arg(0).isNode())
    return nullptr;
  Node *Lin = BN.arg(0).getNode();
  const ModuleInfo *L = calledModule(*Lin, GM);
  if (!L || foldingBatchNorm(L->kind()) != B->kind() ||
      Lin->users().size() != 1 || Uses.lookup(Lin->target()) != 1)
    return nullptr;
  if (L->kind() == "Linear" && (!Lin->type() || Lin->type()->Dims.size() != 2))
    return nullptr;
  if (!hasValues(*L, {"weight"}, true) || !hasValues(*L, {"bias"}, false) ||
      !hasValues(*B, {"running_mean", "running_var"}, true) ||
      !hasValues(*B, {"weight", "bias"}, false))
    return nullptr;
  return Lin;
}

/// Folds every BatchNorm that can be into its conv / linear; returns how
/// many.
size_t foldBatchNorms(GraphModule &GM) {
  llvm::StringMap<unsigned> Uses = moduleUses(GM);
  size_t Folded = 0;
  for (Node *BN : GM.graph().nodes()) {
    Node *Lin = foldTarget(*BN, GM, Uses);
    if (!Lin)
      continue;
    ModuleInfo &L = *GM.lookupModule(Lin->target());
    FoldedWeights F = foldBatchNorm(L, *GM.lookupModule(BN->target()),
                                    L.kind() != "Linear", false);
    L.setTensor("weight", std::move(F.Weight));
    L.setTensor("bias", std::move(F.Bias));
    BN->replaceAllUsesWith(Lin);
    GM.graph().erase(BN);
    ++Folded;
  }
  return Folded;
}

/// Whether \p GM has a BatchNorm foldTarget accepts.
bool hasFoldableBatchNorm(const GraphModule &GM) {
  llvm::StringMap<unsigned> Uses = moduleUses(GM);
  return llvm::any_of(GM.graph().nodes(), [&](const Node *N) {
    return foldTarget(*N, GM, Uses) != nullptr;
  });
}

} // namespace

llvm::Expected<std::unique_ptr<GraphModule>>
codegen::rewriteForLowering(const GraphModule &GM, const CompileOptions &Opts) {
  std::vector<std::string> WeightOnly;
  for (const std::string &Path : GM.moduleNames())
    if (const ModuleInfo *M = GM.lookupModule(Path))
      if (isWeightOnly(*M))
        WeightOnly.push_back(Path);
  bool Fold = Opts.FoldBatchNorm && hasFoldableBatchNorm(GM);
  if (WeightOnly.empty() && !Fold)
    return nullptr;
  std::unique_ptr<GraphModule> Copy = GM.clone();
  for (const std::string &Path : WeightOnly) {
    ModuleInfo *M = Copy->lookupModule(Path);
    const Tensor *W = M->tensor("weight");
    if (!W->hasData())
      return makeError("weight-only module '" + Path +
                       "' has a weight without values");
    auto F = runOp("dequantize", {Operand(*W)});
    if (!F)
      return prefixError(F.takeError(), Path);
    M->setTensor("weight", std::move(*F));
  }
  if (Fold)
    foldBatchNorms(*Copy);
  return std::move(Copy);
}
