//===- QuantizeFx.h - prepare_fx / convert_fx for C++ models ----*- C++ -*-===//
//
// The graph-mode quantization API of torch.ao.quantization.quantize_fx:
// trace, fuse, assign qconfigs, insert observers; calibrate by running the
// observed module; convert to the reference quantized graph
// (convert_to_reference_fx) or to a QuantizedModule that runs it as oneDNN
// int8 code (convert_fx).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_PIPELINE_QUANTIZEFX_H
#define QFX_PIPELINE_QUANTIZEFX_H

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Pipeline/QuantizedModule.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace qfx {

namespace nn {
class Module;
}
struct InputSpec;
struct PassContext;

/// An observed (or fake-quant) model: a GraphModule whose observers update
/// when it runs. Calling it on data is calibration.
class ObservedModule {
public:
  explicit ObservedModule(std::unique_ptr<GraphModule> GM);
  ObservedModule(ObservedModule &&) = default;
  ObservedModule &operator=(ObservedModule &&) = default;
  ~ObservedModule();

  GraphModule &graphModule() { return *GM; }
  const GraphModule &graphModule() const { return *GM; }
  /// Runs the graph on one batch, updating every observer; returns the
  /// outputs (float).
  llvm::Expected<std::vector<Tensor>> operator()(llvm::ArrayRef<Tensor> In);
  /// Calibrates over batches of \p Data along its first dimension.
  llvm::Error calibrate(const Tensor &Data, int64_t BatchSize);
  /// Takes the GraphModule out (e.g. to save it).
  std::unique_ptr<GraphModule> release() { return std::move(GM); }

private:
  std::unique_ptr<GraphModule> GM;
};

/// Runs \p GM with observers and fake-quant modules live (updating their
/// buffers in place); the building block of ObservedModule.
llvm::Expected<std::vector<Tensor>> runObserved(GraphModule &GM,
                                                llvm::ArrayRef<Tensor> In);

/// prepare_fx: traces \p Model (in eval mode), fuses, assigns qconfigs from
/// \p Mapping and inserts observers. \p Ctx, if given, receives the remarks
/// of every pass (the explain report).
llvm::Expected<ObservedModule>
prepare_fx(nn::Module &Model, const QConfigMapping &Mapping,
           llvm::ArrayRef<InputSpec> ExampleInputs, PassContext *Ctx = nullptr);
/// prepare_qat_fx: the same with fake-quant modules, BatchNorm kept for
/// training (ConvBn2d).
llvm::Expected<ObservedModule>
prepare_qat_fx(nn::Module &Model, const QConfigMapping &Mapping,
               llvm::ArrayRef<InputSpec> ExampleInputs,
               PassContext *Ctx = nullptr);
/// The graph-level halves, for graphs that are already traced.
llvm::Error prepareGraph(GraphModule &GM, const QConfigMapping &Mapping,
                         bool QAT, PassContext *Ctx = nullptr);

/// convert_to_reference_fx: the reference quantized graph (docs/
/// quantization.md), runnable by the interpreter with int8 numerics.
llvm::Expected<std::unique_ptr<GraphModule>>
convert_to_reference_fx(const GraphModule &Observed,
                        PassContext *Ctx = nullptr);
/// convert_fx: convert_to_reference_fx, wrapped in a QuantizedModule that
/// runs the reference graph as compiled oneDNN code, for any batch size and
/// from several threads at once. Programs are compiled on first use of an
/// input shape, with \p Opts (threads, fusion, profiling; the shapes come
/// from the inputs). The reference graph stays available
/// (QuantizedModule::graphModule(), runReference()).
llvm::Expected<QuantizedModule> convert_fx(const GraphModule &Observed,
                                           const CompileOptions &Opts = {},
                                           PassContext *Ctx = nullptr);
/// convert_fx with default compile options.
llvm::Expected<QuantizedModule> convert_fx(const GraphModule &Observed,
                                           PassContext *Ctx);
/// convert_fx of an ObservedModule's graph (PyTorch's
/// `convert_fx(prepared_model)`); \p Observed stays usable.
llvm::Expected<QuantizedModule> convert_fx(const ObservedModule &Observed,
                                           const CompileOptions &Opts = {},
                                           PassContext *Ctx = nullptr);

} // namespace qfx

#endif // QFX_PIPELINE_QUANTIZEFX_H
