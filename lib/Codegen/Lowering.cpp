//===- Lowering.cpp - Graph walk: types, fusion groups, values, fallback --===//
//
// compile() walks the graph once in order. Ops that fuse (a conv and the
// clamp, residual add or dequantize after it) form a group lowered as one
// step where its last member stands, so that every operand exists by then.
// Every value is bytes in a buffer plus a oneDNN descriptor; layouts are
// converted where a consumer needs another one, once per value.
//
//===----------------------------------------------------------------------===//

#include "Lowerer.h"
#include "PreLowering.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Flags.h"

#include "llvm/ADT/STLExtras.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <optional>

using namespace qfx;
using namespace qfx::codegen;
using dnnl::memory;
using Tag = memory::format_tag;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

memory::data_type codegen::toDnnl(DType T) {
  switch (T) {
  case DType::F32:
    return memory::data_type::f32;
  case DType::S8:
    return memory::data_type::s8;
  case DType::U8:
    return memory::data_type::u8;
  case DType::S32:
    return memory::data_type::s32;
  case DType::S64:
    break;
  }
  llvm_unreachable("s64 values are rejected before they reach oneDNN");
}

memory::desc codegen::makeDesc(DType T, llvm::ArrayRef<int64_t> Dims,
                               Layout L) {
  if (T == DType::S64) {
    // arith family: oneDNN has no s64; index tensors (embedding's input)
    // travel as their bytes, read only by host kernels.
    memory::dims Bytes{std::max<int64_t>(1, numElements(Dims)) * 2};
    return memory::desc(Bytes, memory::data_type::s32, Tag::a);
  }
  memory::dims D(Dims.begin(), Dims.end());
  if (D.empty())
    D.push_back(1);
  if (L == Layout::Blocked) {
    assert(D.size() == 4 && T == DType::F32 && "Blocked is f32 4-d");
    return memory::desc(D, toDnnl(T), Tag::nChw16c);
  }
  if (L == Layout::NHWC) {
    assert(hasChannelsLast(Dims) && "NHWC is a 3-d or 4-d layout");
    // Rank 3 ([N, C, L], the conv family's 1-d ops): channels last is nwc.
    return memory::desc(D, toDnnl(T), D.size() == 3 ? Tag::nwc : Tag::nhwc);
  }
  memory::dims Strides(D.size());
  int64_t Stride = 1;
  for (size_t I = D.size(); I-- > 0;) {
    Strides[I] = Stride;
    Stride *= D[I];
  }
  return memory::desc(D, toDnnl(T), Strides);
}

llvm::Error codegen::nodeError(const Node &N, const llvm::Twine &Msg) {
  return makeError("node '" + N.name() + "': " + Msg);
}

void RealClamp::intersect(double L, double H) {
  Lo = std::max(Lo, L);
  Hi = std::min(Hi, H);
  Active = true;
}

std::string Group::name() const {
  std::string S;
  for (const Node *M : Members)
    S += (S.empty() ? "" : "+") + M->name().str();
  return S;
}

bool codegen::hasChannelsLast(llvm::ArrayRef<int64_t> Dims) {
  return Dims.size() == 3 || Dims.size() == 4;
}

bool codegen::layoutsAgree(llvm::ArrayRef<int64_t> Dims) {
  if (!hasChannelsLast(Dims) || Dims[1] == 1)
    return true;
  return Dims.size() == 3 ? Dims[2] == 1 : Dims[2] * Dims[3] == 1;
}

static TensorType tensorType(const Tensor &T) {
  return TensorType{T.dtype(), Shape(T.shape().begin(), T.shape().end()),
                    T.quant()};
}

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

const Node *codegen::firstOperandUser(const Node &N) {
  if (N.users().size() != 1)
    return nullptr;
  const Node *U = N.users()[0];
  if (U->op() == OpCode::Output || !U->numArgs() || !U->arg(0).isNode() ||
      U->arg(0).getNode() != &N)
    return nullptr;
  return U;
}

namespace {

/// Operands for type inference: node references become declared tensors of
/// the node's (possibly re-inferred) type.
class DeclaredOperands {
public:
  explicit DeclaredOperands(const Lowerer &L) : L(L) {}

  llvm::Expected<Operand> get(const Argument &A) const {
    if (A.isNode()) {
      auto It = L.Types.find(A.getNode());
      if (It == L.Types.end())
        return makeError("operand '" + A.getNode()->name() +
                         "' is not a tensor");
      Tensor T = Tensor::declared(It->second.Dtype, It->second.Dims);
      T.setQuant(It->second.Quant);
      return Operand(T);
    }
    if (!A.isList())
      return Operand(A);
    bool HasNode = false;
    A.forEachNode([&](Node *) { HasNode = true; });
    if (!HasNode)
      return Operand(A);
    std::vector<Operand> Elems;
    for (const Argument &E : A.getList()) {
      auto O = get(E);
      if (!O)
        return O.takeError();
      Elems.push_back(std::move(*O));
    }
    return Operand::list(std::move(Elems));
  }

  llvm::Expected<std::vector<Operand>>
  positional(llvm::ArrayRef<Argument> Args) const {
    std::vector<Operand> R;
    for (const Argument &A : Args) {
      auto O = get(A);
      if (!O)
        return O.takeError();
      R.push_back(std::move(*O));
    }
    return R;
  }

  llvm::Expected<std::vector<std::pair<std::string, Operand>>>
  keywords(const Kwargs &KW) const {
    std::vector<std::pair<std::string, Operand>> R;
    for (const auto &KV : KW) {
      auto O = get(KV.second);
      if (!O)
        return O.takeError();
      R.emplace_back(KV.first, std::move(*O));
    }
    return R;
  }

private:
  const Lowerer &L;
};

} // namespace

llvm::Expected<std::pair<const OpDef *, BoundArgs>>
Lowerer::bindDeclared(const Node &N) const {
  DeclaredOperands D(*this);
  auto Pos = D.positional(N.args());
  if (!Pos)
    return Pos.takeError();
  if (N.op() == OpCode::CallModule) {
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M)
      return makeError("no module '" + N.target() + "'");
    return bindModuleCall(*M, std::move(*Pos));
  }
  const OpDef *Def = lookupOp(N.target());
  if (!Def)
    return makeError("unknown op '" + N.target() + "'");
  auto KW = D.keywords(N.kwargs());
  if (!KW)
    return KW.takeError();
  auto B = bindArgs(*Def, std::move(*Pos), std::move(*KW));
  if (!B)
    return B.takeError();
  return std::make_pair(Def, std::move(*B));
}

