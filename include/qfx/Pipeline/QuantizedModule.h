//===- QuantizedModule.h - convert_fx's model, ready to run -----*- C++ -*-===//
//
// A QuantizedModule owns the reference quantized graph (docs/quantization.md)
// and runs it as oneDNN int8 code for any batch size: one compiled program
// per input shape, compiled on the first call with that shape, and a pool of
// programs per shape so that several threads can call the same module at
// once.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_PIPELINE_QUANTIZEDMODULE_H
#define QFX_PIPELINE_QUANTIZEDMODULE_H

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <memory>
#include <vector>

namespace qfx {

class GraphModule;

/// The quantized model convert_fx returns, ready to call.
///
/// Calling it (operator() or run()) executes compiled oneDNN code. Inputs
/// must match the placeholders in dtype, rank and every dimension but the
/// first; the batch size is free. Programs are cached per input shape: the
/// first call with a shape compiles (with options()), later calls reuse.
///
/// Thread safety: run() may be called from several threads at once, with
/// the same or different shapes. A compiled program has one activation
/// arena, so each call checks a program out of its shape's pool under a
/// mutex and returns it afterwards; when every program of the shape is in
/// use, the call compiles another one (outside the mutex). A pool thus
/// grows to the largest number of concurrent calls with that shape, and
/// every program holds its own copy of the reordered weights.
class QuantizedModule {
  struct Impl;
  struct Pool;

public:
  /// One compiled program, checked out of its shape's pool for the
  /// lease's lifetime and returned when it is destroyed (it stays valid
  /// even if the module is destroyed first).
  class Lease {
  public:
    Lease(Lease &&) noexcept;
    Lease &operator=(Lease &&) noexcept;
    ~Lease();

    CompiledModule &operator*() const { return *M; }
    CompiledModule *operator->() const { return M.get(); }

  private:
    friend class QuantizedModule;
    Lease(std::shared_ptr<Impl> Owner, Pool *P,
          std::unique_ptr<CompiledModule> M);
    void giveBack();

    std::shared_ptr<Impl> Owner;
    Pool *P = nullptr;
    std::unique_ptr<CompiledModule> M;
  };

  /// Takes ownership of the reference quantized graph \p Reference (which
  /// must have typed placeholders). \p Opts are used for every program;
  /// its BatchSize and InputShapes are ignored (each program gets the
  /// shapes of its inputs).
  explicit QuantizedModule(std::unique_ptr<GraphModule> Reference,
                           CompileOptions Opts = {});
  QuantizedModule(QuantizedModule &&) noexcept;
  QuantizedModule &operator=(QuantizedModule &&) noexcept;
  ~QuantizedModule();

  /// The reference quantized graph (to inspect, clone or save).
  const GraphModule &graphModule() const;
  /// The options every program is compiled with.
  const CompileOptions &options() const;

  /// Runs compiled oneDNN code on one tensor per placeholder (any batch
  /// size); returns the graph's outputs. Errors name the placeholder of a
  /// wrong input. Safe to call from several threads at once.
  llvm::Expected<std::vector<Tensor>> run(llvm::ArrayRef<Tensor> Inputs) const;
  /// The same as run().
  llvm::Expected<std::vector<Tensor>>
  operator()(llvm::ArrayRef<Tensor> Inputs) const {
    return run(Inputs);
  }
  /// Runs the reference graph in the interpreter (the int8 numerics that
  /// compiled code matches within docs/numerics.md's tolerances).
  llvm::Expected<std::vector<Tensor>>
  runReference(llvm::ArrayRef<Tensor> Inputs) const;

  /// Checks out a program for inputs of shapes \p InputShapes (one per
  /// placeholder), compiling one if none is idle: for reports, profiles
  /// and timing compile separately from runs.
  llvm::Expected<Lease> acquire(llvm::ArrayRef<Shape> InputShapes) const;
  /// Compiles a program for \p InputShapes unless one is cached, so that
  /// the first call with them does not pay for compilation.
  llvm::Error precompile(llvm::ArrayRef<Shape> InputShapes) const;
  /// The compile report for \p InputShapes (compiling if needed): one line
  /// per step, then the totals (CompiledModule::print()).
  llvm::Error printCompiled(llvm::ArrayRef<Shape> InputShapes,
                            llvm::raw_ostream &OS) const;

  /// Programs compiled so far, over all shapes (a shape's pool may hold
  /// several after concurrent calls).
  size_t numCompiledPrograms() const;
  /// Distinct input shapes with at least one compiled program.
  size_t numCompiledShapes() const;

  /// Prints the reference graph (the IR text format).
  void print(llvm::raw_ostream &OS) const;
  /// Saves the reference graph (Serialization.h); loading it and wrapping
  /// it in a QuantizedModule gives the same model.
  llvm::Error save(llvm::StringRef Path,
                   GraphFileFormat Format = GraphFileFormat::Json) const;

private:
  std::shared_ptr<Impl> I;
};

} // namespace qfx

#endif // QFX_PIPELINE_QUANTIZEDMODULE_H
