//===- CompiledModule.h - A graph lowered to oneDNN primitives --*- C++ -*-===//
//
// The result of compile() (Lowering.h): a fixed sequence of steps, most of
// them oneDNN primitives created once, over one activation arena planned by
// liveness. Running it only binds the caller's tensors and executes.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_CODEGEN_COMPILEDMODULE_H
#define QFX_CODEGEN_COMPILEDMODULE_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace qfx {
namespace codegen {
class Program;
} // namespace codegen

/// How a fused residual add reads its identity operand.
enum class SumMode : uint8_t {
  /// No sum post-op.
  None,
  /// The primitive accumulates into the identity's own buffer: it was dead
  /// after the add.
  InPlace,
  /// The identity is still needed later, so it is copied first.
  Copied
};

/// One lowered step, for tests and reports.
struct StepInfo {
  /// The graph nodes the step computes, joined by '+' ("conv1+relu").
  std::string Name;
  /// "conv", "matmul", "pool", "reorder", "binary", "concat", "eltwise",
  /// "add_int8", "quantize_dynamic", "copy", "fallback" ...
  std::string Kind;
  /// oneDNN's implementation name for primitives ("jit:avx512_core..."),
  /// empty for host steps.
  std::string Impl;
  /// Post-ops and other decisions ("sum(in-place) relu", "f32 dst").
  std::string Detail;
  bool IsPrimitive = false;
  SumMode Sum = SumMode::None;
  /// OpenMP threads the step runs with (chosen at compile time).
  int Threads = 1;
};

/// The layout compile() chose for fp32 conv activations
/// (CompileOptions::Layouts).
struct LayoutReport {
  /// "channels-last" or "blocked".
  std::string Plan = "channels-last";
  /// Whether both plans were timed (Measure, on a module with fp32 convs).
  bool Measured = false;
  /// The median ms of one run under each plan, when measured.
  double ChannelsLastMs = 0.0, BlockedMs = 0.0;
};

/// Median time of one step over the profiled runs.
struct StepTime {
  std::string Name;
  std::string Kind;
  bool IsPrimitive = false;
  double MedianMs = 0.0;
  size_t Samples = 0;
  /// The step's OpenMP thread count (StepInfo::Threads; runs the
  /// ThreadGovernor moved to one thread are counted by
  /// CompiledModule::singleThreadRuns()).
  int Threads = 1;
};

/// A node compiled to a reference kernel: the op table's host
/// implementation on plain-layout tensors instead of a oneDNN primitive.
/// Such steps are often an order of magnitude slower than the primitives
/// around them (and cost reorders), so compile() reports every one.
struct FallbackInfo {
  /// The graph node's name ("hardswish").
  std::string NodeName;
  /// Its op: the module kind for call_module ("Hardswish"), else the
  /// function or method ("quantized_hardswish").
  std::string Op;
  /// Why there is no primitive and what runs instead.
  std::string Reason;
};

/// "node 'hardswish' (quantized_hardswish): <reason>", one line, for
/// warnings and errors.
std::string formatFallback(const FallbackInfo &F);

/// A compiled graph. run() is not reentrant: concurrent runs of one module
/// would share its activation arena.
class CompiledModule {
public:
  explicit CompiledModule(std::unique_ptr<codegen::Program> P);
  ~CompiledModule();
  CompiledModule(const CompiledModule &) = delete;
  CompiledModule &operator=(const CompiledModule &) = delete;

  /// Runs on one tensor per placeholder, each exactly of the compiled dtype
  /// and shape. Returns the graph's outputs (plain row-major layout, like
  /// the interpreter's).
  llvm::Expected<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> Inputs);

  /// Per-step timing (off unless CompileOptions::Profile or set here).
  void setProfiling(bool Enable);
  /// Median time per step over the runs made while profiling was on.
  std::vector<StepTime> profile() const;
  /// Sum of the median times of the oneDNN primitive steps, in ms.
  double primitiveTimeSum() const;
  void resetProfile();

  /// Bytes of the activation arena (the planned peak).
  size_t peakActivationBytes() const;
  /// Bytes all activations would need without buffer reuse.
  size_t totalActivationBytes() const;
  /// Bytes of the shared user-mode scratchpad.
  size_t scratchpadBytes() const;
  /// Bytes of weights and other constants in primitive layouts.
  size_t constantBytes() const;
  /// Number of oneDNN primitives executed per run.
  size_t numPrimitives() const;
  /// The steps in execution order.
  std::vector<StepInfo> steps() const;
  /// The nodes that run on reference (op-table) kernels, in execution
  /// order; empty when every node lowered to oneDNN or a dedicated kernel.
  std::vector<FallbackInfo> fallbacks() const;
  /// Runs made with every step on one thread because runs on the chosen
  /// counts were slow (a busy machine; ThreadGovernor.h).
  long singleThreadRuns() const;
  /// The layout plan of fp32 conv activations and, when measured, why.
  LayoutReport layouts() const;
  /// Shapes of the inputs run() expects.
  std::vector<Shape> inputShapes() const;

  /// A readable listing: one line per step, the totals, then the nodes on
  /// reference kernels.
  void print(llvm::raw_ostream &OS) const;
  std::string summary() const;

private:
  std::unique_ptr<codegen::Program> P;
};

} // namespace qfx

#endif // QFX_CODEGEN_COMPILEDMODULE_H
