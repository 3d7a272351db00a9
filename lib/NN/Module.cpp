//===- Module.cpp - The nn::Module base class -----------------------------===//
//
// Registration, traversal and state_dict loading follow torch.nn.Module's
// conventions (names, orders, error messages) so that checkpoints saved by
// PyTorch load unchanged and errors read the same.
//
//===----------------------------------------------------------------------===//

#include "qfx/NN/Module.h"

#include "qfx/NN/Tracer.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Safetensors.h"

#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/Twine.h"

#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <set>

using namespace qfx;
using namespace qfx::nn;

Module::Module(std::string Kind) : Kind(std::move(Kind)) {}

Module::~Module() = default;

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

/// Whether \p Name is free among \p M's tensors and children. Reusing a name
/// would shadow a state_dict entry, which is a bug in the model's code.
static bool isNewName(const Module &M, llvm::StringRef Name) {
  return !M.tensor(Name) && !M.child(Name);
}

/// Registers \p T unless it has no data: PyTorch registers None for absent
/// tensors (Conv2d's bias=False), which never appears in a state_dict.
static Tensor registerTensor(Module &M, std::vector<NamedTensor> &Tensors,
                             std::string Name, Tensor T, bool IsBuffer) {
  assert(!Name.empty() && Name.find('.') == std::string::npos &&
         "tensor names must be non-empty and contain no '.'");
  assert(isNewName(M, Name) && "name already registered on this module");
  if (!T.hasData())
    return T;
  Tensors.push_back({std::move(Name), IsBuffer, T});
  return T;
}

Tensor Module::register_parameter(std::string Name, Tensor T) {
  return registerTensor(*this, Tensors, std::move(Name), std::move(T),
                        /*IsBuffer=*/false);
}

Tensor Module::register_buffer(std::string Name, Tensor T) {
  return registerTensor(*this, Tensors, std::move(Name), std::move(T),
                        /*IsBuffer=*/true);
}

void Module::registerChild(std::string Name, std::shared_ptr<Module> Child) {
  assert(Child && "registering a null module");
  assert(!Name.empty() && Name.find('.') == std::string::npos &&
         "module names must be non-empty and contain no '.'");
  assert(isNewName(*this, Name) && "name already registered on this module");
  Children.emplace_back(std::move(Name), std::move(Child));
}

const Tensor *Module::tensor(llvm::StringRef Name) const {
  for (const NamedTensor &T : Tensors)
    if (T.Name == Name)
      return &T.Value;
  return nullptr;
}

Module *Module::child(llvm::StringRef Name) const {
  for (const auto &[N, C] : Children)
    if (N == Name)
      return C.get();
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Traversal
//===----------------------------------------------------------------------===//

/// "a.b" from prefix "a" and name "b"; just "b" at the root.
static std::string qualify(llvm::StringRef Prefix, llvm::StringRef Name) {
  return Prefix.empty() ? Name.str() : (Prefix + "." + Name).str();
}

/// Pre-order walk visiting each module once, as torch's named_modules()
/// does: a module registered twice keeps its first name.
static void collectModules(Module &M, const std::string &Prefix,
                           llvm::SmallPtrSetImpl<Module *> &Seen,
                           std::vector<std::pair<std::string, Module *>> &Out) {
  if (!Seen.insert(&M).second)
    return;
  Out.emplace_back(Prefix, &M);
  for (const auto &[Name, Child] : M.children())
    collectModules(*Child, qualify(Prefix, Name), Seen, Out);
}

std::vector<std::pair<std::string, Module *>> Module::named_modules() {
  std::vector<std::pair<std::string, Module *>> Out;
  llvm::SmallPtrSet<Module *, 16> Seen;
  collectModules(*this, "", Seen, Out);
  return Out;
}

/// Tensors of one role over named_modules(), each storage once (torch's
/// named_parameters() also drops shared tensors).
static std::vector<std::pair<std::string, Tensor>>
namedTensorsOfRole(Module &Root, bool Buffers) {
  std::vector<std::pair<std::string, Tensor>> Out;
  llvm::SmallPtrSet<const void *, 32> Seen;
  for (const auto &[Path, M] : Root.named_modules())
    for (const NamedTensor &T : M->tensors())
      if (T.IsBuffer == Buffers && Seen.insert(T.Value.rawData()).second)
        Out.emplace_back(qualify(Path, T.Name), T.Value);
  return Out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  // Traversal does not modify anything; named_modules() is non-const only
  // because it hands out mutable pointers.
  return namedTensorsOfRole(const_cast<Module &>(*this), /*Buffers=*/false);
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  return namedTensorsOfRole(const_cast<Module &>(*this), /*Buffers=*/true);
}

/// torch's _save_to_state_dict: a module's parameters, then its buffers,
/// then each child's entries. No deduplication, as in PyTorch.
static void collectState(const Module &M, const std::string &Prefix,
                         std::vector<std::pair<std::string, Tensor>> &Out) {
  for (bool Buffers : {false, true})
    for (const NamedTensor &T : M.tensors())
      if (T.IsBuffer == Buffers)
        Out.emplace_back(qualify(Prefix, T.Name), T.Value);
  for (const auto &[Name, Child] : M.children())
    collectState(*Child, qualify(Prefix, Name), Out);
}

std::vector<std::pair<std::string, Tensor>> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> Out;
  collectState(*this, "", Out);
  return Out;
}

