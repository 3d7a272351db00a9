//===- ConvertFx.cpp - convert_to_reference_fx / convert_fx ---------------===//
//
// The convert half of the quantize_fx API: a copy of the observed module
// goes through convert and dead-code elimination and is verified, so the
// calibrated original stays usable (for more calibration, or another
// convert); convert_fx wraps the result in a QuantizedModule.
//
//===----------------------------------------------------------------------===//

#include "qfx/Pipeline/QuantizeFx.h"

#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"
#include "qfx/Transforms/Convert.h"
#include "qfx/Transforms/DeadCodeElimination.h"
#include "qfx/Transforms/Pass.h"

using namespace qfx;

/// Clones \p Observed, converts the clone and verifies it; errors are
/// prefixed with \p Api.
static llvm::Expected<std::unique_ptr<GraphModule>>
convertClone(const GraphModule &Observed, PassContext *Ctx,
             llvm::StringRef Api) {
  std::unique_ptr<GraphModule> GM = Observed.clone();
  PassContext Local;
  PassManager PM;
  PM.addPass(std::make_unique<Convert>());
  PM.addPass(std::make_unique<DeadCodeElimination>());
  if (llvm::Error E = PM.run(*GM, Ctx ? *Ctx : Local))
    return prefixError(std::move(E), Api);
  if (llvm::Error E = verify(*GM))
    return prefixError(std::move(E),
                       (Api + " produced an invalid graph").str());
  return GM;
}

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::convert_to_reference_fx(const GraphModule &Observed, PassContext *Ctx) {
  return convertClone(Observed, Ctx, "convert_to_reference_fx");
}

// Compilation is lazy (per input shape, on first use), so a graph that
// cannot be lowered is reported by the first run, naming the node.
llvm::Expected<QuantizedModule> qfx::convert_fx(const GraphModule &Observed,
                                                const CompileOptions &Opts,
                                                PassContext *Ctx) {
  auto GM = convertClone(Observed, Ctx, "convert_fx");
  if (!GM)
    return GM.takeError();
  return QuantizedModule(std::move(*GM), Opts);
}

llvm::Expected<QuantizedModule> qfx::convert_fx(const GraphModule &Observed,
                                                PassContext *Ctx) {
  return convert_fx(Observed, CompileOptions(), Ctx);
}

llvm::Expected<QuantizedModule> qfx::convert_fx(const ObservedModule &Observed,
                                                const CompileOptions &Opts,
                                                PassContext *Ctx) {
  return convert_fx(Observed.graphModule(), Opts, Ctx);
}
