//===- ModuleRunner.cpp - Type inference and execution of modules ---------===//

#include "qfx/Runtime/ModuleRunner.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include "llvm/ADT/STLExtras.h"

using namespace qfx;

//===----------------------------------------------------------------------===//
// The fused kinds
//===----------------------------------------------------------------------===//

static FusedStep child(const char *Name, const char *Kind) {
  return {FusedStep::Kind::RunChild, Name, Kind};
}
static FusedStep addOther() { return {FusedStep::Kind::AddOther}; }

// torch.ao.nn.intrinsic's fused modules plus qfx's residual conv kinds,
// sorted by name. Each is a Sequential over standard children except that
// the residual kinds take (x, other) and add other after the conv.
static const FusedKindDef FusedKinds[] = {
    {"BNReLU2d", 1, {child("0", "BatchNorm2d"), child("1", "ReLU")}},
    {"ConvAdd2d", 2, {child("0", "Conv2d"), addOther()}},
    {"ConvAddReLU2d",
     2,
     {child("0", "Conv2d"), addOther(), child("1", "ReLU")}},
    // Conv family: the 1-d kinds of torch.ao.nn.intrinsic.
    {"ConvBn1d", 1, {child("0", "Conv1d"), child("1", "BatchNorm1d")}},
    {"ConvBn2d", 1, {child("0", "Conv2d"), child("1", "BatchNorm2d")}},
    {"ConvBnReLU2d",
     1,
     {child("0", "Conv2d"), child("1", "BatchNorm2d"), child("2", "ReLU")}},
    {"ConvBnReLU1d",
     1,
     {child("0", "Conv1d"), child("1", "BatchNorm1d"), child("2", "ReLU")}},
    {"ConvReLU1d", 1, {child("0", "Conv1d"), child("1", "ReLU")}},
    {"ConvReLU2d", 1, {child("0", "Conv2d"), child("1", "ReLU")}},
    {"LinearBn1d", 1, {child("0", "Linear"), child("1", "BatchNorm1d")}},
    {"LinearReLU", 1, {child("0", "Linear"), child("1", "ReLU")}},
};

std::vector<std::pair<const char *, const char *>>
FusedKindDef::children() const {
  std::vector<std::pair<const char *, const char *>> R;
  for (const FusedStep &S : Steps)
    if (S.K == FusedStep::Kind::RunChild)
      R.emplace_back(S.Child, S.ChildKind);
  return R;
}

const FusedKindDef *qfx::lookupFusedKind(llvm::StringRef Kind) {
  for (const FusedKindDef &D : FusedKinds)
    if (Kind == D.Kind)
      return &D;
  return nullptr;
}

llvm::ArrayRef<FusedKindDef> qfx::allFusedKinds() { return FusedKinds; }

//===----------------------------------------------------------------------===//
// Evaluation
//===----------------------------------------------------------------------===//

namespace {

/// Whether a step only infers types (operands are declared tensors) or
/// computes values.
enum class Mode { Infer, Run };

} // namespace

static TensorType typeOf(const Tensor &T) {
  return TensorType{T.dtype(), Shape(T.shape().begin(), T.shape().end()),
                    T.quant()};
}

static Tensor declaredFrom(const TensorType &T) {
  Tensor R = Tensor::declared(T.Dtype, T.Dims);
  R.setQuant(T.Quant);
  return R;
}

/// Fails if a tensor of module \p M (at \p Path) has no values: the text IR
/// and JSON may declare a parameter by type alone, which is enough to infer
/// types but not to run, and kernels assume the data is there.
static llvm::Error checkHasData(const ModuleInfo &M, llvm::StringRef Path) {
  for (const NamedTensor &T : M.tensors())
    if (!T.Value.hasData())
      return makeError("module '" + Path +
                       "': " + (T.IsBuffer ? "buffer" : "parameter") + " '" +
                       T.Name + "' has no data");
  return llvm::Error::success();
}

