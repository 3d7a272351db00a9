//===- QuantizedModule.cpp - Compiled programs cached per input shape -----===//
//
// The pools: one per input shape, in a map that only grows (so a pool's
// address is stable and leases can point at it). The mutex guards the map,
// every pool's idle list and the counters; compilation and runs happen
// outside it.
//
//===----------------------------------------------------------------------===//

#include "qfx/Pipeline/QuantizedModule.h"

#include "qfx/IR/Graph.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"

#include <map>
#include <mutex>

using namespace qfx;

/// The idle programs of one input shape.
struct QuantizedModule::Pool {
  std::vector<std::unique_ptr<CompiledModule>> Idle;
  /// Programs compiled for the shape (idle or checked out).
  size_t Compiled = 0;
};

struct QuantizedModule::Impl {
  std::unique_ptr<GraphModule> GM;
  CompileOptions Opts;
  std::mutex M;
  std::map<std::vector<Shape>, Pool> Pools;
  size_t NumPrograms = 0;
  size_t NumShapes = 0;
};

//===----------------------------------------------------------------------===//
// Lease
//===----------------------------------------------------------------------===//

QuantizedModule::Lease::Lease(std::shared_ptr<Impl> Owner, Pool *P,
                              std::unique_ptr<CompiledModule> M)
    : Owner(std::move(Owner)), P(P), M(std::move(M)) {}

QuantizedModule::Lease::Lease(Lease &&Other) noexcept
    : Owner(std::move(Other.Owner)), P(Other.P), M(std::move(Other.M)) {}

QuantizedModule::Lease &
QuantizedModule::Lease::operator=(Lease &&Other) noexcept {
  if (this != &Other) {
    giveBack();
    Owner = std::move(Other.Owner);
    P = Other.P;
    M = std::move(Other.M);
  }
  return *this;
}

QuantizedModule::Lease::~Lease() { giveBack(); }

void QuantizedModule::Lease::giveBack() {
  if (!M)
    return;
  assert(Owner && P && "a lease with a program has a pool");
  std::lock_guard<std::mutex> Lock(Owner->M);
  P->Idle.push_back(std::move(M));
}

//===----------------------------------------------------------------------===//
// QuantizedModule
//===----------------------------------------------------------------------===//

QuantizedModule::QuantizedModule(std::unique_ptr<GraphModule> Reference,
                                 CompileOptions Opts)
    : I(std::make_shared<Impl>()) {
  assert(Reference && "a QuantizedModule needs a graph");
  I->GM = std::move(Reference);
  Opts.BatchSize = 0;
  Opts.InputShapes.clear();
  I->Opts = std::move(Opts);
}

QuantizedModule::QuantizedModule(QuantizedModule &&) noexcept = default;
QuantizedModule &
QuantizedModule::operator=(QuantizedModule &&) noexcept = default;
QuantizedModule::~QuantizedModule() = default;

const GraphModule &QuantizedModule::graphModule() const { return *I->GM; }

const CompileOptions &QuantizedModule::options() const { return I->Opts; }

/// Checks \p Shapes against \p G's placeholders: one each, of the
/// placeholder's rank and dimensions but for a positive batch (first)
/// dimension. Errors name the placeholder.
static llvm::Error checkShapes(const Graph &G, llvm::ArrayRef<Shape> Shapes) {
  std::vector<Node *> Ph = G.placeholders();
  if (Ph.size() != Shapes.size())
    return makeError("expected " + llvm::Twine(Ph.size()) +
                     " input shapes, got " + llvm::Twine(Shapes.size()));
  for (size_t I = 0; I < Ph.size(); ++I) {
    const Shape &S = Shapes[I];
    if (!Ph[I]->type())
      return makeError("input '" + Ph[I]->name() +
                       "': the placeholder has no type");
    const Shape &Want = Ph[I]->type()->Dims;
    bool Ok = S.size() == Want.size();
    for (size_t D = 1; Ok && D < S.size(); ++D)
      Ok = S[D] == Want[D];
    if (!Ok)
      return makeError("input '" + Ph[I]->name() + "': expected shape " +
                       formatShape(Want) + " (any batch size), got " +
                       formatShape(S));
    if (!S.empty() && S[0] <= 0)
      return makeError("input '" + Ph[I]->name() +
                       "': the batch size must be positive, got " +
                       formatShape(S));
  }
  return llvm::Error::success();
}

/// "[1,3,8,8], [1,4]": the shapes of a cache key, for messages.
static std::string formatShapes(llvm::ArrayRef<Shape> Shapes) {
  std::string S;
  for (const Shape &Sh : Shapes)
    S += (S.empty() ? "" : ", ") + formatShape(Sh);
  return S;
}

llvm::Expected<QuantizedModule::Lease>
QuantizedModule::acquire(llvm::ArrayRef<Shape> InputShapes) const {
  if (llvm::Error E = checkShapes(I->GM->graph(), InputShapes))
    return E;
  std::vector<Shape> Key(InputShapes.begin(), InputShapes.end());
  Pool *P = nullptr;
  {
    std::lock_guard<std::mutex> Lock(I->M);
    P = &I->Pools[Key];
    if (!P->Idle.empty()) {
      std::unique_ptr<CompiledModule> M = std::move(P->Idle.back());
      P->Idle.pop_back();
      return Lease(I, P, std::move(M));
    }
  }
  // Every program of this shape is busy (or there is none yet): compile
  // another without holding the lock.
  CompileOptions Opts = I->Opts;
  Opts.InputShapes = Key;
  auto M = compile(*I->GM, Opts);
  if (!M)
    return prefixError(M.takeError(),
                       "compiling for input shapes " + formatShapes(Key));
  std::lock_guard<std::mutex> Lock(I->M);
  I->NumShapes += P->Compiled++ == 0;
  ++I->NumPrograms;
  return Lease(I, P, std::move(*M));
}

llvm::Error
QuantizedModule::precompile(llvm::ArrayRef<Shape> InputShapes) const {
  auto L = acquire(InputShapes);
  return L ? llvm::Error::success() : L.takeError();
}

llvm::Error QuantizedModule::printCompiled(llvm::ArrayRef<Shape> InputShapes,
                                           llvm::raw_ostream &OS) const {
  auto L = acquire(InputShapes);
  if (!L)
    return L.takeError();
  (*L)->print(OS);
  return llvm::Error::success();
}

llvm::Expected<std::vector<Tensor>>
QuantizedModule::run(llvm::ArrayRef<Tensor> Inputs) const {
  if (llvm::Error E = checkGraphInputs(I->GM->graph(), Inputs))
    return E;
  std::vector<Shape> Shapes;
  for (const Tensor &T : Inputs)
    Shapes.emplace_back(T.shape().begin(), T.shape().end());
  auto L = acquire(Shapes);
  if (!L)
    return L.takeError();
  return (*L)->run(Inputs);
}

llvm::Expected<std::vector<Tensor>>
QuantizedModule::runReference(llvm::ArrayRef<Tensor> Inputs) const {
  return Interpreter(*I->GM).run(Inputs);
}

size_t QuantizedModule::numCompiledPrograms() const {
  std::lock_guard<std::mutex> Lock(I->M);
  return I->NumPrograms;
}

size_t QuantizedModule::numCompiledShapes() const {
  std::lock_guard<std::mutex> Lock(I->M);
  return I->NumShapes;
}

void QuantizedModule::print(llvm::raw_ostream &OS) const {
  printGraphModule(*I->GM, OS);
}

llvm::Error QuantizedModule::save(llvm::StringRef Path,
                                  GraphFileFormat Format) const {
  return saveGraphModule(*I->GM, Path, Format);
}