/// The result type of \p N from the op table (for a batch override).
static llvm::Expected<TensorType> inferType(const Lowerer &L, const Node &N) {
  DeclaredOperands D(L);
  auto Pos = D.positional(N.args());
  if (!Pos)
    return Pos.takeError();
  if (N.op() == OpCode::CallModule)
    return inferModule(L.GM, N.target(), std::move(*Pos));
  auto KW = D.keywords(N.kwargs());
  if (!KW)
    return KW.takeError();
  return inferOp(N.target(), std::move(*Pos), std::move(*KW));
}

/// The type placeholder number \p Index of \p N takes under \p Opts.
static llvm::Expected<TensorType> placeholderType(const Node &N, size_t Index,
                                                  const CompileOptions &Opts) {
  if (!N.type())
    return nodeError(N, "placeholder has no type; compile needs the "
                        "input shapes");
  TensorType T = *N.type();
  if (!Opts.InputShapes.empty()) {
    const Shape &S = Opts.InputShapes[Index];
    if (S.size() != T.Dims.size())
      return nodeError(N, "input shape " + formatShape(S) + " has rank " +
                              llvm::Twine(S.size()) + " but the placeholder " +
                              "has rank " + llvm::Twine(T.Dims.size()));
    T.Dims = S;
  } else if (Opts.BatchSize > 0 && !T.Dims.empty()) {
    T.Dims[0] = Opts.BatchSize;
  }
  return T;
}

llvm::Error Lowerer::computeTypes() {
  size_t NumPlaceholders = GM.graph().placeholders().size();
  if (!Opts.InputShapes.empty() && Opts.InputShapes.size() != NumPlaceholders)
    return makeError(
        "compile options give " + llvm::Twine(Opts.InputShapes.size()) +
        " input shapes for " + llvm::Twine(NumPlaceholders) + " placeholders");
  // Types downstream are inferred again once a placeholder's shape changed
  // (nodes before it cannot depend on it).
  bool Reinfer = Opts.BatchSize > 0;
  size_t Index = 0;
  for (const Node &N : GM.graph()) {
    switch (N.op()) {
    case OpCode::Output:
      continue;
    case OpCode::GetAttr: {
      const Tensor *T = GM.lookupTensor(N.target());
      if (!T)
        return nodeError(N, "no tensor '" + N.target() + "'");
      Types[&N] = tensorType(*T);
      continue;
    }
    case OpCode::Placeholder: {
      auto T = placeholderType(N, Index++, Opts);
      if (!T)
        return T.takeError();
      Reinfer |= T->Dims != N.type()->Dims;
      Types[&N] = std::move(*T);
      continue;
    }
    default:
      break;
    }
    if (!Reinfer) {
      if (!N.type())
        return nodeError(N, "has no type; compile needs a typed graph");
      Types[&N] = *N.type();
      continue;
    }
    auto T = inferType(*this, N);
    if (!T)
      return prefixError(T.takeError(),
                         ("node '" + N.name() + "': batch override").str());
    Types[&N] = *T;
  }
  return llvm::Error::success();
}

const TensorType &Lowerer::typeOf(const Node *N) const {
  auto It = Types.find(N);
  assert(It != Types.end() && "type of a node that produces no tensor");
  return It->second;
}

//===----------------------------------------------------------------------===//
// Fusion groups
//===----------------------------------------------------------------------===//

llvm::Expected<std::pair<double, double>>
Lowerer::clampBounds(const Node &N, ClampKind K) const {
  constexpr double Inf = std::numeric_limits<double>::infinity();
  switch (K) {
  case ClampKind::None:
  case ClampKind::Relu:
    return std::make_pair(0.0, Inf);
  case ClampKind::Relu6:
    return std::make_pair(0.0, 6.0);
  case ClampKind::Hardtanh:
    break;
  }
  auto B = bindDeclared(N);
  if (!B)
    return nodeError(N, llvm::toString(B.takeError()));
  auto Lo = B->second.real(1);
  if (!Lo)
    return nodeError(N, llvm::toString(Lo.takeError()));
  auto Hi = B->second.real(2);
  if (!Hi)
    return nodeError(N, llvm::toString(Hi.takeError()));
  if (*Lo > *Hi)
    return nodeError(N, "hardtanh min_val exceeds max_val");
  return std::make_pair(*Lo, *Hi);
}

/// The operand of `add(a, b)` other than \p Cur, when the add is a plain
/// same-shape f32 tensor add that a sum post-op computes exactly.
static const Node *sumOperand(const Lowerer &L, const Node &Add,
                              const Node *Cur) {
  if (Add.numArgs() != 2 || !Add.arg(0).isNode() || !Add.arg(1).isNode())
    return nullptr;
  for (const auto &KV : Add.kwargs())
    if (KV.first != "alpha" || !KV.second.isInt() || KV.second.getInt() != 1)
      return nullptr;
  const Node *A = Add.arg(0).getNode(), *B = Add.arg(1).getNode();
  if (A == B)
    return nullptr;
  const Node *Other = A == Cur ? B : B == Cur ? A : nullptr;
  if (!Other)
    return nullptr;
  const TensorType &T = L.typeOf(Other), &C = L.typeOf(Cur);
  if (T.Dtype != DType::F32 || C.Dtype != DType::F32 || T.Dims != C.Dims)
    return nullptr;
  return Other;
}

/// The scalar of `mul(Cur, c)` when \p U is one on f32 (a post-op scale).
static std::optional<double> scalarFactor(const Lowerer &L, const Node &U,
                                          const Node *Cur) {
  if (U.op() != OpCode::CallFunction || U.target() != "mul" ||
      U.numArgs() != 2 || !U.kwargs().empty() || !U.arg(0).isNode() ||
      U.arg(0).getNode() != Cur || L.typeOf(Cur).Dtype != DType::F32)
    return std::nullopt;
  const Argument &C = U.arg(1);
  if (C.isFloat())
    return C.getFloat();
  if (C.isInt())
    return double(C.getInt());
  return std::nullopt;
}