/// Applies the standard module \p M at \p Path; in Infer mode the result is
/// a declared tensor of the inferred type.
static llvm::Expected<Tensor> applyStandard(const ModuleInfo &M,
                                            llvm::StringRef Path,
                                            std::vector<Operand> Inputs,
                                            Mode Md) {
  if (Md == Mode::Run)
    if (llvm::Error E = checkHasData(M, Path))
      return std::move(E);
  auto Call = bindModuleCall(M, std::move(Inputs));
  if (!Call)
    return Call.takeError();
  if (Md == Mode::Run)
    return Call->first->Run(Call->second);
  auto T = Call->first->Infer(Call->second);
  if (!T)
    return T.takeError();
  return declaredFrom(*T);
}

/// The child a RunChild step names, checked against the table.
static llvm::Expected<const ModuleInfo *>
stepChild(const ModuleInfo &M, const FusedStep &S, llvm::StringRef Path) {
  const ModuleInfo *C = M.child(S.Child);
  if (!C)
    return makeError(M.kind() + " '" + Path + "' has no child '" + S.Child +
                     "'");
  if (C->kind() != S.ChildKind)
    return makeError(M.kind() + " '" + Path + "': child '" + S.Child +
                     "' is a " + C->kind() + ", expected " + S.ChildKind);
  return C;
}

/// Applies one step of fused module \p M to the running value \p Cur.
static llvm::Expected<Tensor> applyStep(const FusedStep &S, const ModuleInfo &M,
                                        llvm::StringRef Path, const Tensor &Cur,
                                        const std::vector<Operand> &Inputs,
                                        Mode Md) {
  if (S.K == FusedStep::Kind::RunChild) {
    auto C = stepChild(M, S, Path);
    if (!C)
      return C.takeError();
    std::string ChildPath =
        Path.empty() ? std::string(S.Child) : (Path + "." + S.Child).str();
    return applyStandard(**C, ChildPath, {Operand(Cur)}, Md);
  }
  std::vector<Operand> Ops = {Operand(Cur), Inputs[1]};
  if (Md == Mode::Run)
    return runOp("add", std::move(Ops));
  auto T = inferOp("add", std::move(Ops));
  if (!T)
    return T.takeError();
  return declaredFrom(*T);
}

/// Runs (or infers) the steps of fused kind \p D on \p Inputs.
static llvm::Expected<Tensor> applyFused(const FusedKindDef &D,
                                         const ModuleInfo &M,
                                         llvm::StringRef Path,
                                         std::vector<Operand> Inputs, Mode Md) {
  if (Inputs.size() != D.NumInputs)
    return makeError(M.kind() + " '" + Path + "' takes " +
                     llvm::Twine(D.NumInputs) + " inputs, got " +
                     llvm::Twine(Inputs.size()));
  if (!Inputs[0].isTensor())
    return makeError(M.kind() + " '" + Path + "': input is not a tensor");
  Tensor Cur = Inputs[0].tensor();
  for (const FusedStep &S : D.Steps) {
    auto Next = applyStep(S, M, Path, Cur, Inputs, Md);
    if (!Next)
      return Next.takeError();
    Cur = std::move(*Next);
  }
  return Cur;
}

static llvm::Expected<const ModuleInfo *> findModule(const GraphModule &GM,
                                                     llvm::StringRef Path) {
  if (const ModuleInfo *M = GM.lookupModule(Path))
    return M;
  return makeError("no module '" + Path + "'");
}

llvm::Expected<TensorType> qfx::inferModule(const GraphModule &GM,
                                            llvm::StringRef Path,
                                            std::vector<Operand> Inputs) {
  auto M = findModule(GM, Path);
  if (!M)
    return M.takeError();
  if (const FusedKindDef *D = lookupFusedKind((*M)->kind())) {
    auto R = applyFused(*D, **M, Path, std::move(Inputs), Mode::Infer);
    if (!R)
      return R.takeError();
    return typeOf(*R);
  }
  auto Call = bindModuleCall(**M, std::move(Inputs));
  if (!Call)
    return Call.takeError();
  return Call->first->Infer(Call->second);
}

llvm::Expected<Tensor> qfx::runModule(const GraphModule &GM,
                                      llvm::StringRef Path,
                                      std::vector<Operand> Inputs) {
  auto M = findModule(GM, Path);
  if (!M)
    return M.takeError();
  if (const FusedKindDef *D = lookupFusedKind((*M)->kind()))
    return applyFused(*D, **M, Path, std::move(Inputs), Mode::Run);
  return applyStandard(**M, Path, std::move(Inputs), Mode::Run);
}
