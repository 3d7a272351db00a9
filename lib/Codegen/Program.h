//===- Program.h - The compiled form: buffers, steps, arena -----*- C++ -*-===//
//
// What compile() produces and CompiledModule runs: buffers (arena slices,
// the caller's inputs and outputs, constants), steps reading and writing
// them, and the memory plan that places arena buffers by liveness.
// Private to the Codegen layer; dnnl.hpp stays out of public headers.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_CODEGEN_PROGRAM_H
#define QFX_LIB_CODEGEN_PROGRAM_H

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/Codegen/ThreadGovernor.h"
#include "qfx/Support/Tensor.h"

#include "dnnl.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace qfx {

class GraphModule;

namespace codegen {

/// Where a buffer's bytes live.
enum class BufferKind : uint8_t {
  /// A slice of the activation arena, placed by the memory plan.
  Arena,
  /// The caller's input tensor #Index (read-only).
  Input,
  /// The output tensor #Index, allocated by every run.
  Output,
  /// Owned storage made at compile time (weights, biases, runtime scales).
  Constant
};

struct Buffer {
  BufferKind Kind = BufferKind::Arena;
  size_t Bytes = 0;
  /// Input / output index.
  int Index = -1;
  /// Constant storage (a u8 tensor used as aligned bytes).
  Tensor Storage;
  /// Arena placement.
  size_t Offset = 0;
  /// Liveness in step indices (arena buffers), filled by planMemory.
  int FirstStep = -1, LastStep = -1;
  std::string Name;
};

/// One memory argument of a primitive: its descriptor over a buffer.
struct MemArg {
  int Arg;
  int Buf;
  size_t Offset;
  dnnl::memory::desc Md;
};

class Program;

/// One step of the program.
class Step {
public:
  virtual ~Step();
  /// Creates whatever depends on buffer addresses (after planning).
  virtual void bind(Program &P) {}
  /// Errors are ones a run can cause (a fallback op rejecting its input).
  virtual llvm::Error run(Program &P) = 0;
  virtual bool isPrimitive() const { return false; }
  /// Makes later runs use \p Threads, one of Candidates.
  virtual void select(int Threads) { Selected = Threads; }

  StepInfo Info;
  /// The OpenMP thread counts this step can run with, ascending; the last
  /// is the module's budget (Threads.cpp).
  std::vector<int> Candidates;
  /// The count chosen at compile time (one of Candidates).
  int Threads = 1;
  /// The count of the current selection.
  int Selected = 0;
  /// Buffers read and written, for liveness.
  std::vector<int> Reads, Writes;
};

/// A primitive created while OpenMP's thread count was Threads: oneDNN's
/// jit primitives fix their thread count (and per-thread scratchpad) then.
struct PrimitiveVariant {
  int Threads = 0;
  dnnl::primitive Prim;
  dnnl::memory::desc Scratch;
  std::string Impl;
  dnnl::memory ScratchMem;
};

/// A oneDNN primitive over fixed memory arguments, in one variant per
/// candidate thread count (the same memory descriptors in every variant).
class PrimitiveStep : public Step {
public:
  void bind(Program &P) override;
  llvm::Error run(Program &P) override;
  bool isPrimitive() const override { return true; }
  void select(int Threads) override;

  /// Ascending by Threads, parallel to Candidates.
  std::vector<PrimitiveVariant> Variants;
  std::vector<MemArg> Args;

private:
  std::unordered_map<int, dnnl::memory> Bound;
  size_t Active = 0;
};

/// Work done on the host (integer element-wise kernels, the op-table
/// fallback, dynamic quantization).
class HostStep : public Step {
public:
  llvm::Error run(Program &P) override { return Fn(P); }
  std::function<llvm::Error(Program &)> Fn;
};

class Measurement;

/// The compiled module's state (CompiledModule's pimpl).
class Program {
public:
  Program();
  ~Program();

  dnnl::engine Engine;
  dnnl::stream Stream;
  std::vector<Buffer> Buffers;
  std::vector<std::unique_ptr<Step>> Steps;

  /// Per placeholder: its buffer, dtype and shape.
  struct IOSpec {
    int Buf;
    DType Dt;
    Shape Dims;
    QuantParams Q;
    std::string Name;
  };
  std::vector<IOSpec> Inputs, Outputs;

  /// Arena and scratchpad storage (u8 tensors used as aligned bytes).
  Tensor Arena, Scratchpad;
  size_t ArenaBytes = 0, ScratchBytes = 0, TotalActivationBytes = 0;
  /// CompileOptions::NumThreads (0: follow the process's count at run).
  int NumThreads = 0;
  /// The thread budget at compile time: the largest count of any step.
  int Budget = 1;
  /// Falls back to one thread while multi-thread runs are slow (enabled
  /// when measuring chose more than one thread for some step).
  ThreadGovernor Governor;
  /// Kept when fallback steps run module kinds of the source graph.
  std::shared_ptr<const GraphModule> Source;