/// The form of gelu \p U applies to \p Cur (None if it is not a gelu).
static Group::GeluKind geluKind(const Lowerer &L, const Node &U,
                                const Node *Cur) {
  const LoweringRule *R = lookupLoweringRule(U, L.GM);
  if (!R || R->Kind != LowerKind::Gelu || !U.numArgs() || !U.arg(0).isNode() ||
      U.arg(0).getNode() != Cur)
    return Group::GeluKind::None;
  auto B = L.bindDeclared(U);
  if (!B) {
    llvm::consumeError(B.takeError());
    return Group::GeluKind::None;
  }
  const Operand &A = B->second.operand(1);
  if (A.isTensor() || A.isList() || !A.arg().isString())
    return Group::GeluKind::None;
  if (A.arg().getString() == "tanh")
    return Group::GeluKind::Tanh;
  return A.arg().getString() == "none" ? Group::GeluKind::Erf
                                       : Group::GeluKind::None;
}

std::optional<Group> Lowerer::growGroup(const Node &Anchor,
                                        const LoweringRule &R, bool Grow) {
  Group G;
  G.Anchor = &Anchor;
  G.Rule = &R;
  G.Members = {&Anchor};
  if (R.BuiltinSum) {
    if (Anchor.numArgs() < 2 || !Anchor.arg(1).isNode())
      return std::nullopt;
    G.SumOther = Anchor.arg(1).getNode();
  }
  if (R.Clamp != ClampKind::None) {
    auto C = clampBounds(Anchor, R.Clamp);
    if (!C) {
      llvm::consumeError(C.takeError());
      return std::nullopt;
    }
    G.Clamp.intersect(C->first, C->second);
  }
  if (!Opts.FusePostOps || !Grow)
    return G;
  const Node *Cur = &Anchor;
  while (Cur->users().size() == 1) {
    const Node *U = Cur->users()[0];
    if (U->op() == OpCode::Output || GroupOf.count(U))
      break;
    // Transformer post-ops: matmul * c, and a gelu (also after a fused
    // dequantize, on the real values).
    if (std::optional<double> C = scalarFactor(*this, *U, Cur);
        C && (R.PostOps & PostScale) &&
        G.Members.size() == (G.Dequant ? 2u : 1u)) {
      G.OutScale *= *C;
      G.Members.push_back(U);
      Cur = U;
      continue;
    }
    if (auto Gk = geluKind(*this, *U, Cur);
        Gk != Group::GeluKind::None && (R.PostOps & PostGelu) && !G.SumOther &&
        G.Acts.empty() && G.Gelu == Group::GeluKind::None &&
        typeOf(U).Dtype == DType::F32 && (typeOf(Cur).Dtype == DType::F32)) {
      G.Gelu = Gk;
      G.Members.push_back(U);
      Cur = U;
      continue;
    }
    if (G.Dequant)
      break;
    const LoweringRule *RU = lookupLoweringRule(*U, GM);
    if (!RU || !U->numArgs() || !U->arg(0).isNode())
      break;
    if (G.Gelu != Group::GeluKind::None)
      break; // post-ops run in order: nothing may follow the gelu
    if (RU->Kind == LowerKind::Activation) {
      if (!growActivation(G, *U, *RU, Cur))
        break;
    } else if (!G.Acts.empty() && RU->Kind != LowerKind::Dequantize) {
      break; // clamps and sums apply before activations
    } else if (RU->Kind == LowerKind::Eltwise &&
               (R.PostOps & (PostEltwise | PostRelu)) &&
               U->arg(0).getNode() == Cur && typeOf(U) == typeOf(Cur)) {
      auto C = clampBounds(*U, RU->Clamp);
      if (!C) {
        llvm::consumeError(C.takeError());
        break;
      }
      bool IsRelu = RU->Clamp == ClampKind::Relu && !G.Clamp.Active;
      if (!(R.PostOps & PostEltwise) && !IsRelu)
        break;
      G.Clamp.intersect(C->first, C->second);
    } else if (RU->Kind == LowerKind::Add && U->target() == "add" &&
               (R.PostOps & PostSum) && !G.SumOther && !G.Clamp.Active) {
      G.SumOther = sumOperand(*this, *U, Cur);
      if (!G.SumOther)
        break;
    } else if (RU->Kind == LowerKind::Dequantize && (R.PostOps & PostDequant) &&
               !G.SumOther && Opts.FuseDequantize && !prefersTable(*U) &&
               softmaxIsland(*U).empty()) {
      G.Dequant = true;
      G.Members.push_back(U);
      growFloatIsland(G, *U);
      if (!G.Acts.empty())
        break; // the float island's quantize ends the group
      Cur = U;
      continue;
    } else {
      break;
    }
    G.Members.push_back(U);
    Cur = U;
  }
  return G;
}

/// Kinds that fuse the ops after them.
static bool isAnchor(LowerKind K) {
  return K == LowerKind::Conv || K == LowerKind::Deconv ||
         K == LowerKind::Linear || K == LowerKind::LinearDynamic ||
         K == LowerKind::Add || K == LowerKind::BatchNorm ||
         K == LowerKind::Matmul;
}

void Lowerer::planGroups() {
  for (const Node &N : GM.graph()) {
    if (GroupOf.count(&N))
      continue;
    const LoweringRule *R = lookupLoweringRule(N, GM);
    if (!R || !isAnchor(R->Kind))
      continue;
    std::optional<Group> G = growGroup(N, *R, /*Grow=*/true);
    if (!G || G->Members.size() == 1)
      continue;
    for (const Node *M : G->Members)
      GroupOf[M] = Groups.size();
    Groups.push_back(std::move(*G));
  }
}

//===----------------------------------------------------------------------===//
// Values and layouts
//===----------------------------------------------------------------------===//

int Lowerer::addValue(Value V) {
  Vals.push_back(std::move(V));
  return static_cast<int>(Vals.size()) - 1;
}

int Lowerer::newValue(DType Dt, llvm::ArrayRef<int64_t> Dims, Layout L,
                      const QuantParams &Q, const std::string &Name) {
  Value V;
  V.Md = makeDesc(Dt, Dims, L);
  V.Buf = P.addBuffer(BufferKind::Arena, V.Md.get_size(), Name);
  V.Dt = Dt;
  V.Dims.assign(Dims.begin(), Dims.end());
  V.Q = Q;
  V.L = L;
  return addValue(std::move(V));
}

void Lowerer::bindNode(const Node *N, int V) {
  ValOf[N] = V;
  BufNodes[Vals[V].Buf].push_back(N);
}

llvm::Expected<int> Lowerer::valueOf(const Node *N) const {
  auto It = ValOf.find(N);
  if (It == ValOf.end())
    return makeError("operand '" + N->name() + "' has no tensor value");
  return It->second;
}

