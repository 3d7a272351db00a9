//===- Lowering.h - Compile a graph to oneDNN primitives --------*- C++ -*-===//
//
// Lowers a reference quantized graph (docs/quantization.md) or a float graph
// to a CompiledModule: conv / linear with their activations, residual adds
// and dequantizes fused as oneDNN post-ops, NHWC activations (fp32 conv
// chains blocked where measured faster), weights reordered once into the
// layouts the primitives choose, one activation arena planned by liveness.
// Ops without a lowering run through the op table on plain tensors.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_CODEGEN_LOWERING_H
#define QFX_CODEGEN_LOWERING_H

#include "qfx/Codegen/CompiledModule.h"

#include "qfx/Support/Tensor.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace qfx {

class GraphModule;

/// How compile() chooses each step's OpenMP thread count (docs/
/// performance.md, "Threads").
enum class ThreadChoice : uint8_t {
  /// Time every step on each candidate count (1, 2, 4, ... up to the
  /// budget) at compile time, on zero inputs, and keep the fewest threads
  /// unless more are clearly faster.
  Measure,
  /// Every step on the whole budget (no measuring; deterministic), or on
  /// the largest count below it that oneDNN has a primitive for over the
  /// step's weight layouts (StepInfo::Threads says).
  Budget
};

/// Which of oneDNN's implementations a convolution or linear gets (docs/
/// performance.md, "Kernels by measurement"). oneDNN ranks them by
/// instruction set; its AMX int8 kernels come first and can be slower on
/// small convolutions and matmuls.
enum class ImplChoice : uint8_t {
  /// Where oneDNN's first choice is an AMX kernel, time it against the
  /// first kernel of another instruction set at compile time, on zero
  /// inputs, and keep that one if clearly faster.
  Measure,
  /// oneDNN's first choice everywhere (no measuring).
  First,
  /// The other instruction set's kernel wherever Measure would time one
  /// (no measuring; for tests and comparisons).
  Alternative
};

/// Which layout compile() keeps fp32 conv activations in (docs/
/// performance.md, "Layouts").
enum class LayoutChoice : uint8_t {
  /// Lower the module both ways at compile time, time each on zero inputs
  /// (interleaved, medians) and keep the blocked plan only when it is
  /// clearly faster; modules without fp32 convs, or running in under a
  /// millisecond, keep channels-last unmeasured.
  Measure,
  /// Every activation channels-last (nhwc) or plain (deterministic).
  ChannelsLast,
  /// fp32 conv chains in oneDNN's blocked layout (nChw16c): convs, batch
  /// norms, adds and pools read and write it; a reorder to channels-last
  /// where anything else reads (deterministic).
  Blocked
};

/// Options of compile().
struct CompileOptions {
  /// The module's thread budget: OpenMP threads set before any primitive
  /// is created and around every run, then restored (0: the process's
  /// count at compile time; a run then caps every step at the process's
  /// count at that run).
  int NumThreads = 0;
  /// How each step's count within the budget is chosen.
  ThreadChoice Threads = ThreadChoice::Measure;
  /// Forced counts by step index (CompiledModule::steps()), overriding the
  /// choice for the steps they cover; each must be 1..the budget. A step
  /// runs on the largest count it supports not above its entry
  /// (StepInfo::Threads says which).
  std::vector<int> StepThreads;
  /// The layout of fp32 conv activations.
  LayoutChoice Layouts = LayoutChoice::Measure;
  /// Replaces the batch (first) dimension of every placeholder (0 keeps the
  /// placeholders' types); shapes downstream are inferred again.
  int64_t BatchSize = 0;
  /// The full shape of every placeholder, in graph order (empty keeps the
  /// placeholders' types, or BatchSize). Each must have its placeholder's
  /// rank; shapes downstream are inferred again. Takes precedence over
  /// BatchSize.
  std::vector<Shape> InputShapes;
  /// Fuse conv / linear / relu / clip / sum into oneDNN post-ops. Off, every
  /// node is its own step (for comparisons).
  bool FusePostOps = true;
  /// Fold an eval-mode BatchNorm into the float conv / linear before it (as
  /// PyTorch's fuse_fx does), so that the pair is one step and a following
  /// relu or add fuses too; the results differ from the unfolded graph's by
  /// float rounding. Off, such batch norms are steps of their own.
  bool FoldBatchNorm = true;
  /// How each convolution's and linear's oneDNN implementation is chosen.
  ImplChoice Implementations = ImplChoice::Measure;
  /// Let a conv / linear whose only user is a dequantize write f32 itself.
  bool FuseDequantize = true;
  /// Time every step of every run (see CompiledModule::profile()).
  bool Profile = false;
  /// Strict lowering: fail, naming every such node, instead of running nodes
  /// without a oneDNN lowering on reference kernels (see
  /// CompiledModule::fallbacks()).
  bool RejectFallbacks = false;
};

/// Compiles \p GM for its placeholders' shapes. Errors name the node that
/// cannot be compiled (missing types or data, unsupported parameters,
/// observers left by prepare, reference kernels under RejectFallbacks).
/// \p GM may be destroyed afterwards.
llvm::Expected<std::unique_ptr<CompiledModule>>
compile(const GraphModule &GM, const CompileOptions &Opts = {});

} // namespace qfx

#endif // QFX_CODEGEN_LOWERING_H
