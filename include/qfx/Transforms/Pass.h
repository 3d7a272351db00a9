//===- Pass.h - Passes, the pass registry and the pass manager --*- C++ -*-===//
//
// A pass transforms a GraphModule in place. Passes are registered once, in
// Passes.def; pipelines are comma-separated lists of registered names, as in
// `qopt --passes=dead-code-elimination,topological-sort`.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_TRANSFORMS_PASS_H
#define QFX_TRANSFORMS_PASS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace qfx {

class GraphModule;

/// A transformation of a GraphModule.
class Pass {
public:
  virtual ~Pass();
  /// The registered (command-line) name.
  virtual llvm::StringRef name() const = 0;
  /// Runs on \p GM; errors are ones users can cause (bad input graphs).
  virtual llvm::Error run(GraphModule &GM) = 0;
};

/// One registry entry.
struct PassInfo {
  llvm::StringRef Name;
  llvm::StringRef ClassName;
  llvm::StringRef Summary;
  std::unique_ptr<Pass> (*Create)();
};

/// Every registered pass, in Passes.def order.
llvm::ArrayRef<PassInfo> registeredPasses();
/// The pass called \p Name, or nullptr.
const PassInfo *lookupPass(llvm::StringRef Name);

/// Runs a sequence of passes.
class PassManager {
public:
  struct Options {
    /// Run the verifier after every pass and fail on the first problem.
    bool VerifyEach = false;
    /// If set, print the module after every pass to this stream.
    llvm::raw_ostream *PrintAfterAll = nullptr;
  };

  PassManager() = default;
  explicit PassManager(Options Opts) : Opts(Opts) {}

  void addPass(std::unique_ptr<Pass> P) { Passes.push_back(std::move(P)); }
  /// Adds the passes of a comma-separated pipeline ("a,b"). Unknown names
  /// are an error that lists the known ones; an empty string adds nothing.
  llvm::Error addPipeline(llvm::StringRef Pipeline);
  /// Names of the passes added so far.
  std::vector<std::string> passNames() const;

  /// Runs every pass in order. An error names the pass that failed.
  llvm::Error run(GraphModule &GM);

private:
  Options Opts;
  std::vector<std::unique_ptr<Pass>> Passes;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_PASS_H