int Lowerer::inLayout(int V, Layout L) {
  bool Permuted = Vals[V].PermSource >= 0;
  if (!Permuted && (Vals[V].L == L || !hasChannelsLast(Vals[V].Dims)))
    return V;
  auto Key = std::make_pair(V, static_cast<int>(L));
  auto It = Converted.find(Key);
  if (It != Converted.end())
    return It->second;
  const Value X = Vals[V];
  int R;
  if (Permuted) {
    R = viewAs(inLayout(X.PermSource, Layout::Plain), X.Dims);
    Vals[R].Q = X.Q;
  } else if (layoutsAgree(X.Dims) && X.L != Layout::Blocked &&
             L != Layout::Blocked) {
    Value Y = X;
    Y.Md = makeDesc(X.Dt, X.Dims, L);
    Y.L = L;
    R = addValue(std::move(Y));
  } else {
    std::string Name =
        P.Buffers[X.Buf].Name + (L == Layout::NHWC    ? ".nhwc"
                                 : L == Layout::Plain ? ".nchw"
                                                      : ".blocked");
    R = newValue(X.Dt, X.Dims, L, X.Q, Name);
    addReorder(V, R, dnnl::primitive_attr(), Name, "reorder");
    Shared.resize(P.Buffers.size(), false);
    Shared[Vals[R].Buf] = true;
  }
  Converted[Key] = R;
  return R;
}

int Lowerer::linearInput(int V, std::optional<std::array<int64_t, 3>> &Perm) {
  int S = Vals[V].PermSource;
  if (S < 0)
    return inLayout(V, Layout::Plain);
  const Shape &D = Vals[S].Dims;
  Perm = std::array<int64_t, 3>{D[1], D[2], D[3]};
  return V;
}

int Lowerer::viewAs(int V, llvm::ArrayRef<int64_t> Dims) {
  Value Y = Vals[V];
  assert(Y.L == Layout::Plain && "views need a plain layout");
  assert(numElements(Dims) == numElements(Y.Dims) && "view changes size");
  Y.Dims.assign(Dims.begin(), Dims.end());
  Y.Md = makeDesc(Y.Dt, Dims, Layout::Plain);
  Y.PermSource = -1;
  return addValue(std::move(Y));
}

bool Lowerer::bufferDeadAfter(int Buf, size_t At) const {
  if (P.Buffers[Buf].Kind != BufferKind::Arena ||
      (Buf < static_cast<int>(Shared.size()) && Shared[Buf]))
    return false;
  auto It = BufNodes.find(Buf);
  if (It == BufNodes.end())
    return true;
  return llvm::all_of(It->second,
                      [&](const Node *N) { return LastUse.lookup(N) <= At; });
}

//===----------------------------------------------------------------------===//
// Steps
//===----------------------------------------------------------------------===//

MemArg Lowerer::arg(int ArgId, int V) const {
  return {ArgId, Vals[V].Buf, Vals[V].Offset, Vals[V].Md};
}

PrimitiveStep &Lowerer::addPrimitive(const dnnl::primitive_desc_base &PD,
                                     dnnl::primitive Prim, std::string Name,
                                     std::string Kind,
                                     std::vector<MemArg> Args) {
  auto S = std::make_unique<PrimitiveStep>();
  S->Info.Name = std::move(Name);
  S->Info.Kind = std::move(Kind);
  S->Info.IsPrimitive = true;
  // The lowering creates every primitive for one thread, so the weights
  // take one thread's layouts; more threads need primitives of their own,
  // created for that count over the same layouts. A step without one stays
  // on fewer threads, which never collapses on a busy machine.
  PrimitiveVariant Own;
  Own.Threads = 1;
  Own.Prim = std::move(Prim);
  Own.Scratch = PD.scratchpad_desc();
  Own.Impl = PD.impl_info_str();
  S->Variants.push_back(std::move(Own));
  for (int T : threadLadder(P.Budget))
    if (T > 1)
      if (auto V = recreatePrimitive(PD, T, Args, P.Engine))
        S->Variants.push_back(std::move(*V));
  for (const PrimitiveVariant &V : S->Variants)
    S->Candidates.push_back(V.Threads);
  S->Info.Impl = S->Variants.back().Impl;
  for (const MemArg &A : Args)
    (A.Arg == DNNL_ARG_DST ? S->Writes : S->Reads).push_back(A.Buf);
  S->Args = std::move(Args);
  PrimitiveStep &Ref = *S;
  P.Steps.push_back(std::move(S));
  return Ref;
}

HostStep &Lowerer::addHost(std::string Name, std::string Kind,
                           std::function<llvm::Error(Program &)> Fn,
                           std::vector<int> Reads, std::vector<int> Writes) {
  auto S = std::make_unique<HostStep>();
  S->Info.Name = std::move(Name);
  S->Info.Kind = std::move(Kind);
  S->Fn = std::move(Fn);
  // Host kernels' parallel regions take OpenMP's count at run time.
  S->Candidates = threadLadder(P.Budget);
  S->Reads = std::move(Reads);
  S->Writes = std::move(Writes);
  HostStep &Ref = *S;
  P.Steps.push_back(std::move(S));
  return Ref;
}

/// Whether \p Attr gives the source or the destination a zero point.
static bool hasZeroPoints(const dnnl::primitive_attr &Attr) {
  for (int Arg : {DNNL_ARG_SRC, DNNL_ARG_DST}) {
    int Mask = 0;
    std::vector<int32_t> Zps;
    Attr.get_zero_points(Arg, Mask, Zps);
    if (llvm::any_of(Zps, [](int32_t Z) { return Z != 0; }))
      return true;
  }
  return false;
}

std::optional<memory::dims> codegen::plainStrides(const memory::desc &Md) {
  const dnnl_memory_desc_t &D = Md.data;
  if (D.format_kind != dnnl_blocked || D.format_desc.blocking.inner_nblks)
    return std::nullopt;
  return memory::dims(D.format_desc.blocking.strides,
                      D.format_desc.blocking.strides + D.ndims);
}

