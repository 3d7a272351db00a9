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
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace qfx {

class GraphModule;
class QConfigMapping;

/// One entry of the explain report: what a pass decided about a node and
/// why ("fused conv1 + relu into ConvReLU2d", "kept float: qconfig none by
/// module_name 'fc'").
struct Remark {
  std::string Pass;
  std::string Node;
  std::string Message;
};

/// What a pipeline shares: options from the user and the explain log.
struct PassContext {
  /// The qconfig mapping (qopt --qconfig); passes that need one fail
  /// without it.
  std::shared_ptr<const QConfigMapping> QConfigs;
  /// Quantization-aware training: fusion keeps BatchNorm (ConvBn2d) instead
  /// of folding it, prepare inserts fake-quant instead of observers.
  bool QAT = false;
  /// Remarks in the order passes made them.
  std::vector<Remark> Remarks;

  void remark(llvm::StringRef Pass, llvm::StringRef Node,
              const llvm::Twine &Message) {
    Remarks.push_back({Pass.str(), Node.str(), Message.str()});
  }
};

/// A transformation of a GraphModule.
class Pass {
public:
  virtual ~Pass();
  /// The registered (command-line) name.
  virtual llvm::StringRef name() const = 0;
  /// Runs on \p GM; errors are ones users can cause (bad input graphs).
  virtual llvm::Error run(GraphModule &GM, PassContext &Ctx) = 0;
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
  llvm::Error run(GraphModule &GM, PassContext &Ctx);
  /// Runs with a fresh context.
  llvm::Error run(GraphModule &GM);

private:
  Options Opts;
  std::vector<std::unique_ptr<Pass>> Passes;
};

} // namespace qfx

#endif // QFX_TRANSFORMS_PASS_H