//===----------------------------------------------------------------------===//
// Loading
//===----------------------------------------------------------------------===//

/// PyTorch initializes num_batches_tracked when old checkpoints lack it, so
/// its absence is never an error.
static bool isOptionalKey(llvm::StringRef Key) {
  return Key == "num_batches_tracked" || Key.endswith(".num_batches_tracked");
}

/// "f32", "s8 per-tensor (scale 0.5, zero_point 3)", "s8 per-channel
/// (axis 0)".
static std::string describe(const Tensor &T) {
  auto Num = [](double V) {
    char Buf[32];
    std::snprintf(Buf, sizeof(Buf), "%g", V);
    return std::string(Buf);
  };
  std::string R = dtypeName(T.dtype()).str();
  const QuantParams &Q = T.quant();
  if (Q.isPerTensor())
    R += " per-tensor (scale " + Num(Q.Scale) + ", zero_point " +
         std::to_string(Q.ZeroPoint) + ")";
  else if (Q.isPerChannel())
    R += " per-channel (axis " + std::to_string(Q.Axis) + ")";
  return R;
}

/// The values an integer dtype holds, as [Lo, Hi).
static std::pair<double, double> integerRange(DType T) {
  switch (T) {
  case DType::S8:
    return {-128.0, 128.0};
  case DType::U8:
    return {0.0, 256.0};
  case DType::S32:
    return {-2147483648.0, 2147483648.0};
  default:
    return {-9223372036854775808.0, 9223372036854775808.0};
  }
}

/// Why \p Src cannot be copied into \p Dst (same shape), or "". Dtypes
/// convert by value as copy_ does (floats truncate toward zero); quantized
/// tensors must match exactly because their integers mean nothing alone.
static std::string checkCopy(llvm::StringRef Key, const Tensor &Src,
                             const Tensor &Dst) {
  if (Src.quant() != Dst.quant() ||
      (!Src.quant().isNone() && Src.dtype() != Dst.dtype()))
    return ("quantization mismatch for " + Key + ": copying a param of type " +
            describe(Src) + " from checkpoint, the type in current model is " +
            describe(Dst))
        .str();
  if (Src.dtype() == Dst.dtype() || Dst.dtype() == DType::F32)
    return "";
  // Integer destinations: every truncated value must fit.
  auto [Lo, Hi] = integerRange(Dst.dtype());
  for (int64_t I = 0, N = Src.numElements(); I < N; ++I) {
    double V = std::trunc(Src.getAsDouble(I));
    if (!(V >= Lo && V < Hi))
      return ("value out of range for " + Key + ": element " + llvm::Twine(I) +
              " of the " + dtypeName(Src.dtype()) +
              " checkpoint tensor does not fit in " + dtypeName(Dst.dtype()))
          .str();
  }
  return "";
}

/// Copies into \p Dst's storage, so every handle sharing it sees the values.
static void copyInto(const Tensor &Src, Tensor &Dst) {
  if (Src.dtype() == Dst.dtype()) {
    if (Dst.byteSize())
      std::memcpy(Dst.rawData(), Src.rawData(), Dst.byteSize());
    return;
  }
  bool ToInt = Dst.dtype() != DType::F32;
  for (int64_t I = 0, N = Dst.numElements(); I < N; ++I) {
    double V = Src.getAsDouble(I);
    Dst.setFromDouble(I, ToInt ? std::trunc(V) : V);
  }
}

/// "'a', 'b'".
static std::string quoteList(llvm::ArrayRef<std::string> Keys) {
  std::string R;
  for (const std::string &K : Keys)
    R += (R.empty() ? "'" : ", '") + K + "'";
  return R;
}

