//===- QConfigMapping.cpp - Which qconfig applies where ------------------===//
//
// Resolution follows torch/ao/quantization/qconfig_mapping_utils.py and
// fx/qconfig_mapping_utils.py (generate_qconfig_map) of PyTorch 1.13 step
// by step, so that a mapping decides exactly what it decides there.
// nlohmann::json stays inside this file; its exceptions are caught at the
// entry points.
//
//===----------------------------------------------------------------------===//

#include "qfx/Quant/QConfigMapping.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Regex.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

#include "Support/JsonUtil.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <set>

using namespace llvm;

namespace qfx {

namespace {
using json = nlohmann::json;
/// Output keeps insertion order: the document reads in priority order.
using ordered_json = nlohmann::ordered_json;
using QConfigList = std::vector<std::pair<std::string, OptQConfig>>;
} // namespace

/// The presets QConfig::preset knows, in the order qconfigDisplayName tries
/// them and error messages list them.
static const char *const PresetNames[] = {"x86", "onednn", "qat_x86", "dynamic",
                                          "weight_only"};

StringRef qconfigRuleName(QConfigRule R) {
  switch (R) {
  case QConfigRule::Unset:
    return "unset";
  case QConfigRule::Global:
    return "global";
  case QConfigRule::ObjectType:
    return "object_type";
  case QConfigRule::ModuleNameRegex:
    return "module_name_regex";
  case QConfigRule::ModuleName:
    return "module_name";
  case QConfigRule::ModuleNameObjectTypeOrder:
    return "module_name_object_type_order";
  }
  llvm_unreachable("unknown qconfig rule");
}

/// Equality of what a qconfig does, whatever it is called.
static bool sameContent(const QConfig &A, const QConfig &B) {
  return A.Activation == B.Activation && A.Weight == B.Weight &&
         A.IsDynamic == B.IsDynamic && A.IsWeightOnly == B.IsWeightOnly;
}

/// The first preset that \p QC equals, if any.
static std::optional<std::string> matchingPreset(const QConfig &QC) {
  for (const char *P : PresetNames) {
    Expected<QConfig> Preset = QConfig::preset(P);
    if (!Preset) {
      consumeError(Preset.takeError());
      continue;
    }
    if (sameContent(*Preset, QC))
      return std::string(P);
  }
  return std::nullopt;
}

std::string qconfigDisplayName(const OptQConfig &QC) {
  if (!QC)
    return "none";
  return matchingPreset(*QC).value_or("custom");
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

/// Sets \p Key in an insertion-ordered list: a key set again keeps its place
/// and takes the new qconfig, like PyTorch's OrderedDicts (this matters for
/// regexes, where the first match wins).
static void upsert(QConfigList &List, std::string Key, OptQConfig QC) {
  for (auto &Entry : List)
    if (Entry.first == Key) {
      Entry.second = std::move(QC);
      return;
    }
  List.emplace_back(std::move(Key), std::move(QC));
}

QConfigMapping &QConfigMapping::setGlobal(OptQConfig QC) {
  Global = std::move(QC);
  HasGlobal = true;
  return *this;
}

QConfigMapping &QConfigMapping::setObjectType(std::string Type, OptQConfig QC) {
  upsert(ObjectTypes, std::move(Type), std::move(QC));
  return *this;
}

QConfigMapping &QConfigMapping::setModuleNameRegex(std::string Regex,
                                                   OptQConfig QC) {
  upsert(Regexes, std::move(Regex), std::move(QC));
  return *this;
}

QConfigMapping &QConfigMapping::setModuleName(std::string Name, OptQConfig QC) {
  upsert(ModuleNames, std::move(Name), std::move(QC));
  return *this;
}

QConfigMapping &QConfigMapping::setModuleNameObjectTypeOrder(
    std::string ModuleName, std::string Type, int64_t Index, OptQConfig QC) {
  for (OrderEntry &E : Orders)
    if (E.ModuleName == ModuleName && E.Type == Type && E.Index == Index) {
      E.QC = std::move(QC);
      return *this;
    }
  Orders.push_back(
      {std::move(ModuleName), std::move(Type), Index, std::move(QC)});
  return *this;
}

//===----------------------------------------------------------------------===//
// Resolution
//===----------------------------------------------------------------------===//

/// Each step takes the decision of the lower-priority steps as its fallback,
/// as PyTorch's helpers take fallback_qconfig.
struct QConfigMapping::Resolver {
  explicit Resolver(const QConfigMapping &M);

  QConfigDecision global() const;
  QConfigDecision objectType(StringRef Type, QConfigDecision Fallback) const;
  QConfigDecision regex(StringRef Name, QConfigDecision Fallback) const;
  QConfigDecision moduleName(StringRef Name, QConfigDecision Fallback) const;
  QConfigDecision typeOrName(StringRef Type, StringRef Name,
                             QConfigDecision Fallback) const;
  QConfigDecision order(StringRef Path, StringRef Type, int64_t Index,
                        QConfigDecision Fallback) const;

  QConfigDecision module(StringRef Path, StringRef Kind, int64_t Index) const;
  QConfigDecision fused(StringRef Path, StringRef Kind,
                        ArrayRef<std::string> Parts, int64_t Index,
                        std::string *Conflict) const;
  QConfigDecision function(StringRef Fn, StringRef ScopePath,
                           StringRef ScopeKind, int64_t Index) const;
  QConfigDecision method(StringRef Method, StringRef ScopePath,
                         StringRef ScopeKind) const;
  QConfigDecision scope(StringRef ScopePath, StringRef ScopeKind) const;

  const QConfigMapping &M;
  StringMap<size_t> TypeIndex, NameIndex;
  /// One per regex; empty for a pattern Regex::compile rejects (fromJson
  /// reports those; one set through the API never matches).
  std::vector<std::optional<Regex>> Compiled;
};

QConfigMapping::Resolver::Resolver(const QConfigMapping &M) : M(M) {
  for (size_t I = 0; I < M.ObjectTypes.size(); ++I)
    TypeIndex.try_emplace(M.ObjectTypes[I].first, I);
  for (size_t I = 0; I < M.ModuleNames.size(); ++I)
    NameIndex.try_emplace(M.ModuleNames[I].first, I);
  for (const auto &Entry : M.Regexes) {
    Expected<Regex> RE = Regex::compile(Entry.first);
    if (RE) {
      Compiled.emplace_back(std::move(*RE));
    } else {
      consumeError(RE.takeError());
      Compiled.emplace_back(std::nullopt);
    }
  }
}

QConfigDecision QConfigMapping::Resolver::global() const {
  if (!M.HasGlobal)
    return {std::nullopt, QConfigRule::Unset, ""};
  return {M.Global, QConfigRule::Global, ""};
}

QConfigDecision
QConfigMapping::Resolver::objectType(StringRef Type,
                                     QConfigDecision Fallback) const {
  auto It = Type.empty() ? TypeIndex.end() : TypeIndex.find(Type);
  if (It == TypeIndex.end())
    return Fallback;
  return {M.ObjectTypes[It->second].second, QConfigRule::ObjectType,
          Type.str()};
}

QConfigDecision
QConfigMapping::Resolver::regex(StringRef Name,
                                QConfigDecision Fallback) const {
  for (size_t I = 0; I < M.Regexes.size(); ++I)
    if (Compiled[I] && Compiled[I]->matchPrefix(Name))
      return {M.Regexes[I].second, QConfigRule::ModuleNameRegex,
              M.Regexes[I].first};
  return Fallback;
}

QConfigDecision
QConfigMapping::Resolver::moduleName(StringRef Name,
                                     QConfigDecision Fallback) const {
  // A module inherits its closest configured ancestor's qconfig; the root
  // ("") is never looked up, as in _get_module_name_qconfig.
  while (!Name.empty()) {
    auto It = NameIndex.find(Name);
    if (It != NameIndex.end())
      return {M.ModuleNames[It->second].second, QConfigRule::ModuleName,
              Name.str()};
    Name = splitQualifiedName(Name).first;
  }
  return Fallback;
}

QConfigDecision
QConfigMapping::Resolver::typeOrName(StringRef Type, StringRef Name,
                                     QConfigDecision Fallback) const {
  return moduleName(Name, regex(Name, objectType(Type, std::move(Fallback))));
}

QConfigDecision
QConfigMapping::Resolver::order(StringRef Path, StringRef Type, int64_t Index,
                                QConfigDecision Fallback) const {
  for (const OrderEntry &E : M.Orders)
    if (E.ModuleName == Path && E.Type == Type && E.Index == Index)
      return {E.QC, QConfigRule::ModuleNameObjectTypeOrder,
              (Path + ":" + Type + ":" + Twine(Index)).str()};
  return Fallback;
}

QConfigDecision QConfigMapping::Resolver::module(StringRef Path, StringRef Kind,
                                                 int64_t Index) const {
  // Calls of a module are counted in its parent, where they are made.
  QConfigDecision D = typeOrName(Kind, Path, global());
  return order(splitQualifiedName(Path).first, Kind, Index, std::move(D));
}

/// A PyTorch fused module (LinearReLU ...) at \p Path whose parts have the
/// kinds \p Parts, the \p Index-th call of Parts[0] in its parent.
/// update_qconfig_for_fusion reads each part's object_type rule with
/// dict.get, so a missing rule and a rule of none are alike; when all parts
/// agree on a qconfig, the fused kind takes it as its object_type rule (over
/// a rule for the fused kind itself). Module-name rules see the fused
/// module's path, which is its first op's. A disagreement is described in
/// \p Conflict (when given): PyTorch raises LookupError there.
QConfigDecision QConfigMapping::Resolver::fused(StringRef Path, StringRef Kind,
                                                ArrayRef<std::string> Parts,
                                                int64_t Index,
                                                std::string *Conflict) const {
  auto Rule = [&](StringRef Type) -> const OptQConfig * {
    auto It = TypeIndex.find(Type);
    return It == TypeIndex.end() ? nullptr : &M.ObjectTypes[It->second].second;
  };
  auto Get = [&](StringRef Type) {
    const OptQConfig *QC = Rule(Type);
    return QC ? *QC : OptQConfig();
  };
  auto Describe = [&](StringRef Type) {
    const OptQConfig *QC = Rule(Type);
    return QC ? Type.str() + " has " + qconfigDisplayName(*QC) +
                    " (object_type:" + Type.str() + ")"
              : Type.str() + " has none (no object_type rule)";
  };
  OptQConfig First = Get(Parts[0]);
  bool Agree = true;
  for (size_t I = 1; I < Parts.size() && Agree; ++I) {
    if (Get(Parts[I]) == First)
      continue;
    Agree = false;
    if (Conflict)
      *Conflict = Describe(Parts[0]) + " but " + Describe(Parts[I]) +
                  "; PyTorch 1.13 raises LookupError for this mapping: give " +
                  Parts[0] + " and " + Parts[I] +
                  " the same object_type qconfig";
  }
  QConfigDecision D = global();
  if (Agree && First)
    D = {First, QConfigRule::ObjectType, Parts[0]};
  else
    D = objectType(Kind, std::move(D));
  D = moduleName(Path, regex(Path, std::move(D)));
  return order(splitQualifiedName(Path).first, Parts[0], Index, std::move(D));
}

QConfigDecision QConfigMapping::Resolver::function(StringRef Fn,
                                                   StringRef ScopePath,
                                                   StringRef ScopeKind,
                                                   int64_t Index) const {
  // The function's own rule only replaces the global qconfig: every rule
  // of the enclosing module, its kind included, wins over it.
  QConfigDecision D = objectType(Fn, global());
  D = typeOrName(ScopeKind, ScopePath, std::move(D));
  return order(ScopePath, Fn, Index, std::move(D));
}

QConfigDecision QConfigMapping::Resolver::method(StringRef Method,
                                                 StringRef ScopePath,
                                                 StringRef ScopeKind) const {
  QConfigDecision D = typeOrName(Method, ScopePath, global());
  return typeOrName(ScopeKind, ScopePath, std::move(D));
}

QConfigDecision QConfigMapping::Resolver::scope(StringRef ScopePath,
                                                StringRef ScopeKind) const {
  return typeOrName(ScopeKind, ScopePath, global());
}

QConfigDecision QConfigMapping::resolveModule(StringRef Path, StringRef Kind,
                                              int64_t Index) const {
  return Resolver(*this).module(Path, Kind, Index);
}

QConfigDecision QConfigMapping::resolveFunction(StringRef Fn,
                                                StringRef ScopePath,
                                                StringRef ScopeKind,
                                                int64_t Index) const {
  return Resolver(*this).function(Fn, ScopePath, ScopeKind, Index);
}

QConfigDecision QConfigMapping::resolveScope(StringRef ScopePath,
                                             StringRef ScopeKind) const {
  return Resolver(*this).scope(ScopePath, ScopeKind);
}

QConfigDecision QConfigMapping::resolveMethod(StringRef Method,
                                              StringRef ScopePath,
                                              StringRef ScopeKind) const {
  return Resolver(*this).method(Method, ScopePath, ScopeKind);
}

/// PyTorch's is_activation_post_process, by class-name convention.
static bool isObserverKind(StringRef Kind) {
  return Kind.endswith("Observer") || Kind.endswith("FakeQuantize");
}

/// The module type PyTorch's tracer records for nodes created in the
/// forward of \p Scope. The root's is None there, so "" here: no
/// object_type rule applies to the root scope.
static StringRef scopeKind(const GraphModule &GM, StringRef Scope) {
  if (Scope.empty())
    return "";
  const ModuleInfo *M = GM.lookupModule(Scope);
  return M ? M->kind() : StringRef();
}

/// PyTorch's fused module kinds (torch.nn.intrinsic), whose parts are
/// checked by update_qconfig_for_fusion.
static bool isTorchFusedKind(StringRef Kind) {
  return Kind == "ConvReLU2d" || Kind == "ConvBn2d" || Kind == "ConvBnReLU2d" ||
         Kind == "LinearReLU" || Kind == "LinearBn1d" || Kind == "BNReLU2d" ||
         // Conv family.
         Kind == "ConvReLU1d" || Kind == "ConvBn1d" || Kind == "ConvBnReLU1d";
}

/// qfx's own fused kinds, which PyTorch 1.13 never forms.
static bool isQfxFusedKind(StringRef Kind) {
  return Kind == "ConvAdd2d" || Kind == "ConvAddReLU2d";
}

/// The kinds of \p M's parts if it is a fused module, else empty.
static std::vector<std::string> fusedParts(const ModuleInfo &M) {
  std::vector<std::string> Parts;
  if (!isTorchFusedKind(M.kind()) && !isQfxFusedKind(M.kind()))
    return Parts;
  for (const auto &C : M.children())
    Parts.push_back(C.second->kind().str());
  return Parts;
}

std::string fusedCallEntry(const Node &N, const GraphModule &GM) {
  switch (N.op()) {
  case OpCode::CallModule: {
    const ModuleInfo *M = GM.lookupModule(N.target());
    return ("module:" + N.target() + ":" + (M ? M->kind() : StringRef())).str();
  }
  case OpCode::CallMethod:
    return ("method:" + N.scope() + ":" + N.target()).str();
  default:
    return ("function:" + N.scope() + ":" + N.target()).str();
  }
}

/// "x86 (global)", "none (object_type:add)": a decision for messages.
static std::string describe(const QConfigDecision &D) {
  std::string S =
      qconfigDisplayName(D.QC) + " (" + qconfigRuleName(D.Rule).str();
  if (!D.Key.empty())
    S += ":" + D.Key;
  return S + ")";
}

Error QConfigMapping::resolveAll(const GraphModule &GM,
                                 std::map<std::string, QConfigDecision> &Out,
                                 bool Check) const {
  Resolver R(*this);
  // Calls seen so far per (module path, object type), as PyTorch's
  // submodule_to_object_type_to_cur_idx.
  std::map<std::pair<std::string, std::string>, int64_t> Seen;
  auto NextIndex = [&](StringRef Path, StringRef Type) {
    return Seen[{Path.str(), Type.str()}]++;
  };
  // Resolves (and counts) one call recorded in `fused_calls`.
  auto ResolveEntry = [&](StringRef Entry) {
    auto [Op, Rest] = Entry.split(':');
    auto [Where, Type] = Rest.split(':');
    if (Op == "module")
      return R.module(Where, Type,
                      NextIndex(splitQualifiedName(Where).first, Type));
    if (Op == "method")
      return R.method(Type, Where, scopeKind(GM, Where));
    return R.function(Type, Where, scopeKind(GM, Where),
                      NextIndex(Where, Type));
  };
  for (const Node &N : GM.graph()) {
    StringRef Scope = N.scope();
    switch (N.op()) {
    case OpCode::Placeholder:
    case OpCode::Output:
      break;
    case OpCode::GetAttr: {
      // PyTorch resolves a get_attr by the module owning the tensor.
      StringRef Owner = splitQualifiedName(N.target()).first;
      if (const ModuleInfo *Mod = GM.lookupModule(Owner))
        Out[N.name().str()] = R.scope(Owner, Mod->kind());
      else
        Out[N.name().str()] = R.scope(Scope, scopeKind(GM, Scope));
      break;
    }
    case OpCode::CallModule: {
      const ModuleInfo *Mod = GM.lookupModule(N.target());
      StringRef Kind = Mod ? Mod->kind() : StringRef();
      if (isObserverKind(Kind))
        break;
      StringRef Parent = splitQualifiedName(N.target()).first;
      std::vector<std::string> Parts;
      if (Mod)
        Parts = fusedParts(*Mod);
      if (Parts.empty()) {
        Out[N.name().str()] =
            R.module(N.target(), Kind, NextIndex(Parent, Kind));
        break;
      }
      int64_t Index = NextIndex(Parent, Parts[0]);
      std::string Where = ("fused module '" + N.target() + "' (" + Kind +
                           ", node '" + N.name() + "')")
                              .str();
      if (isQfxFusedKind(Kind)) {
        QConfigDecision D = R.module(N.target(), Parts[0], Index);
        const Argument *Calls = N.meta("fused_calls");
        SmallVector<StringRef, 2> Entries;
        if (Calls && Calls->isString())
          StringRef(Calls->getString()).split(Entries, ',', -1, false);
        for (StringRef Entry : Entries) {
          QConfigDecision Absorbed = ResolveEntry(Entry);
          if (Check && !(Absorbed.QC == D.QC))
            return makeError(Where + " absorbed '" + Entry.rsplit(':').second +
                             "' whose qconfig " + describe(Absorbed) +
                             " differs from its conv's " + describe(D) +
                             "; fuse with this qconfig mapping to keep them "
                             "apart");
        }
        Out[N.name().str()] = std::move(D);
        break;
      }
      std::string Conflict;
      Out[N.name().str()] =
          R.fused(N.target(), Kind, Parts, Index, Check ? &Conflict : nullptr);
      if (!Conflict.empty())
        return makeError(
            Where + ": the object_type rules of its parts differ: " + Conflict);
      break;
    }
    case OpCode::CallFunction: {
      int64_t Index = NextIndex(Scope, N.target());
      Out[N.name().str()] =
          R.function(N.target(), Scope, scopeKind(GM, Scope), Index);
      break;
    }
    case OpCode::CallMethod:
      Out[N.name().str()] = R.method(N.target(), Scope, scopeKind(GM, Scope));
      break;
    }
  }
  return Error::success();
}

std::map<std::string, QConfigDecision>
QConfigMapping::assign(const GraphModule &GM) const {
  std::map<std::string, QConfigDecision> Out;
  // Without checking, resolution cannot fail.
  cantFail(resolveAll(GM, Out, /*Check=*/false));
  return Out;
}

Error QConfigMapping::checkFusedModules(const GraphModule &GM) const {
  std::map<std::string, QConfigDecision> Out;
  return resolveAll(GM, Out, /*Check=*/true);
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

namespace {

/// The "dtype" strings of observers (torch dtype names).
struct DTypeName {
  const char *Name;
  DType Type;
};
const DTypeName DTypeNames[] = {
    {"quint8", DType::U8}, {"qint8", DType::S8}, {"float32", DType::F32}};

const char *const TopKeys[] = {"",
                               "object_type",
                               "module_type",
                               "module_name_regex",
                               "module_name",
                               "module_name_object_type_order"};

const char *const QConfigKeys[] = {"activation", "weight", "is_dynamic",
                                   "is_weight_only"};

const char *const ObserverKeys[] = {
    "observer",           "dtype",         "qscheme",
    "reduce_range",       "quant_min",     "quant_max",
    "averaging_constant", "ch_axis",       "bins",
    "percentile",         "upsample_rate", "scale",
    "zero_point",         "fake_quant"};

/// Python's floor division by two, which reduce_range applies to a custom
/// range (-127 // 2 == -64).
int64_t floorHalf(int64_t V) { return V >= 0 ? V / 2 : -((1 - V) / 2); }

template <size_t N> std::string joinNames(const char *const (&Names)[N]) {
  std::string S;
  for (const char *Name : Names)
    S += (S.empty() ? "" : ", ") + std::string(Name);
  return S;
}

std::string knownObservers() {
  std::string S;
  for (int K = 0; K <= int(ObserverKind::FixedQParams); ++K) {
    // Only kinds the parser accepts back are worth suggesting.
    StringRef Name = observerKindName(ObserverKind(K));
    if (parseObserverKind(Name) == ObserverKind(K))
      S += (S.empty() ? "" : ", ") + Name.str();
  }
  return S;
}

std::string knownQSchemes() {
  std::string S;
  for (int K = 0; K <= int(QScheme::PerChannelSymmetric); ++K)
    S += (K ? ", " : "") + qschemeName(QScheme(K)).str();
  return S;
}

std::string knownPresets() {
  std::string S;
  for (const char *P : PresetNames) {
    Expected<QConfig> Preset = QConfig::preset(P);
    if (!Preset) {
      consumeError(Preset.takeError());
      continue;
    }
    S += (S.empty() ? "" : ", ") + std::string(P);
  }
  return S;
}

} // namespace

namespace {

/// Reads a qconfig_dict document. Every error is "<Name>: <key path>:
/// <problem>", the key path written as in Python ("object_type[2][1]").
class MappingReader {
public:
  explicit MappingReader(StringRef Name) : Name(Name) {}
  Expected<QConfigMapping> readDocument(const json &Doc) const;

private:
  Error fail(const Twine &Path, const Twine &Msg) const {
    return fileError(Name, Path + ": " + Msg);
  }
  Error checkKeys(const json &Obj, ArrayRef<const char *> Known,
                  const std::string &Path) const;
  Error readPairs(const json &Doc, const std::string &Key, StringRef What,
                  QConfigMapping &M) const;
  Error readOrders(const json &List, QConfigMapping &M) const;
  Expected<OptQConfig> readQConfig(const json &J,
                                   const std::string &Path) const;
  Expected<ObserverSpec> readObserver(const json &J,
                                      const std::string &Path) const;
  Error readObserverFields(const json &J, const std::string &Path,
                           ObserverSpec &S) const;

  Error getBool(const json &Obj, const char *Key, const std::string &Path,
                bool &Out) const;
  Error getInt(const json &Obj, const char *Key, const std::string &Path,
               int64_t &Out) const;
  Error getNumber(const json &Obj, const char *Key, const std::string &Path,
                  double &Out) const;
  Error getString(const json &Obj, const char *Key, const std::string &Path,
                  std::string &Out) const;

  StringRef Name;
};

} // namespace

Error MappingReader::checkKeys(const json &Obj, ArrayRef<const char *> Known,
                               const std::string &Path) const {
  for (const auto &Item : Obj.items())
    if (!llvm::is_contained(Known, StringRef(Item.key())))
      return fail(Path, "unknown key '" + Item.key() + "'");
  return Error::success();
}

Error MappingReader::getBool(const json &Obj, const char *Key,
                             const std::string &Path, bool &Out) const {
  auto It = Obj.find(Key);
  if (It == Obj.end())
    return Error::success();
  if (!It->is_boolean())
    return fail(Path + "." + Key, "expected true or false");
  Out = It->get<bool>();
  return Error::success();
}

Error MappingReader::getInt(const json &Obj, const char *Key,
                            const std::string &Path, int64_t &Out) const {
  auto It = Obj.find(Key);
  if (It == Obj.end())
    return Error::success();
  if (!It->is_number_integer())
    return fail(Path + "." + Key, "expected an integer");
  if (It->is_number_unsigned() &&
      It->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    return fail(Path + "." + Key, "integer out of range");
  Out = It->get<int64_t>();
  return Error::success();
}

Error MappingReader::getNumber(const json &Obj, const char *Key,
                               const std::string &Path, double &Out) const {
  auto It = Obj.find(Key);
  if (It == Obj.end())
    return Error::success();
  if (!It->is_number())
    return fail(Path + "." + Key, "expected a number");
  Out = It->get<double>();
  return Error::success();
}

Error MappingReader::getString(const json &Obj, const char *Key,
                               const std::string &Path,
                               std::string &Out) const {
  auto It = Obj.find(Key);
  if (It == Obj.end())
    return Error::success();
  if (!It->is_string())
    return fail(Path + "." + Key, "expected a string");
  Out = It->get<std::string>();
  return Error::success();
}

Expected<ObserverSpec>
MappingReader::readObserver(const json &J, const std::string &Path) const {
  if (!J.is_object())
    return fail(Path, "expected an observer object");
  if (Error E = checkKeys(J, ObserverKeys, Path))
    return E;
  std::string KindName, DTypeStr, SchemeStr;
  if (!J.contains("observer"))
    return fail(Path, "missing 'observer'");
  if (Error E = getString(J, "observer", Path, KindName))
    return E;
  std::optional<ObserverKind> Kind = parseObserverKind(KindName);
  if (!Kind)
    return fail(Path + ".observer", "unknown observer '" + KindName +
                                        "' (known: " + knownObservers() + ")");
  // Absent dtype and qscheme take the observer class's defaults.
  DType D = *Kind == ObserverKind::Placeholder ? DType::F32 : DType::U8;
  QScheme Scheme = isPerChannel(*Kind) ? QScheme::PerChannelAffine
                                       : QScheme::PerTensorAffine;
  if (Error E = getString(J, "dtype", Path, DTypeStr))
    return E;
  if (J.contains("dtype")) {
    const DTypeName *It = llvm::find_if(
        DTypeNames, [&](const DTypeName &N) { return DTypeStr == N.Name; });
    if (It == std::end(DTypeNames))
      return fail(Path + ".dtype", "unknown dtype '" + DTypeStr +
                                       "' (known: quint8, qint8, float32)");
    D = It->Type;
  }
  if (Error E = getString(J, "qscheme", Path, SchemeStr))
    return E;
  if (J.contains("qscheme")) {
    std::optional<QScheme> S = parseQScheme(SchemeStr);
    if (!S)
      return fail(Path + ".qscheme", "unknown qscheme '" + SchemeStr +
                                         "' (known: " + knownQSchemes() + ")");
    Scheme = *S;
  }
  bool ReduceRange = false;
  if (Error E = getBool(J, "reduce_range", Path, ReduceRange))
    return E;
  ObserverSpec S = ObserverSpec::make(*Kind, D, Scheme, ReduceRange);
  if (Error E = readObserverFields(J, Path, S))
    return E;
  std::string Problem = S.validate();
  if (!Problem.empty())
    return fail(Path, Problem);
  return S;
}

/// The optional fields on top of ObserverSpec::make's defaults.
Error MappingReader::readObserverFields(const json &J, const std::string &Path,
                                        ObserverSpec &S) const {
  if (J.contains("quant_min") != J.contains("quant_max"))
    return fail(Path, "quant_min and quant_max must be given together");
  if (J.contains("quant_min")) {
    int64_t Min = 0, Max = 0;
    if (Error E = getInt(J, "quant_min", Path, Min))
      return E;
    if (Error E = getInt(J, "quant_max", Path, Max))
      return E;
    // PyTorch's calculate_qmin_qmax halves a custom range too.
    S.QuantMin = S.ReduceRange ? floorHalf(Min) : Min;
    S.QuantMax = S.ReduceRange ? floorHalf(Max) : Max;
  }
  if (Error E = getNumber(J, "averaging_constant", Path, S.AveragingConstant))
    return E;
  if (Error E = getInt(J, "ch_axis", Path, S.ChAxis))
    return E;
  if (Error E = getInt(J, "bins", Path, S.Bins))
    return E;
  if (Error E = getNumber(J, "percentile", Path, S.Percentile))
    return E;
  if (Error E = getInt(J, "upsample_rate", Path, S.UpsampleRate))
    return E;
  if (Error E = getNumber(J, "scale", Path, S.FixedScale))
    return E;
  if (Error E = getInt(J, "zero_point", Path, S.FixedZeroPoint))
    return E;
  return getBool(J, "fake_quant", Path, S.FakeQuant);
}

Expected<OptQConfig> MappingReader::readQConfig(const json &J,
                                                const std::string &Path) const {
  if (J.is_null())
    return OptQConfig();
  if (J.is_string()) {
    const std::string &Preset = J.get_ref<const std::string &>();
    Expected<QConfig> QC = QConfig::preset(Preset);
    if (!QC) {
      consumeError(QC.takeError());
      return fail(Path, "unknown qconfig preset '" + Preset +
                            "' (known: " + knownPresets() + ")");
    }
    return OptQConfig(std::move(*QC));
  }
  if (!J.is_object())
    return fail(Path, "expected null, a preset name or a qconfig object");
  if (Error E = checkKeys(J, QConfigKeys, Path))
    return E;
  QConfig QC;
  for (const char *Key : {"activation", "weight"}) {
    if (!J.contains(Key))
      return fail(Path, "missing '" + Twine(Key) + "'");
    Expected<ObserverSpec> S = readObserver(J.at(Key), Path + "." + Key);
    if (!S)
      return S.takeError();
    (StringRef(Key) == "activation" ? QC.Activation : QC.Weight) = *S;
  }
  if (Error E = getBool(J, "is_dynamic", Path, QC.IsDynamic))
    return E;
  if (Error E = getBool(J, "is_weight_only", Path, QC.IsWeightOnly))
    return E;
  if (QC.IsDynamic && QC.IsWeightOnly)
    return fail(Path, "is_dynamic and is_weight_only exclude each other");
  return OptQConfig(std::move(QC));
}

/// Checks the first element of a [key, qconfig] pair of list \p Key.
static std::string checkPairKey(StringRef Key, const std::string &Item) {
  if (Key == "module_name_regex") {
    Expected<Regex> RE = Regex::compile(Item);
    if (RE)
      return "";
    // A pathological pattern can be thousands of characters long; cut it
    // at a UTF-8 character boundary.
    size_t Cut = std::min<size_t>(Item.size(), 40);
    while (Cut < Item.size() && (uint8_t(Item[Cut]) & 0xC0) == 0x80)
      --Cut;
    std::string Shown = Item.substr(0, Cut) + (Cut < Item.size() ? "..." : "");
    return "invalid regex '" + Shown + "': " + toString(RE.takeError());
  }
  if (Item.empty())
    return Key == "module_name" ? "empty module name (the \"\" key sets the "
                                  "global qconfig)"
                                : "empty object type";
  return "";
}

Error MappingReader::readPairs(const json &Doc, const std::string &Key,
                               StringRef What, QConfigMapping &M) const {
  auto ListIt = Doc.find(Key);
  if (ListIt == Doc.end())
    return Error::success();
  if (!ListIt->is_array())
    return fail(Key, "expected a list of [" + What + ", qconfig] pairs");
  for (size_t I = 0; I < ListIt->size(); ++I) {
    const json &E = (*ListIt)[I];
    std::string Path = Key + "[" + std::to_string(I) + "]";
    if (!E.is_array() || E.size() != 2 || !E[0].is_string())
      return fail(Path, "expected [" + What + ", qconfig]");
    std::string Item = E[0].get<std::string>();
    std::string Problem = checkPairKey(Key, Item);
    if (!Problem.empty())
      return fail(Path + "[0]", Problem);
    Expected<OptQConfig> QC = readQConfig(E[1], Path + "[1]");
    if (!QC)
      return QC.takeError();
    if (Key == "module_name_regex")
      M.setModuleNameRegex(std::move(Item), std::move(*QC));
    else if (Key == "module_name")
      M.setModuleName(std::move(Item), std::move(*QC));
    else
      M.setObjectType(std::move(Item), std::move(*QC));
  }
  return Error::success();
}

Error MappingReader::readOrders(const json &List, QConfigMapping &M) const {
  const std::string Key = "module_name_object_type_order";
  if (!List.is_array())
    return fail(Key, "expected a list of [module_name, object_type, index, "
                     "qconfig] entries");
  for (size_t I = 0; I < List.size(); ++I) {
    const json &E = List[I];
    std::string Path = Key + "[" + std::to_string(I) + "]";
    if (!E.is_array() || E.size() != 4 || !E[0].is_string() ||
        !E[1].is_string() || !E[2].is_number_integer())
      return fail(Path, "expected [module_name, object_type, index, qconfig]");
    if (E[1].get_ref<const std::string &>().empty())
      return fail(Path + "[1]", "empty object type");
    if (E[2].is_number_unsigned() ? E[2].get<uint64_t>() > uint64_t(INT64_MAX)
                                  : E[2].get<int64_t>() < 0)
      return fail(Path + "[2]", "expected a non-negative call index");
    Expected<OptQConfig> QC = readQConfig(E[3], Path + "[3]");
    if (!QC)
      return QC.takeError();
    M.setModuleNameObjectTypeOrder(E[0].get<std::string>(),
                                   E[1].get<std::string>(), E[2].get<int64_t>(),
                                   std::move(*QC));
  }
  return Error::success();
}

Expected<QConfigMapping> MappingReader::readDocument(const json &Doc) const {
  if (!Doc.is_object())
    return fileError(Name, "expected a JSON object");
  for (const auto &Item : Doc.items())
    if (!llvm::is_contained(TopKeys, StringRef(Item.key())))
      return fileError(Name, "unknown key '" + Item.key() +
                                 "' (known: \"\", object_type, module_type, "
                                 "module_name_regex, module_name, "
                                 "module_name_object_type_order)");
  if (Doc.contains("object_type") && Doc.contains("module_type"))
    return fileError(Name, "'object_type' and 'module_type' are synonyms; "
                           "give only one of them");
  QConfigMapping M;
  auto Global = Doc.find("");
  if (Global != Doc.end()) {
    Expected<OptQConfig> QC = readQConfig(*Global, "\"\"");
    if (!QC)
      return QC.takeError();
    M.setGlobal(std::move(*QC));
  }
  for (const char *Key :
       {"object_type", "module_type", "module_name_regex", "module_name"})
    if (Error E = readPairs(
            Doc, Key, StringRef(Key) == "module_type" ? "object_type" : Key, M))
      return E;
  auto Orders = Doc.find("module_name_object_type_order");
  if (Orders != Doc.end())
    if (Error E = readOrders(*Orders, M))
      return E;
  return M;
}

Expected<QConfigMapping> QConfigMapping::fromJson(StringRef Text,
                                                  StringRef Name) {
  Expected<json> Doc = parseJsonDocument(Text, Name, "");
  if (!Doc)
    return Doc.takeError();
  try {
    return MappingReader(Name).readDocument(*Doc);
  } catch (const json::exception &E) {
    // The reader checks types before every access, so this is a bug; still
    // a configuration file must never take the process down.
    return fileError(Name,
                     "cannot read JSON: " + stripJsonExceptionTag(E.what()));
  } catch (const std::bad_alloc &) {
    return fileError(Name, "out of memory while reading the qconfig mapping");
  }
}

Expected<QConfigMapping> QConfigMapping::loadFile(StringRef Path) {
  Expected<std::string> Text = readFile(Path);
  if (!Text)
    return Text.takeError();
  return fromJson(*Text, Path);
}

static std::string dtypeString(DType D) {
  for (const DTypeName &N : DTypeNames)
    if (N.Type == D)
      return N.Name;
  // Not an observer dtype; validate() rejects it, fromJson will too.
  return dtypeName(D).str();
}

/// The fields ObserverSpec::make would not set by itself, and always the
/// four that say what the observer is.
static ordered_json writeObserver(const ObserverSpec &S) {
  ordered_json J = ordered_json::object();
  J["observer"] = observerKindName(S.Kind).str();
  J["dtype"] = dtypeString(S.Dtype);
  J["qscheme"] = qschemeName(S.Scheme).str();
  J["reduce_range"] = S.ReduceRange;
  ObserverSpec D = ObserverSpec::make(S.Kind, S.Dtype, S.Scheme, S.ReduceRange);
  if (S.QuantMin != D.QuantMin || S.QuantMax != D.QuantMax) {
    // Written as constructor arguments: reading halves them again, and
    // floor(2q / 2) == q.
    J["quant_min"] = S.ReduceRange ? 2 * S.QuantMin : S.QuantMin;
    J["quant_max"] = S.ReduceRange ? 2 * S.QuantMax : S.QuantMax;
  }
  if (S.AveragingConstant != D.AveragingConstant)
    J["averaging_constant"] = S.AveragingConstant;
  if (S.ChAxis != D.ChAxis)
    J["ch_axis"] = S.ChAxis;
  if (S.Bins != D.Bins)
    J["bins"] = S.Bins;
  if (S.Percentile != D.Percentile)
    J["percentile"] = S.Percentile;
  if (S.UpsampleRate != D.UpsampleRate)
    J["upsample_rate"] = S.UpsampleRate;
  if (S.FixedScale != D.FixedScale)
    J["scale"] = S.FixedScale;
  if (S.FixedZeroPoint != D.FixedZeroPoint)
    J["zero_point"] = S.FixedZeroPoint;
  if (S.FakeQuant != D.FakeQuant)
    J["fake_quant"] = S.FakeQuant;
  return J;
}

/// A preset by name when it still is that preset, else the full object.
static ordered_json writeQConfig(const OptQConfig &QC) {
  if (!QC)
    return nullptr;
  if (QC->Name != "custom") {
    Expected<QConfig> Preset = QConfig::preset(QC->Name);
    if (Preset && sameContent(*Preset, *QC))
      return QC->Name;
    if (!Preset)
      consumeError(Preset.takeError());
  }
  ordered_json J = ordered_json::object();
  J["activation"] = writeObserver(QC->Activation);
  J["weight"] = writeObserver(QC->Weight);
  if (QC->IsDynamic)
    J["is_dynamic"] = true;
  if (QC->IsWeightOnly)
    J["is_weight_only"] = true;
  return J;
}

std::string QConfigMapping::toJson() const {
  auto WritePairs = [](const QConfigList &List) {
    ordered_json A = ordered_json::array();
    for (const auto &[Key, QC] : List)
      A.push_back(ordered_json::array({Key, writeQConfig(QC)}));
    return A;
  };
  try {
    ordered_json Doc = ordered_json::object();
    if (HasGlobal)
      Doc[""] = writeQConfig(Global);
    Doc["object_type"] = WritePairs(ObjectTypes);
    Doc["module_name_regex"] = WritePairs(Regexes);
    Doc["module_name"] = WritePairs(ModuleNames);
    ordered_json Orders = ordered_json::array();
    for (const OrderEntry &E : this->Orders)
      Orders.push_back(ordered_json::array(
          {E.ModuleName, E.Type, E.Index, writeQConfig(E.QC)}));
    Doc["module_name_object_type_order"] = std::move(Orders);
    // Names must be UTF-8 in JSON; invalid bytes become U+FFFD rather than
    // failing the whole write.
    return Doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) +
           "\n";
  } catch (const ordered_json::exception &E) {
    // Only a bug can get here: the writer builds well-typed values.
    report_fatal_error(Twine("qconfig mapping serialization failed: ") +
                       E.what());
  }
}

} // namespace qfx
