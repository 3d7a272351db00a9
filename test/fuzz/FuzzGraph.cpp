//===- FuzzGraph.cpp - Fuzzes the whole pipeline on text IR graphs --------===//
//
// A text IR module is parsed, verified, then taken through what qopt does:
// fuse, qconfig-propagation and prepare (or prepare-qat) under a preset
// chosen from the input's hash, calibration on a fixed deterministic input,
// convert, the reference interpreter, compile and a compiled run. Each step
// may reject the graph with an error; only crashes, sanitizer reports and
// failed assertions are findings. Graphs bigger than a small budget are
// skipped so that one input runs in milliseconds.

#include "FuzzUtil.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Transforms/Pass.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

using namespace qfx;

namespace {

/// Elements of any one tensor, of all tensors together, and nodes.
constexpr int64_t MaxTensorElements = 4096;
constexpr int64_t MaxTotalElements = 1 << 16;
constexpr size_t MaxNodes = 64;

/// Adds \p S to \p Total; false when it is over either budget.
bool fits(llvm::ArrayRef<int64_t> S, int64_t &Total) {
  auto N = checkedNumElements(S, MaxTensorElements);
  if (!fuzz::take(N))
    return false;
  Total += *N;
  return Total <= MaxTotalElements;
}

/// Every node but the output must have a type (so that sizes are known
/// before anything runs), and every type and module tensor must be small.
bool withinBudget(const GraphModule &GM) {
  std::vector<const Node *> Nodes = GM.graph().nodes();
  if (Nodes.size() > MaxNodes)
    return false;
  int64_t Total = 0;
  for (const Node *N : Nodes) {
    if (N->op() == OpCode::Output)
      continue;
    if (!N->type() || !fits(N->type()->Dims, Total))
      return false;
  }
  for (const auto &[Name, T] : GM.namedTensors())
    if (!fits(T->shape(), Total))
      return false;
  return true;
}

/// FNV-1a: picks the preset, so that each input always takes the same path.
uint64_t hashBytes(const uint8_t *Data, size_t Size) {
  uint64_t H = 1469598103934665603ull;
  for (size_t I = 0; I < Size; ++I)
    H = (H ^ Data[I]) * 1099511628211ull;
  return H;
}

/// Element \p I of the fixed input pattern: small values of both signs
/// (non-negative for u8).
double patternValue(int64_t I, DType D) {
  int64_t V = (I * 37) % 23;
  if (D == DType::F32)
    return (V - 11) / 4.0;
  return D == DType::U8 ? V : V - 11;
}

/// One tensor per placeholder, of its type, filled with the pattern.
std::vector<Tensor> makeInputs(const GraphModule &GM) {
  std::vector<Tensor> Ins;
  for (const Node *P : GM.graph().placeholders()) {
    const TensorType &T = *P->type();
    Tensor X(T.Dtype, T.Dims);
    for (int64_t I = 0; I < X.numElements(); ++I)
      X.setFromDouble(I, patternValue(I, T.Dtype));
    X.setQuant(T.Quant);
    Ins.push_back(std::move(X));
  }
  return Ins;
}

/// fuse -> qconfig-propagation -> prepare(-qat) -> calibrate -> convert ->
/// interpret -> compile -> run; stops at the first error.
llvm::Error runPipeline(GraphModule &GM, uint64_t Hash) {
  static const char *const Presets[] = {"x86", "onednn", "dynamic",
                                        "weight_only", "qat_x86"};
  llvm::StringRef Preset = Presets[Hash % 5];
  auto QC = QConfig::preset(Preset);
  if (!QC)
    return QC.takeError();
  QConfigMapping Mapping;
  Mapping.setGlobal(*QC);
  PassContext Ctx;
  Ctx.QConfigs = std::make_shared<const QConfigMapping>(std::move(Mapping));
  Ctx.QAT = Preset == "qat_x86";
  PassManager::Options Opts;
  Opts.VerifyEach = true;
  PassManager PM(Opts);
  if (llvm::Error E =
          PM.addPipeline(Ctx.QAT ? "fuse,qconfig-propagation,prepare-qat"
                                 : "fuse,qconfig-propagation,prepare"))
    return E;
  if (llvm::Error E = PM.run(GM, Ctx))
    return E;
  std::vector<Tensor> Ins = makeInputs(GM);
  if (auto Out = runObserved(GM, Ins); !Out)
    return Out.takeError();
  auto Q = convert_to_reference_fx(GM);
  if (!Q)
    return Q.takeError();
  if (llvm::Error E = verify(**Q))
    return E;
  if (auto Out = Interpreter(**Q).run(Ins); !Out)
    return Out.takeError();
  CompileOptions CO;
  CO.NumThreads = 1;
  auto CM = compile(**Q, CO);
  if (!CM)
    return CM.takeError();
  if (auto Out = (*CM)->run(Ins); !Out)
    return Out.takeError();
  return llvm::Error::success();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto GM = parseGraphModule(fuzz::bytes(Data, Size), "fuzz.qir");
  if (!fuzz::take(GM))
    return 0;
  if (llvm::Error E = verify(**GM)) {
    fuzz::ignore(std::move(E));
    return 0;
  }
  if (!withinBudget(**GM))
    return 0;
  // QFX_FUZZ_DEBUG=1 says how far each input got (for writing seeds that
  // reach compile and run).
  static const bool Debug = std::getenv("QFX_FUZZ_DEBUG") != nullptr;
  llvm::Error E = runPipeline(**GM, hashBytes(Data, Size));
  if (Debug)
    std::fprintf(stderr, "graph: %s\n",
                 E ? errorToString(std::move(E)).c_str() : "ran compiled");
  fuzz::ignore(std::move(E));
  return 0;
}