  /// The layout plan of fp32 conv activations (Layouts.cpp).
  LayoutReport Layouts;

  bool Profiling = false;
  std::vector<std::vector<double>> Samples;
  /// Nodes on reference kernels, in execution order.
  std::vector<FallbackInfo> Fallbacks;

  /// New buffers.
  int addBuffer(BufferKind K, size_t Bytes, std::string Name, int Index = -1);
  int addConstant(size_t Bytes, std::string Name);
  /// The current address of a buffer (inputs / outputs: of this run).
  void *address(int Buf, size_t Offset = 0);

  /// Registers a memory bound to an input or output buffer so that every
  /// run points it at that run's tensor.
  void trackIO(dnnl::memory M, int Buf, size_t Offset);

  /// Places arena buffers (liveness from the steps' Reads / Writes),
  /// allocates arena and scratchpad, binds every step.
  void finalize();

  llvm::Expected<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> Inputs);

  /// Chooses every step's thread count (Threads.cpp): measured when
  /// \p Measure, else the budget; then \p Forced by step index.
  void chooseThreads(bool Measure, llvm::ArrayRef<int> Forced);

  /// Runs every step with thread count \p Counts[I], appending each step's
  /// time in ms to \p Times[I] when given; with \p StopAfterMs, skips the
  /// remaining steps once the run has taken that long (measuring only).
  llvm::Error runSteps(llvm::ArrayRef<int> Counts,
                       std::vector<std::vector<double>> *Times,
                       double StopAfterMs = 0.0);

private:
  /// Checks \p In and points the IO buffers at it and at fresh outputs.
  llvm::Expected<std::vector<Tensor>> bindIO(llvm::ArrayRef<Tensor> In);
  /// The counts of a run: the chosen ones, capped by \p Cap.
  std::vector<int> runCounts(int Cap) const;
  /// Times configurations of counts and chooses one (Threads.cpp).
  void measureThreads();
  /// Rounds of \p M's configurations with step times; per step, the count
  /// clearly fastest (none when a step failed).
  std::optional<std::vector<int>> perStepChoice(class Measurement &M, int Reps);
  /// Gives step I count \p Counts[I]; watches runs against \p SingleMs
  /// when some step has more than one thread.
  void choose(llvm::ArrayRef<int> Counts, double SingleMs);

  std::vector<void *> IOAddress;
  struct Tracked {
    dnnl::memory M;
    int Buf;
    size_t Offset;
  };
  std::vector<Tracked> IOMemories;
};

/// Sets the OpenMP thread count for its lifetime (0: leaves it alone) and
/// restores the previous one: primitives are created, and run, with the
/// module's own count without changing the process's.
class ThreadScope {
public:
  explicit ThreadScope(int Threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope &) = delete;
  ThreadScope &operator=(const ThreadScope &) = delete;

private:
  int Previous = 0;
};

/// The thread counts a step may get under budget \p Budget: 1, 2, 4, ...
/// below it, and the budget itself.
std::vector<int> threadLadder(int Budget);

/// The largest of \p Candidates (ascending) not above \p N, or the
/// smallest.
int pickCandidate(llvm::ArrayRef<int> Candidates, int N);

/// Creates \p PD's primitive again while OpenMP's count is \p Threads,
/// with the same memory descriptor for every argument in \p Args; none
/// when oneDNN offers no such implementation.
std::optional<PrimitiveVariant>
recreatePrimitive(const dnnl::primitive_desc_base &PD, int Threads,
                  llvm::ArrayRef<MemArg> Args, const dnnl::engine &Engine);

/// \p PD, or where it is an AMX kernel, the first of its operation's
/// implementations for another instruction set: under ImplChoice::Measure
/// if that ran clearly faster on scratch memory under the current thread
/// count, under ImplChoice::Alternative always (Implementations.cpp).
dnnl::primitive_desc_base
chooseImplementation(const dnnl::primitive_desc_base &PD, ImplChoice Choice,
                     const dnnl::engine &E);

/// Assigns arena offsets so that buffers live at the same time never
/// overlap; returns the arena size. Deterministic: largest buffers first,
/// each at the lowest offset that fits.
size_t planMemory(std::vector<Buffer> &Buffers);

/// The engine every compiled module uses.
dnnl::engine &cpuEngine();

} // namespace codegen
} // namespace qfx

#endif // QFX_LIB_CODEGEN_PROGRAM_H