llvm::Error Module::load_state_dict(const std::map<std::string, Tensor> &State,
                                    bool Strict) {
  std::vector<std::pair<std::string, Tensor>> Own = state_dict();
  std::set<std::string> Known;
  std::vector<std::string> Missing, Unexpected, Problems;
  for (const auto &[Key, Dst] : Own) {
    Known.insert(Key);
    auto It = State.find(Key);
    if (It == State.end()) {
      if (!isOptionalKey(Key))
        Missing.push_back(Key);
      continue;
    }
    const Tensor &Src = It->second;
    if (!Src.hasData() || Src.shape() != Dst.shape()) {
      Problems.push_back("size mismatch for " + Key +
                         ": copying a param with shape " +
                         formatShape(Src.shape()) +
                         " from checkpoint, the shape in current model is " +
                         formatShape(Dst.shape()));
      continue;
    }
    std::string Msg = checkCopy(Key, Src, Dst);
    if (!Msg.empty())
      Problems.push_back(std::move(Msg));
  }
  for (const auto &KV : State)
    if (!Known.count(KV.first))
      Unexpected.push_back(KV.first);

  // PyTorch's order: missing keys, unexpected keys, then per-tensor problems.
  if (Strict && !Unexpected.empty())
    Problems.insert(Problems.begin(),
                    "unexpected keys: " + quoteList(Unexpected));
  if (Strict && !Missing.empty())
    Problems.insert(Problems.begin(), "missing keys: " + quoteList(Missing));
  if (!Problems.empty()) {
    std::string Msg = "error(s) in loading state_dict for " + Kind + ": ";
    for (size_t I = 0; I < Problems.size(); ++I)
      Msg += (I ? "; " : "") + Problems[I];
    return makeError(Msg);
  }

  for (auto &[Key, Dst] : Own) {
    auto It = State.find(Key);
    if (It != State.end())
      copyInto(It->second, Dst);
  }
  return llvm::Error::success();
}

llvm::Error Module::load_safetensors(llvm::StringRef Path, bool Strict) {
  llvm::Expected<SafetensorsFile> F = readSafetensors(Path);
  if (!F)
    return F.takeError(); // The reader already names the file.
  if (llvm::Error E = load_state_dict(F->Tensors, Strict))
    return prefixError(std::move(E), Path);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Mode, forward and calls
//===----------------------------------------------------------------------===//

void Module::train(bool On) {
  Training = On;
  for (const auto &KV : Children)
    KV.second->train(On);
}

Value Module::forward(Value X) {
  throw Error(Kind + ": forward(x) is not implemented");
}

Value Module::forwardMany(const std::vector<Value> &Inputs) {
  if (Inputs.size() != 1)
    throw Error(Kind + ": forward takes 1 input, got " +
                std::to_string(Inputs.size()) +
                " (override forwardMany to take several)");
  return forward(Inputs[0]);
}

Value Module::operator()(Value X) { return call({std::move(X)}); }

Value Module::operator()(Value A, Value B) {
  return call({std::move(A), std::move(B)});
}

Value Module::call(const std::vector<Value> &Inputs) {
  if (Tracer *T = Tracer::current())
    return T->callModule(*this, Inputs);
  return forwardMany(Inputs);
}

ModuleInfo Module::info() const {
  ModuleInfo M(Kind);
  for (const auto &[Name, A] : Attrs)
    M.setAttr(Name, A);
  // Parameters before buffers: ModuleInfo's order is the state_dict's.
  for (bool Buffers : {false, true})
    for (const NamedTensor &T : Tensors)
      if (T.IsBuffer == Buffers)
        M.setTensor(T.Name, T.Value, T.IsBuffer);
  return M;
}

//===----------------------------------------------------------------------===//
// Initialization
//===----------------------------------------------------------------------===//

namespace {
/// The generator behind uniformInit; a mutex keeps concurrent model
/// construction well-defined (though then the order is not).
struct InitRng {
  std::mutex Lock;
  std::mt19937_64 Engine{0};
};
InitRng &initRng() {
  static InitRng R;
  return R;
}
} // namespace

void nn::manual_seed(uint64_t Seed) {
  InitRng &R = initRng();
  std::lock_guard<std::mutex> G(R.Lock);
  R.Engine.seed(Seed);
}

Tensor nn::uniformInit(llvm::ArrayRef<int64_t> Shape, double Bound) {
  Tensor T(DType::F32, Shape);
  InitRng &R = initRng();
  std::lock_guard<std::mutex> G(R.Lock);
  std::uniform_real_distribution<double> Dist(-Bound, Bound);
  float *P = T.data<float>();
  for (int64_t I = 0, N = T.numElements(); I < N; ++I)
    P[I] = static_cast<float>(Dist(R.Engine));
  return T;
}
