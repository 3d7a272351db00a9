//===- ConvertFx.cpp - convert_to_reference_fx / convert_fx ---------------===//
//
// The convert half of the quantize_fx API: a copy of the observed module
// goes through convert and dead-code elimination and is verified, so the
// calibrated original stays usable (for more calibration, or another
// convert).
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

// Lowering to oneDNN int8 primitives is a later pass; until it exists the
// reference graph is what runs (docs/quantization.md, "Pipeline").
llvm::Expected<std::unique_ptr<GraphModule>>
qfx::convert_fx(const GraphModule &Observed, PassContext *Ctx) {
  return convertClone(Observed, Ctx, "convert_fx");
}