void Lowerer::addReorder(int From, int To, const dnnl::primitive_attr &Attr,
                         std::string Name, std::string Kind) {
  // oneDNN 2.6's jit reorder drops zero points when it also changes the
  // byte order of some 3-d shapes (f32 [2, 17, 64] ncw to u8 nwc quantizes
  // as if the zero point were 0; the 4-d nchw / nhwc reorders we checked are
  // right): move the bytes first, in the source's type and the
  // destination's order, then requantize with no change of order.
  std::optional<memory::dims> ToStrides = plainStrides(Vals[To].Md);
  if (Vals[To].Dims.size() == 3 && hasZeroPoints(Attr) && ToStrides &&
      plainStrides(Vals[From].Md) != ToStrides) {
    Value Mid = Vals[From];
    Mid.Md = memory::desc(Vals[To].Md.dims(), toDnnl(Mid.Dt), *ToStrides);
    Mid.Dims = Vals[To].Dims;
    Mid.L = Vals[To].L;
    Mid.Offset = 0;
    Mid.PermSource = -1;
    Mid.Strided = false;
    Mid.Buf =
        P.addBuffer(BufferKind::Arena, Mid.Md.get_size(), Name + ".order");
    int M = addValue(std::move(Mid));
    addReorder(From, M, dnnl::primitive_attr(), Name + ".order", "reorder");
    From = M;
  }
  dnnl::primitive_attr A = Attr;
  A.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc PD(P.Engine, Vals[From].Md, P.Engine,
                                   Vals[To].Md, A);
  addPrimitive(PD, dnnl::reorder(PD), std::move(Name), std::move(Kind),
               {arg(DNNL_ARG_FROM, From), arg(DNNL_ARG_TO, To)});
}

int Lowerer::addConstant(const Tensor &T, const memory::desc &UserMd,
                         const memory::desc &Md, const std::string &Name) {
  assert(T.hasData() && UserMd.get_size() == T.byteSize() &&
         "constant does not match its descriptor");
  int Id = P.addConstant(Md.get_size(), Name);
  // The reorder, not a copy: a primitive's weight layout may carry extra
  // data (compensation for s8 or zero-point sources) that it computes.
  memory User(UserMd, P.Engine, const_cast<void *>(T.rawData()));
  memory Dst(Md, P.Engine, P.Buffers[Id].Storage.rawData());
  dnnl::reorder(User, Dst).execute(P.Stream, User, Dst);
  P.Stream.wait();
  return Id;
}

//===----------------------------------------------------------------------===//
// Inputs, constants, views, outputs
//===----------------------------------------------------------------------===//

llvm::Error Lowerer::lowerPlaceholder(const Node &N, int Index) {
  const TensorType &T = typeOf(&N);
  Value V;
  V.Md = makeDesc(T.Dtype, T.Dims, Layout::Plain);
  V.Buf =
      P.addBuffer(BufferKind::Input, V.Md.get_size(), N.name().str(), Index);
  V.Dt = T.Dtype;
  V.Dims = T.Dims;
  V.Q = T.Quant;
  bindNode(&N, addValue(V));
  P.Inputs.push_back({V.Buf, T.Dtype, T.Dims, T.Quant, N.name().str()});
  return llvm::Error::success();
}

llvm::Error Lowerer::lowerGetAttr(const Node &N) {
  const Tensor *T = GM.lookupTensor(N.target());
  if (!T || !T->hasData())
    return nodeError(N, "tensor '" + N.target() + "' has no data");
  memory::desc Md = makeDesc(T->dtype(), T->shape(), Layout::Plain);
  Value V;
  V.Buf = addConstant(*T, Md, Md, N.target().str());
  V.Md = Md;
  V.Dt = T->dtype();
  V.Dims.assign(T->shape().begin(), T->shape().end());
  V.Q = T->quant();
  bindNode(&N, addValue(V));
  return llvm::Error::success();
}

llvm::Error Lowerer::lowerAlias(const Node &N) {
  auto B = bindDeclared(N);
  if (!B)
    return nodeError(N, llvm::toString(B.takeError()));
  // Training-mode dropout is random: the op table runs it.
  if (llvm::StringRef(B->first->Name) == "dropout") {
    auto Training = B->second.boolean(2);
    if (!Training)
      return nodeError(N, llvm::toString(Training.takeError()));
    if (*Training)
      return lowerFallback(N, "training-mode dropout is random, no oneDNN "
                              "lowering");
  }
  auto X = valueOf(N.arg(0).getNode());
  if (!X)
    return X.takeError();
  bindNode(&N, *X);
  return llvm::Error::success();
}

/// Whether view \p N flattens NHWC value \p X to [N, C*H*W] for linears
/// only (each reading it as its input).
static bool flattensForLinears(const Lowerer &L, const Node &N, const Value &X,
                               llvm::ArrayRef<int64_t> Dims) {
  if (X.L != Layout::NHWC || X.Dims.size() != 4 || layoutsAgree(X.Dims) ||
      Dims.size() != 2 || Dims[0] != X.Dims[0] || !N.hasUsers())
    return false;
  return llvm::all_of(N.users(), [&](const Node *U) {
    const LoweringRule *R = lookupLoweringRule(*U, L.GM);
    bool Linear = R && (R->Kind == LowerKind::Linear ||
                        R->Kind == LowerKind::LinearDynamic);
    auto Ins = U->inputs();
    return Linear && Ins.size() == 1 && Ins[0] == &N;
  });
}

llvm::Error Lowerer::lowerView(const Node &N) {
  auto X = valueOf(N.arg(0).getNode());
  if (!X)
    return X.takeError();
  const TensorType &T = typeOf(&N);
  if (numElements(T.Dims) != numElements(Vals[*X].Dims))
    return nodeError(N, "view changes the element count");
  if (flattensForLinears(*this, N, Vals[*X], T.Dims)) {
    // No copy to NCHW order: the linears permute their weights instead.
    Value V = Vals[*X];
    V.Dims = T.Dims;
    V.Md = makeDesc(V.Dt, T.Dims, Layout::Plain);
    V.L = Layout::Plain;
    V.Q = T.Quant;
    V.PermSource = *X;
    bindNode(&N, addValue(std::move(V)));
    return llvm::Error::success();
  }
  int V = viewAs(inLayout(*X, Layout::Plain), T.Dims);
  Vals[V].Q = T.Quant;
  bindNode(&N, V);
  return llvm::Error::success();
}

/// The output nodes (one, or a list).
static llvm::Expected<std::vector<const Node *>> outputNodes(const Node &N) {
  std::vector<const Node *> R;
  if (N.numArgs() != 1)
    return nodeError(N, "output takes one argument");
  const Argument &A = N.arg(0);
  if (A.isNode())
    return std::vector<const Node *>{A.getNode()};
  if (A.isList())
    for (const Argument &E : A.getList())
      if (E.isNode())
        R.push_back(E.getNode());
  if (R.empty() || (A.isList() && R.size() != A.getList().size()))
    return nodeError(N, "output must be a tensor or a list of tensors");
  return R;
}

llvm::Error Lowerer::lowerOutputs(const Node &N) {
  auto Outs = outputNodes(N);
  if (!Outs)
    return Outs.takeError();
  std::vector<bool> Claimed(P.Buffers.size(), false);
  for (size_t K = 0; K < Outs->size(); ++K) {
    const Node *O = (*Outs)[K];
    auto V = valueOf(O);
    if (!V)
      return nodeError(N, llvm::toString(V.takeError()));
    if (Vals[*V].PermSource >= 0 || Vals[*V].L == Layout::Blocked)
      *V = inLayout(*V, Layout::Plain);
    const Value X = Vals[*V];
    Buffer &B = P.Buffers[X.Buf];
    // The producer writes straight into the caller's tensor when the value
    // is a whole arena buffer in plain order.
    bool Own = B.Kind == BufferKind::Arena && X.Offset == 0 &&
               B.Bytes == X.Md.get_size() &&
               (X.L == Layout::Plain || layoutsAgree(X.Dims)) &&
               !Claimed[X.Buf];
    int OutBuf;
    if (Own) {
      B.Kind = BufferKind::Output;
      B.Index = static_cast<int>(K);
      OutBuf = X.Buf;
    } else {
      Value Y = X;
      Y.Md = makeDesc(X.Dt, X.Dims, Layout::Plain);
      Y.L = Layout::Plain;
      Y.Offset = 0;
      Y.Buf = P.addBuffer(BufferKind::Output, Y.Md.get_size(),
                          O->name().str() + ".out", static_cast<int>(K));
      OutBuf = Y.Buf;
      addReorder(*V, addValue(std::move(Y)), dnnl::primitive_attr(),
                 O->name().str(), "output");
    }
    Claimed.resize(P.Buffers.size(), false);
    Claimed[OutBuf] = true;
    P.Outputs.push_back({OutBuf, X.Dt, X.Dims, X.Q, O->name().str()});
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// The op-table fallback
//===----------------------------------------------------------------------===//

namespace {

/// An operand of a fallback call: a constant, a value of the program, or a
/// list of those.
struct ArgTemplate {
  enum class Kind : uint8_t { Const, Val, List } K = Kind::Const;
  Argument Const;
  int Buf = -1;
  size_t Offset = 0;
  DType Dt = DType::F32;
  Shape Dims;
  QuantParams Q;
  std::vector<ArgTemplate> Elems;

  Operand materialize(Program &P) const {
    switch (K) {
    case Kind::Const:
      return Operand(Const);
    case Kind::Val: {
      Tensor T(Dt, Dims);
      std::memcpy(T.rawData(), P.address(Buf, Offset), T.byteSize());
      T.setQuant(Q);
      return Operand(T);
    }
    case Kind::List: {
      std::vector<Operand> Ops;
      for (const ArgTemplate &E : Elems)
        Ops.push_back(E.materialize(P));
      return Operand::list(std::move(Ops));
    }
    }
    llvm_unreachable("covered switch");
  }
};

} // namespace

/// The fallback operand for argument \p A: values in plain layout, their
/// buffers added to \p Reads; \p Reordered is set when one needs a copy
/// out of NHWC order (part of the fallback's cost, so it is reported).
static llvm::Expected<ArgTemplate> fallbackOperand(Lowerer &L,
                                                   const Argument &A,
                                                   std::vector<int> &Reads,
                                                   bool &Reordered) {
  ArgTemplate T;
  if (A.isNode()) {
    auto V = L.valueOf(A.getNode());
    if (!V)
      return V.takeError();
    const Value &In = L.Vals[*V];
    if (In.PermSource >= 0 || (In.L == Layout::NHWC && !layoutsAgree(In.Dims)))
      Reordered = true;
    int P = L.inLayout(*V, Layout::Plain);
    if (L.Vals[P].IntF32) // Reference kernels read the int8 codes.
      P = L.codesAsInt8(P);
    const Value X = L.Vals[P];
    T.K = ArgTemplate::Kind::Val;
    T.Buf = X.Buf;
    T.Offset = X.Offset;
    T.Dt = X.Dt;
    T.Dims = X.Dims;
    T.Q = X.Q;
    Reads.push_back(X.Buf);
    return T;
  }
  bool HasNode = false;
  A.forEachNode([&](Node *) { HasNode = true; });
  if (!HasNode) {
    T.Const = A;
    return T;
  }
  T.K = ArgTemplate::Kind::List;
  for (const Argument &E : A.getList()) {
    auto Sub = fallbackOperand(L, E, Reads, Reordered);
    if (!Sub)
      return Sub.takeError();
    T.Elems.push_back(std::move(*Sub));
  }
  return T;
}

llvm::Error Lowerer::lowerFallback(const Node &N, llvm::StringRef Why) {
  // Type inference also checks that the op table can run the node at all.
  auto Infer = inferType(*this, N);
  if (!Infer)
    return prefixError(Infer.takeError(),
                       ("node '" + N.name() + "': " + Why).str());
  std::vector<int> Reads;
  std::vector<ArgTemplate> Args;
  std::vector<std::pair<std::string, ArgTemplate>> KW;
  bool Reordered = false;
  for (const Argument &A : N.args()) {
    auto T = fallbackOperand(*this, A, Reads, Reordered);
    if (!T)
      return nodeError(N, llvm::toString(T.takeError()));
    Args.push_back(std::move(*T));
  }
  for (const auto &KV : N.kwargs()) {
    auto T = fallbackOperand(*this, KV.second, Reads, Reordered);
    if (!T)
      return nodeError(N, llvm::toString(T.takeError()));
    KW.emplace_back(KV.first, std::move(*T));
  }
  const TensorType &OutT = typeOf(&N);
  int Out = newValue(OutT.Dtype, OutT.Dims, Layout::Plain, OutT.Quant,
                     N.name().str());
  bool IsModule = N.op() == OpCode::CallModule;
  if (IsModule && !P.Source)
    P.Source = GM.clone();
  std::string Target = N.target().str();
  const Value OutV = Vals[Out];
  auto Fn = [=](Program &Prog) -> llvm::Error {
    std::vector<Operand> Ops;
    for (const ArgTemplate &A : Args)
      Ops.push_back(A.materialize(Prog));
    std::vector<std::pair<std::string, Operand>> Kw;
    for (const auto &KV : KW)
      Kw.emplace_back(KV.first, KV.second.materialize(Prog));
    auto R = IsModule ? runModule(*Prog.Source, Target, std::move(Ops))
                      : runOp(Target, std::move(Ops), std::move(Kw));
    if (!R)
      return R.takeError();
    if (R->dtype() != OutV.Dt ||
        R->shape() != llvm::ArrayRef<int64_t>(OutV.Dims))
      return makeError("op-table result " + dtypeName(R->dtype()) +
                       formatShape(R->shape()) + " differs from the compiled " +
                       dtypeName(OutV.Dt) + formatShape(OutV.Dims));
    std::memcpy(Prog.address(OutV.Buf, OutV.Offset), R->rawData(),
                R->byteSize());
    return llvm::Error::success();
  };
  HostStep &S = addHost(N.name().str(), "fallback", std::move(Fn),
                        std::move(Reads), {OutV.Buf});
  S.Info.Detail = Why.str();
  std::string Reason = (Why + "; runs the op-table kernel on the host").str();
  if (Reordered)
    Reason += " with reorders to plain layout";
  P.Fallbacks.push_back({N.name().str(), opName(N), std::move(Reason)});
  bindNode(&N, Out);
  return llvm::Error::success();
}

std::string Lowerer::opName(const Node &N) const {
  if (N.op() == OpCode::CallModule)
    if (const ModuleInfo *M = GM.lookupModule(N.target()))
      return M->kind().str();
  return N.target().str();
}

/// Observer and fake-quant kinds, by PyTorch's naming (as BackendConfig
/// does: Codegen sits below the Quant layer that knows them precisely).
static bool isObserverKind(llvm::StringRef Kind) {
  return Kind.endswith("Observer") || Kind.endswith("FakeQuantize");
}

llvm::Error Lowerer::checkNoObservers() const {
  for (const Node &N : GM.graph()) {
    if (N.op() != OpCode::CallModule)
      continue;
    const ModuleInfo *M = GM.lookupModule(N.target());
    if (!M || !isObserverKind(M->kind()))
      continue;
    // Observers would run as reference kernels that only record statistics:
    // the graph was prepared (and maybe calibrated) but never converted.
    return makeError("graph still has observers (e.g. '" + N.target() + "', " +
                     M->kind() +
                     "): run convert (convert_fx / qopt --passes=convert) "
                     "before compiling");
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// The walk
//===----------------------------------------------------------------------===//

/// The node's first tensor operand (a list's first element), if typed.
static const Node *firstInput(const Lowerer &L, const Node &N) {
  if (!N.numArgs())
    return nullptr;
  const Argument *A = &N.arg(0);
  if (A->isList() && !A->getList().empty())
    A = &A->getList()[0];
  if (!A->isNode() || !L.Types.count(A->getNode()))
    return nullptr;
  return A->getNode();
}

/// The dtype of the node's first tensor operand (a list's first element).
static std::optional<DType> inputDType(const Lowerer &L, const Node &N) {
  if (const Node *In = firstInput(L, N))
    return L.typeOf(In).Dtype;
  return std::nullopt;
}

/// PyTorch's name for the dtype of \p N's first input ("quint8" for a
/// quantized u8 tensor), for fallback reasons.
static std::string inputDesc(const Lowerer &L, const Node &N) {
  const Node *In = firstInput(L, N);
  if (!In)
    return "no tensor";
  const TensorType &T = L.typeOf(In);
  switch (T.Dtype) {
  case DType::U8:
    return "quint8";
  case DType::S8:
    return "qint8";
  case DType::F32:
    return "float";
  default:
    return dtypeName(T.Dtype).str();
  }
}

/// Why \p N, which has a lowering rule, still needs the op table:
/// \p What names the missing piece.
static std::string fallbackWhy(const Lowerer &L, const Node &N,
                               llvm::StringRef What) {
  return (What + " for '" + L.opName(N) + "' (" + inputDesc(L, N) + " input)")
      .str();
}

/// "int8" or the dtype's name, for "no int8 oneDNN lowering".
static std::string loweringDtype(std::optional<DType> T) {
  if (!T)
    return "tensor";
  if (*T == DType::U8 || *T == DType::S8)
    return "int8";
  return dtypeName(*T).str();
}

llvm::Error Lowerer::lowerGroup(const Group &G) {
  auto Lowered = [&](const Group &G) -> llvm::Expected<bool> {
    std::optional<DType> In = inputDType(*this, *G.Anchor);
    if (!In || !supportsDType(*G.Rule, *In))
      return false;
    switch (G.Rule->Kind) {
    case LowerKind::Conv:
      return lowerConv(G);
    case LowerKind::Deconv:
      return lowerConvTranspose2d(G);
    case LowerKind::Linear:
      return lowerLinear(G);
    case LowerKind::LinearDynamic:
      return lowerLinearDynamic(G);
    case LowerKind::Add:
      return lowerAdd(G);
    case LowerKind::BatchNorm:
      return lowerBatchNorm(G);
    case LowerKind::Matmul:
      return lowerMatmul(G);
    default:
      llvm_unreachable("not a group anchor");
    }
  };
  auto Done = Lowered(G);
  if (!Done)
    return Done.takeError();
  if (*Done)
    return llvm::Error::success();
  // oneDNN refused the fusion or the op: the anchor alone, as a primitive if
  // it can be, then every other member on its own.
  std::optional<Group> Alone;
  if (G.Members.size() > 1)
    Alone = growGroup(*G.Anchor, *G.Rule, /*Grow=*/false);
  Done = Alone ? Lowered(*Alone) : false;
  if (!Done)
    return Done.takeError();
  if (!*Done)
    if (llvm::Error E = lowerFallback(
            *G.Anchor, fallbackWhy(*this, *G.Anchor,
                                   "no oneDNN primitive takes these "
                                   "parameters")))
      return E;
  for (size_t I = 1; I < G.Members.size(); ++I) {
    GroupOf.erase(G.Members[I]);
    if (llvm::Error E = lowerNode(*G.Members[I]))
      return E;
  }
  return llvm::Error::success();
}

llvm::Error Lowerer::lowerNode(const Node &N) {
  auto GI = GroupOf.find(&N);
  if (GI != GroupOf.end()) {
    const Group &G = Groups[GI->second];
    return &N == G.last() ? lowerGroup(G) : llvm::Error::success();
  }
  // Bound by its producer, which wrote this node's value too (a softmax
  // writing its quantized output, a table for a float island).
  if (ValOf.count(&N))
    return llvm::Error::success();
  const LoweringRule *R = lookupLoweringRule(N, GM);
  if (!R)
    return lowerFallback(N, fallbackWhy(*this, N, "no oneDNN lowering"));
  std::optional<DType> In = inputDType(*this, N);
  if (!In || !supportsDType(*R, *In))
    return lowerFallback(
        N,
        fallbackWhy(*this, N, "no " + loweringDtype(In) + " oneDNN lowering"));
  llvm::Expected<bool> Done = false;
  switch (R->Kind) {
  case LowerKind::Conv:
  case LowerKind::Deconv:
  case LowerKind::Linear:
  case LowerKind::LinearDynamic:
  case LowerKind::Add:
  case LowerKind::BatchNorm:
  case LowerKind::Matmul: {
    std::optional<Group> G = growGroup(N, *R, /*Grow=*/false);
    if (!G)
      return lowerFallback(
          N, fallbackWhy(*this, N, "operands outside the oneDNN patterns"));
    return lowerGroup(*G);
  }
  case LowerKind::View:
    return lowerView(N);
  case LowerKind::Alias:
    return lowerAlias(N);
  case LowerKind::MaxPool:
  case LowerKind::AvgPool:
  case LowerKind::AdaptiveAvgPool:
    Done = lowerPool(N, *R);
    break;
  case LowerKind::Eltwise:
    Done = lowerEltwise(N, *R);
    break;
  case LowerKind::Activation:
    Done = lowerActivation(N, *R);
    break;
  case LowerKind::Mul:
    Done = lowerMul(N);
    break;
  case LowerKind::Cat:
    Done = lowerCat(N);
    break;
  case LowerKind::Quantize:
    Done = lowerQuantize(N);
    break;
  case LowerKind::Dequantize:
    Done = lowerDequantize(N);
    break;
  // arith family.
  case LowerKind::ArithBinary:
    Done = lowerArithBinary(N);
    break;
  case LowerKind::Resample:
    Done = lowerInterpolate(N);
    break;
  case LowerKind::Embedding:
    Done = lowerEmbedding(N);
    break;
  case LowerKind::Narrow:
    Done = lowerNarrow(N);
    break;
  case LowerKind::LayerNorm:
  case LowerKind::Softmax:
  case LowerKind::Gelu:
  case LowerKind::Permute:
  case LowerKind::Select:
  case LowerKind::Expand:
    Done = lowerTransformerOp(N, *R);
    break;
  }
  if (!Done)
    return Done.takeError();
  return *Done ? llvm::Error::success()
               : lowerFallback(N, fallbackWhy(*this, N,
                                              "no oneDNN primitive takes "
                                              "these parameters"));
}

llvm::Error Lowerer::run() {
  // oneDNN generates a primitive for the thread count at its creation:
  // the lowering creates them for one thread (addPrimitive adds the other
  // counts up to the budget). Compile-time work (weight reorders) runs on
  // one thread too: on a busy machine a 2-thread region per constant made
  // compiling tens of times slower.
  ThreadScope Threads(Opts.NumThreads);
  P.NumThreads = Opts.NumThreads;
  P.Budget = std::max(1, omp_get_max_threads());
  ThreadScope One(1);
  if (llvm::Error E = checkNoObservers())
    return E;
  if (llvm::Error E = computeTypes())
    return E;
  planGroups();
  Plan = Opts.Layouts;
  if (Plan == LayoutChoice::Measure) {
    if (llvm::Error E = measureLayouts())
      return E;
  }
  // Positions of use are where the consumer's step runs: a group runs at
  // its last member.
  size_t I = 0;
  for (const Node &N : GM.graph())
    Pos[&N] = I++;
  for (const Node &N : GM.graph()) {
    auto GI = GroupOf.find(&N);
    size_t At = GI == GroupOf.end() ? Pos[&N] : Pos[Groups[GI->second].last()];
    if (N.op() == OpCode::Output)
      At = std::numeric_limits<size_t>::max();
    for (const Node *In : N.inputs())
      LastUse[In] = std::max(LastUse.lookup(In), At);
  }
  int Inputs = 0;
  bool SawOutput = false;
  for (const Node &N : GM.graph()) {
    llvm::Error E = llvm::Error::success();
    switch (N.op()) {
    case OpCode::Placeholder:
      E = lowerPlaceholder(N, Inputs++);
      break;
    case OpCode::GetAttr:
      E = lowerGetAttr(N);
      break;
    case OpCode::Output:
      E = lowerOutputs(N);
      SawOutput = true;
      break;
    default:
      E = lowerNode(N);
      break;
    }
    if (E)
      return E;
  }
  if (!SawOutput)
    return makeError("graph has no output node");
  if (Opts.RejectFallbacks && !P.Fallbacks.empty()) {
    std::string Msg = "strict lowering: " + std::to_string(P.Fallbacks.size()) +
                      " node" + (P.Fallbacks.size() == 1 ? "" : "s") +
                      " would run on reference kernels:";
    for (const FallbackInfo &F : P.Fallbacks)
      Msg += "\n  " + formatFallback(F);
    return makeError(Msg);
  }
  if (Plan == LayoutChoice::Blocked)
    P.Layouts.Plan = "blocked";
  P.finalize();
  P.chooseThreads(Opts.Threads == ThreadChoice::Measure, Opts.StepThreads);
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<CompiledModule>>
qfx::compile(const GraphModule &GM, const CompileOptions &Opts) {
  // OpenMP aborts on absurd thread counts; a batch larger than any tensor
  // would overflow the shapes inferred from it.
  if (llvm::Error E = checkFlagRange("compile: thread count", Opts.NumThreads,
                                     0, MaxThreads))
    return std::move(E);
  if (llvm::Error E = checkFlagRange("compile: batch size", Opts.BatchSize, 0,
                                     MaxFlagCount))
    return std::move(E);
  int Budget = Opts.NumThreads > 0 ? Opts.NumThreads : omp_get_max_threads();
  for (int T : Opts.StepThreads)
    if (llvm::Error E =
            checkFlagRange("compile: step thread count", T, 1, Budget))
      return std::move(E);
  auto P = std::make_unique<Program>();
  P->Profiling = Opts.Profile;
  auto Rewritten = rewriteForLowering(GM, Opts);
  if (!Rewritten)
    return Rewritten.takeError();
  try {
    Lowerer L(*Rewritten ? **Rewritten : GM, Opts, *P);
    if (llvm::Error E = L.run())
      return E;
  } catch (const dnnl::error &E) {
    // Parameters are validated before primitives are made; oneDNN refusing
    // one that passed is a bug here, reported rather than thrown through.
    return makeError(llvm::Twine("oneDNN rejected a primitive: ") + E.what());
  }
  return std::make_unique<CompiledModule>(std::move(P));
}
