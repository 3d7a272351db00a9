//===- FoldQdqPatterns.cpp - Matching and rewriting QDQ groups ------------===//

#include "FoldQdqPatterns.h"

#include "ConvertPatterns.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/BackendConfig.h"
#include "qfx/Quant/Quantize.h"

#include "llvm/ADT/STLExtras.h"

#include <array>

using namespace qfx;
using namespace qfx::foldqdq;

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

namespace {

// docs/quantization.md's int8 forms, read backwards from the float op that
// feeds a quantize_per_tensor.
const FoldRow Rows[] = {
    // dq -> conv2d [-> add(dq)] [-> relu] -> q: QuantizedConv2d family.
    {"conv2d", GroupKind::Weighted, "QuantizedConv2d", "QuantizedConvReLU2d",
     "QuantizedConvAdd2d", "QuantizedConvAddReLU2d"},
    // dq -> linear [-> relu] -> q: QuantizedLinear[ReLU] (no residual form).
    {"linear", GroupKind::Weighted, "QuantizedLinear", "QuantizedLinearReLU"},
    // dq -> conv1d [-> relu] -> q: QuantizedConv[ReLU]1d.
    {"conv1d", GroupKind::Weighted, "QuantizedConv1d", "QuantizedConvReLU1d"},
    // dq -> conv_transpose2d -> q: QuantizedConvTranspose2d.
    {"conv_transpose2d", GroupKind::Weighted, "QuantizedConvTranspose2d", ""},
    // dq, dq -> add [-> relu] -> q: quantized_add[_relu](x, y, s, zp).
    {"add", GroupKind::Binary, "quantized_add", "quantized_add_relu"},
    // dq, dq -> mul -> q: quantized_mul(x, y, s, zp).
    {"mul", GroupKind::Binary, "quantized_mul", ""},
    // dq, dq -> matmul -> q: quantized_matmul(x, y, s, zp) (two activations,
    // the ViT's attention).
    {"matmul", GroupKind::Binary, "quantized_matmul", ""},
    // [dq ...] -> cat -> q: quantized_cat([x ...], dim, s, zp).
    {"cat", GroupKind::Cat, "quantized_cat", ""},
    // dq -> hardswish -> q: quantized_hardswish(x, s, zp).
    {"hardswish", GroupKind::Unary, "quantized_hardswish", ""},
    // dq -> leaky_relu -> q: quantized_leaky_relu(x, slope, s, zp).
    {"leaky_relu", GroupKind::Unary, "quantized_leaky_relu", ""},
    // dq -> sigmoid / hardsigmoid / softmax -> q(1/256, 0),
    // dq -> tanh -> q(2/256, 128): the fixed-qparams quantized_* function.
    {"hardsigmoid", GroupKind::Fixed, "quantized_hardsigmoid", ""},
    {"sigmoid", GroupKind::Fixed, "quantized_sigmoid", ""},
    {"softmax", GroupKind::Fixed, "quantized_softmax", ""},
    {"tanh", GroupKind::Fixed, "quantized_tanh", ""},
};

// dq(x) -> op -> q with x's qparams: op on x (max_pool2d, reshape, relu and
// every other shares-qparams op of the backend table).
const FoldRow SharesRow = {"", GroupKind::Shares, "", ""};

// dq(x) -> BatchNorm2d module [-> relu] -> q: the module becomes
// QuantizedBatchNorm2d / QuantizedBNReLU2d in place (float statistics).
const FoldRow BatchNormRow = {"BatchNorm2d", GroupKind::InPlace,
                              "QuantizedBatchNorm2d", "QuantizedBNReLU2d"};

// dq(x) -> LayerNorm module -> q: the module becomes QuantizedLayerNorm in
// place (float weight and bias, as convert keeps them).
const FoldRow LayerNormRow = {"LayerNorm", GroupKind::InPlace,
                              "QuantizedLayerNorm", ""};

bool isCall(const Node &N) {
  return N.op() == OpCode::CallFunction || N.op() == OpCode::CallMethod;
}

bool isCallTo(const Node &N, llvm::StringRef Target) {
  return isCall(N) && N.target() == Target;
}

/// Positional argument \p I, else keyword \p Kw, else nullptr.
const Argument *argAt(const Node &N, size_t I, llvm::StringRef Kw) {
  if (I < N.numArgs())
    return &N.arg(I);
  return N.kwarg(Kw);
}

const Node *nodeAt(const Node &N, size_t I, llvm::StringRef Kw) {
  const Argument *A = argAt(N, I, Kw);
  return A && A->isNode() ? A->getNode() : nullptr;
}

/// The value \p N dequantizes, if it is `call_method[dequantize](x)`.
const Node *dequantized(const Node *N) {
  if (!N || !isCallTo(*N, "dequantize") || N->numArgs() != 1 ||
      !N->kwargs().empty())
    return nullptr;
  return nodeAt(*N, 0, "");
}

/// The kind of the module \p N calls, or "".
llvm::StringRef moduleKind(const Node &N, const GraphModule &GM) {
  if (N.op() != OpCode::CallModule)
    return "";
  const ModuleInfo *M = GM.lookupModule(N.target());
  return M ? M->kind() : "";
}

/// relu as a function, a method or a ReLU module, of one node.
bool isRelu(const Node &N, const GraphModule &GM) {
  bool Relu = isCallTo(N, "relu") || moduleKind(N, GM) == "ReLU";
  return Relu && N.numArgs() == 1 && N.kwargs().empty() && N.arg(0).isNode();
}

std::string quoted(llvm::StringRef S) { return ("'" + S + "'").str(); }

std::string qparamsText(const ActQ &Q) {
  return (convert::torchDtypeName(Q.Dtype) + " " +
          convert::formatQParams(Q.Scale, Q.ZeroPoint))
      .str();
}

} // namespace

const FoldRow *foldqdq::lookupFoldRow(llvm::StringRef Op) {
  for (const FoldRow &R : Rows)
    if (Op == R.Op)
      return &R;
  const BackendOpEntry *E = lookupBackendOp(Op, /*IsModule=*/false);
  if (E && E->Class == NodeClass::SharesQParams)
    return &SharesRow;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Quantization parameters
//===----------------------------------------------------------------------===//

/// The qparams a quantize_per_tensor node applies.
static std::optional<ActQ> quantizeParams(const Node &Q) {
  if (Q.op() != OpCode::CallFunction || Q.target() != "quantize_per_tensor")
    return std::nullopt;
  const Argument *S = argAt(Q, 1, "scale"), *Z = argAt(Q, 2, "zero_point"),
                 *D = argAt(Q, 3, "dtype");
  if (!S || !Z || !D || !(S->isFloat() || S->isInt()) || !Z->isInt() ||
      !D->isString())
    return std::nullopt;
  ActQ R;
  if (D->getString() == "quint8")
    R.Dtype = DType::U8;
  else if (D->getString() == "qint8")
    R.Dtype = DType::S8;
  else
    return std::nullopt;
  R.Scale = S->isFloat() ? S->getFloat() : double(S->getInt());
  R.ZeroPoint = Z->getInt();
  return R;
}

std::optional<ActQ> foldqdq::int8Quant(const Node &N) {
  if (const auto &T = N.type())
    if ((T->Dtype == DType::U8 || T->Dtype == DType::S8) &&
        T->Quant.isPerTensor())
      return ActQ{T->Dtype, T->Quant.Scale, T->Quant.ZeroPoint};
  return quantizeParams(N);
}

//===----------------------------------------------------------------------===//
// Matching
//===----------------------------------------------------------------------===//

std::string MatchResult::describe() const {
  std::string S;
  for (const Node *N : Ops)
    S += (S.empty() ? "" : " + ") + N->name().str();
  return S;
}

llvm::StringRef MatchResult::replacement() const {
  if (!Row)
    return "";
  if (Kind == GroupKind::Weighted && Add)
    return Relu ? Row->IntoAddRelu : Row->IntoAdd;
  return Relu ? Row->IntoRelu : Row->Into;
}

namespace {

/// Matching state: the result so far plus the graph.
class Matcher {
public:
  Matcher(const Node &Q, const GraphModule &GM) : GM(GM) { R.Quantize = &Q; }
  MatchResult run();

private:
  bool fail(const llvm::Twine &Why) {
    R.Reason = Why.str();
    return false;
  }
  bool chain();
  bool int8Input(const Node *Dq, const Node &User, const char *What);
  bool matchWeighted();
  bool matchConvParams(const Node &Op);
  bool matchWeight(const Node &Op);
  bool matchBias(const Node &Op);
  bool matchResidual(const Node &Add, const Node &Conv);
  bool matchBinary();
  bool matchCat();
  bool matchUnary();
  bool matchShares();
  MatchResult matchModule(const Node &Op, const Node &X);
  bool matchInPlace();
  bool constantArgs(const Node &Op, size_t From);

  const GraphModule &GM;
  MatchResult R;
};

} // namespace

/// Every op of the chain must feed only the next one (the last, the
/// quantize): the float values disappear.
bool Matcher::chain() {
  for (size_t I = 0; I < R.Ops.size(); ++I) {
    const Node *N = R.Ops[I];
    const Node *Next = I + 1 < R.Ops.size() ? R.Ops[I + 1] : R.Quantize;
    if (N->users().size() != 1 || N->users()[0] != Next)
      return fail(quoted(N->name()) + " has " + llvm::Twine(N->users().size()) +
                  " users; its float value is needed");
  }
  return true;
}

/// Records the int8 value behind dequantize \p Dq, an operand of \p User.
bool Matcher::int8Input(const Node *Dq, const Node &User, const char *What) {
  const Node *In = dequantized(Dq);
  std::optional<ActQ> Q = In ? int8Quant(*In) : std::nullopt;
  if (!Q)
    return fail(llvm::Twine(What) + " of " + quoted(User.name()) +
                " is not a dequantized int8 value");
  if (Q->Dtype != R.Out.Dtype)
    return fail(llvm::Twine(What) + " of " + quoted(User.name()) + " is " +
                dtypeName(Q->Dtype) + " but the quantize makes " +
                dtypeName(R.Out.Dtype) + ": int8 ops keep their input's dtype");
  R.Inputs.push_back(In);
  return true;
}

MatchResult Matcher::run() {
  const Node &Q = *R.Quantize;
  std::optional<ActQ> Out = quantizeParams(Q);
  const Node *X = nodeAt(Q, 0, "input");
  if (!Out || !X)
    return std::move(R);
  R.Out = *Out;
  if (const Node *In = dequantized(X)) {
    std::optional<ActQ> IQ = int8Quant(*In);
    if (IQ && *IQ == *Out) {
      R.Kind = GroupKind::Cancel;
      R.Inputs = {In};
      R.Main = X;
      R.Matched = true;
    } else if (IQ) {
      R.Main = X;
      R.Reason = "a requantization from " + qparamsText(*IQ) + " to " +
                 qparamsText(*Out) + " stays";
    }
    return std::move(R);
  }
  // A relu between the op and the quantize is absorbed by ops that have a
  // relu form; otherwise it is a shares-qparams op of its own.
  const Node *Op = X;
  if (isRelu(*X, GM)) {
    const Node *Prev = X->arg(0).getNode();
    const FoldRow *PR = isCall(*Prev) ? lookupFoldRow(Prev->target())
                        : moduleKind(*Prev, GM) == BatchNormRow.Op
                            ? &BatchNormRow
                            : nullptr;
    if (PR && *PR->IntoRelu) {
      R.Relu = true;
      Op = Prev;
    }
  }
  if (Op->op() == OpCode::CallModule)
    return matchModule(*Op, *X);
  if (!isCall(*Op))
    return std::move(R);
  R.Main = Op;
  // conv2d -> add: the residual form.
  if (isCallTo(*Op, "add"))
    for (size_t I = 0; I < 2; ++I)
      if (const Node *C = nodeAt(*Op, I, I ? "other" : "input"))
        if (isCallTo(*C, "conv2d") || isCallTo(*C, "linear")) {
          R.Add = true;
          R.Main = C;
          R.Ops.push_back(C);
          break;
        }
  R.Ops.push_back(Op);
  if (R.Relu)
    R.Ops.push_back(X);
  R.Row = lookupFoldRow(R.Main->target());
  if (!R.Row) {
    R.Reason = quoted(Op->target()) + " has no int8 form";
    return std::move(R);
  }
  R.Kind = R.Row->Kind;
  bool OK = false;
  switch (R.Kind) {
  case GroupKind::Weighted:
    OK = matchWeighted();
    break;
  case GroupKind::Binary:
    OK = matchBinary();
    break;
  case GroupKind::Cat:
    OK = matchCat();
    break;
  case GroupKind::Unary:
  case GroupKind::Fixed:
    OK = matchUnary();
    break;
  case GroupKind::Shares:
    OK = matchShares();
    break;
  case GroupKind::Cancel:
  case GroupKind::InPlace:
    break;
  }
  R.Matched = OK && chain();
  return std::move(R);
}

/// Whether every argument of \p Op from position \p From on (and every
/// keyword argument but the first \p From names) is a constant.
bool Matcher::constantArgs(const Node &Op, size_t From) {
  bool HasNode = false;
  for (size_t I = From; I < Op.numArgs(); ++I)
    Op.arg(I).forEachNode([&](Node *) { HasNode = true; });
  for (const auto &KV : Op.kwargs())
    if (KV.first != "input" && KV.first != "weight" && KV.first != "bias" &&
        KV.first != "other")
      KV.second.forEachNode([&](Node *) { HasNode = true; });
  if (HasNode)
    return fail(quoted(Op.name()) + " has a parameter computed by the graph");
  return true;
}

static bool isOne(const Argument &A) {
  return (A.isInt() && A.getInt() == 1) || (A.isFloat() && A.getFloat() == 1.0);
}

/// The weight: a dequantize of a get_attr of an s8 tensor that qfx's int8
/// kernels take (symmetric, per tensor or per channel along axis 0).
bool Matcher::matchWeight(const Node &Op) {
  const Node *W = dequantized(nodeAt(Op, 1, "weight"));
  if (!W || W->op() != OpCode::GetAttr)
    return fail("the weight of " + quoted(Op.name()) +
                " is not a dequantized constant");
  const Tensor *T = GM.lookupTensor(W->target());
  if (!T)
    return fail("weight " + quoted(W->target()) + " names no tensor");
  const QuantParams &Q = T->quant();
  std::string Name = quoted(W->target());
  if (T->dtype() != DType::S8)
    return fail("weight " + Name + " is " + dtypeName(T->dtype()) +
                ": qfx's int8 conv / linear take s8 weights");
  if (Q.isNone())
    return fail("weight " + Name + " has no quantization parameters");
  bool Symmetric =
      Q.isPerTensor()
          ? Q.ZeroPoint == 0
          : llvm::all_of(Q.ZeroPoints, [](int64_t Z) { return Z == 0; });
  // A transposed conv's output channels are weight axis 1.
  int64_t Axis = Op.target() == "conv_transpose2d" ? 1 : 0;
  if (Q.isPerChannel() && Q.Axis != Axis)
    return fail("weight " + Name + " is quantized per channel along axis " +
                llvm::Twine(Q.Axis) + ": qfx's int8 " +
                (Axis ? "conv_transpose2d takes" : "kernels take") +
                " per-channel weights along axis " + llvm::Twine(Axis));
  if (!Symmetric)
    return fail("weight " + Name +
                " has nonzero zero points: qfx's int8 kernels take "
                "symmetric weights");
  llvm::StringRef T8 = Op.target();
  int64_t Rank = T8 == "linear" ? 2 : T8 == "conv1d" ? 3 : 4;
  if (T->rank() != Rank)
    return fail("weight " + Name + " has rank " + llvm::Twine(T->rank()) +
                ", " + Op.target() + " needs " + llvm::Twine(Rank));
  R.Weight = W;
  return true;
}

/// The bias: none, an f32 constant, or a dequantized constant.
bool Matcher::matchBias(const Node &Op) {
  const Argument *B = argAt(Op, 2, "bias");
  if (!B || B->isNone())
    return true;
  const Node *BN = B->isNode() ? B->getNode() : nullptr;
  const Node *Attr = BN && BN->op() == OpCode::GetAttr ? BN : dequantized(BN);
  const Tensor *T = Attr && Attr->op() == OpCode::GetAttr
                        ? GM.lookupTensor(Attr->target())
                        : nullptr;
  bool Float = T && T->dtype() == DType::F32 && Attr == BN;
  bool Quantized = T && Attr != BN && !T->quant().isNone();
  if (!Float && !Quantized)
    return fail("the bias of " + quoted(Op.name()) +
                " is not a constant (f32, or dequantized)");
  R.Bias = BN;
  return true;
}

/// conv2d -> add(other): other is a dequantized int8 value of the conv's
/// output shape (the sum post-op reads it as it is).
bool Matcher::matchResidual(const Node &Add, const Node &Conv) {
  if (Conv.target() == "linear")
    return fail(quoted(Conv.name()) + " -> " + quoted(Add.name()) +
                ": QuantizedLinear has no residual add form");
  for (const auto &KV : Add.kwargs())
    if (KV.first != "alpha")
      return fail(quoted(Add.name()) + " has keyword argument " +
                  quoted(KV.first));
  const Argument *Alpha = Add.numArgs() > 2 ? &Add.arg(2) : Add.kwarg("alpha");
  if (Alpha && !isOne(*Alpha))
    return fail(quoted(Add.name()) + " has alpha other than 1");
  const Node *A = nodeAt(Add, 0, ""), *B = nodeAt(Add, 1, "");
  const Node *Other = A == &Conv ? B : A;
  if (A == B)
    return fail(quoted(Add.name()) + " adds " + quoted(Conv.name()) +
                " to itself");
  if (!int8Input(Other, Add, "the other operand"))
    return false;
  const auto &CT = Conv.type(), &OT = Other->type();
  if (CT && OT && CT->Dims != OT->Dims)
    return fail(quoted(Add.name()) +
                " broadcasts: the residual form needs the conv's shape");
  return true;
}

/// The positions of a conv's list parameters and of groups.
static std::vector<std::pair<size_t, const char *>>
convListParams(llvm::StringRef Op) {
  if (Op == "conv_transpose2d")
    return {
        {3, "stride"}, {4, "padding"}, {5, "output_padding"}, {7, "dilation"}};
  return {{3, "stride"}, {4, "padding"}, {5, "dilation"}};
}

/// A conv's stride, padding and dilation (conv_transpose2d: and
/// output_padding) must be ints or lists of one or two ints (not "same"),
/// and groups an int: they become module attributes.
bool Matcher::matchConvParams(const Node &Op) {
  for (const auto &[I, Name] : convListParams(Op.target())) {
    const Argument *A = argAt(Op, I, Name);
    std::optional<std::vector<int64_t>> L =
        A && A->isList() ? A->getIntList() : std::nullopt;
    if (A && !A->isInt() && !(L && (L->size() == 1 || L->size() == 2)))
      return fail(quoted(Op.name()) + " has a " + Name +
                  " that is not an int or a pair of ints");
  }
  const Argument *G = argAt(Op, 6, "groups");
  if (G && !G->isInt())
    return fail(quoted(Op.name()) + " has groups that are not an int");
  return true;
}

bool Matcher::matchWeighted() {
  const Node &Op = *R.Main;
  if (!int8Input(nodeAt(Op, 0, "input"), Op, "the input") || !matchWeight(Op) ||
      !matchBias(Op) || !constantArgs(Op, 3))
    return false;
  if (Op.target() != "linear" && !matchConvParams(Op))
    return false;
  if (R.Add) {
    const Node &Add = *R.Ops[1];
    if (!matchResidual(Add, Op))
      return false;
  }
  return true;
}

bool Matcher::matchBinary() {
  const Node &Op = *R.Main;
  for (const auto &KV : Op.kwargs())
    if (KV.first != "alpha" && KV.first != "other")
      return fail(quoted(Op.name()) + " has keyword argument " +
                  quoted(KV.first));
  const Argument *Alpha = Op.numArgs() > 2 ? &Op.arg(2) : Op.kwarg("alpha");
  if (Alpha && !isOne(*Alpha))
    return fail(quoted(Op.name()) + " has alpha other than 1");
  const Argument *Y = argAt(Op, 1, "other");
  if (!Y || !Y->isNode())
    return fail(quoted(Op.name()) + " has a scalar operand: no int8 form");
  return int8Input(nodeAt(Op, 0, "input"), Op, "the input") &&
         int8Input(Y->getNode(), Op, "the other operand");
}

bool Matcher::matchCat() {
  const Node &Op = *R.Main;
  const Argument *List = argAt(Op, 0, "tensors");
  if (!List || !List->isList())
    return fail(quoted(Op.name()) + " does not take a list of tensors");
  for (const Argument &E : List->getList())
    if (!int8Input(E.isNode() ? E.getNode() : nullptr, Op, "an input"))
      return false;
  const Argument *Dim = argAt(Op, 1, "dim");
  if (Dim && !Dim->isInt())
    return fail(quoted(Op.name()) + " has a dim that is not a constant int");
  return true;
}

bool Matcher::matchUnary() {
  const Node &Op = *R.Main;
  if (!int8Input(nodeAt(Op, 0, "input"), Op, "the input") ||
      !constantArgs(Op, 1))
    return false;
  if (R.Kind == GroupKind::Fixed) {
    const BackendOpEntry *E = lookupBackendOp(Op.target(), false);
    ActQ Fixed{DType::U8, E ? E->FixedScale : 0.0, E ? E->FixedZeroPoint : 0};
    if (R.Out != Fixed)
      return fail(quoted(Op.name()) + " is quantized to " + qparamsText(R.Out) +
                  ", not " + Op.target() + "'s fixed " + qparamsText(Fixed));
    if (Op.target() == "softmax") {
      const Argument *Dim = argAt(Op, 1, "dim");
      if (!Dim || !Dim->isInt())
        return fail(quoted(Op.name()) + " needs a constant int dim");
    }
  }
  if (Op.target() == "leaky_relu") {
    const Argument *S = argAt(Op, 1, "negative_slope");
    if (S && !S->isFloat() && !S->isInt())
      return fail(quoted(Op.name()) + " has a slope that is not a number");
  }
  return true;
}

bool Matcher::matchShares() {
  const Node &Op = *R.Main;
  if (!int8Input(nodeAt(Op, 0, "input"), Op, "the input") ||
      !constantArgs(Op, 1))
    return false;
  ActQ In = *int8Quant(*R.Inputs[0]);
  if (In != R.Out)
    return fail(quoted(Op.name()) + " is quantized to " + qparamsText(R.Out) +
                " but its input has " + qparamsText(In) + "; " + Op.target() +
                " shares its input's qparams");
  return true;
}

/// Module \p Op (then relu \p X when R.Relu): BatchNorm2d, or the module
/// form of a shares-qparams op (MaxPool2d, ReLU6, Flatten ...), as graphs
/// traced by qfx have them. Any other module is not part of a QDQ group
/// (weighted ops come as conv2d / linear functions).
MatchResult Matcher::matchModule(const Node &Op, const Node &X) {
  R.Main = &Op;
  R.Ops = {&Op};
  if (R.Relu)
    R.Ops.push_back(&X);
  llvm::StringRef Kind = moduleKind(Op, GM);
  const BackendOpEntry *E = lookupBackendOp(Kind, /*IsModule=*/true);
  if (Kind == BatchNormRow.Op || Kind == LayerNormRow.Op) {
    R.Row = Kind == BatchNormRow.Op ? &BatchNormRow : &LayerNormRow;
    R.Kind = GroupKind::InPlace;
    R.Matched = matchInPlace() && chain();
  } else if (E && E->Class == NodeClass::SharesQParams) {
    R.Row = &SharesRow;
    R.Kind = GroupKind::Shares;
    R.Matched = matchShares() && chain();
  } else {
    R.Reason = "call_module " + quoted(Op.target()) + " (" + Kind.str() +
               ") has no int8 form here";
  }
  return std::move(R);
}

/// A BatchNorm2d (with its running statistics) or LayerNorm module called
/// once: it is rebuilt in place.
bool Matcher::matchInPlace() {
  const Node &Op = *R.Main;
  if (!int8Input(nodeAt(Op, 0, "input"), Op, "the input") ||
      !constantArgs(Op, 1))
    return false;
  unsigned Calls = 0;
  for (const Node &N : GM.graph())
    Calls += N.op() == OpCode::CallModule && N.target() == Op.target();
  if (Calls != 1)
    return fail("module " + quoted(Op.target()) + " is called " +
                llvm::Twine(Calls) + " times; it is rebuilt in place");
  const ModuleInfo *M = GM.lookupModule(Op.target());
  if (R.Row == &BatchNormRow &&
      (!M->tensor("running_mean") || !M->tensor("running_var")))
    return fail("module " + quoted(Op.target()) +
                " has no running_mean / running_var");
  return true;
}

MatchResult foldqdq::matchGroup(const Node &Q, const GraphModule &GM) {
  return Matcher(Q, GM).run();
}

//===----------------------------------------------------------------------===//
// Rewriting
//===----------------------------------------------------------------------===//

namespace {

/// Erases nodes of a rewritten group and whatever they alone read.
class Eraser {
public:
  explicit Eraser(GraphModule &GM) : GM(GM), G(GM.graph()) {}
  /// Erases \p N (which must be unused) and then dequantizes and get_attrs
  /// that become unused.
  void erase(Node *N);
  /// Erases \p N later if it is then an unused dequantize or get_attr.
  void queue(Node *N) { Work.push_back(N); }
  /// Keeps module \p Path (and so its parents) even when it is left empty:
  /// the quantized module takes its place in the tree.
  void keep(std::string Path) { Keep = std::move(Path); }
  void finish();

private:
  void dropTensor(llvm::StringRef Path);
  bool isCalled(llvm::StringRef Path) const;

  GraphModule &GM;
  Graph &G;
  std::vector<Node *> Work;
  std::string Keep;
};

} // namespace

void Eraser::erase(Node *N) {
  // N may be queued already (as an input of a node erased before it): no
  // dangling pointer may stay in the queue.
  llvm::erase_value(Work, N);
  for (Node *In : N->inputs())
    Work.push_back(In);
  std::string Module =
      N->op() == OpCode::CallModule ? N->target().str() : std::string();
  G.erase(N);
  // A relu module absorbed into a quantized module goes with its last call.
  if (!Module.empty() && !isCalled(Module))
    GM.eraseModule(Module);
}

void Eraser::finish() {
  while (!Work.empty()) {
    Node *N = Work.back();
    Work.pop_back();
    // A node may be queued twice; it is erased once, at its last entry
    // (erase() removes a node's entries from the queue).
    if (N->hasUsers() ||
        !(N->op() == OpCode::GetAttr || dequantized(N) != nullptr))
      continue;
    if (llvm::is_contained(Work, N))
      continue;
    std::string Target = N->target().str();
    bool IsAttr = N->op() == OpCode::GetAttr;
    erase(N);
    if (IsAttr)
      dropTensor(Target);
  }
}

bool Eraser::isCalled(llvm::StringRef Path) const {
  for (const Node &N : G)
    if (N.op() == OpCode::CallModule && N.target() == Path)
      return true;
  return false;
}

/// Removes tensor \p Path if no get_attr reads it, then its owner modules
/// that are left empty and uncalled.
void Eraser::dropTensor(llvm::StringRef Path) {
  for (const Node &N : G)
    if (N.op() == OpCode::GetAttr && N.target() == Path)
      return;
  auto [Owner, Name] = splitQualifiedName(Path);
  ModuleInfo *M = GM.lookupModule(Owner);
  if (!M)
    return;
  M->eraseTensor(Name);
  std::string P = Owner.str();
  while (!P.empty() && P != Keep) {
    ModuleInfo *Cur = GM.lookupModule(P);
    if (!Cur || !Cur->tensors().empty() || !Cur->children().empty() ||
        !Cur->attrs().empty() || isCalled(P))
      return;
    GM.eraseModule(P);
    P = splitQualifiedName(P).first.str();
  }
}

/// A module path for a new module named after \p Base that nothing uses.
static std::string freshModulePath(const GraphModule &GM, std::string Base) {
  auto Free = [&](const std::string &P) {
    if (GM.lookupTensor(P))
      return false;
    const ModuleInfo *M = GM.lookupModule(P);
    if (!M)
      return true;
    if (!M->tensors().empty() || !M->children().empty() || !M->attrs().empty())
      return false;
    for (const Node &N : GM.graph())
      if (N.op() == OpCode::CallModule && N.target() == P)
        return false;
    return true;
  };
  if (Free(Base))
    return Base;
  for (unsigned I = 1;; ++I) {
    std::string P = Base + "_" + std::to_string(I);
    if (Free(P))
      return P;
  }
}

/// stride / padding / dilation as a pair of ints ([k, k] from k).
static Argument intPair(const Argument *A, int64_t Default) {
  std::array<int64_t, 2> P = {Default, Default};
  if (A && A->isInt())
    P = {A->getInt(), A->getInt()};
  else if (A && A->isList()) {
    auto L = A->getIntList();
    if (L && L->size() == 2)
      P = {(*L)[0], (*L)[1]};
    else if (L && L->size() == 1)
      P = {(*L)[0], (*L)[0]};
  }
  return Argument::ints(P);
}

/// The f32 bias of a matched weighted op.
static std::optional<Tensor> floatBias(const MatchResult &M,
                                       const GraphModule &GM) {
  if (!M.Bias)
    return std::nullopt;
  if (M.Bias->op() == OpCode::GetAttr)
    return *GM.lookupTensor(M.Bias->target());
  return dequantize(*GM.lookupTensor(dequantized(M.Bias)->target()));
}

/// A list parameter of a conv as \p N ints ([k, k] from k).
static Argument intList(const Argument *A, int64_t Default, size_t N) {
  std::vector<int64_t> V(N, Default);
  if (A && A->isInt())
    V.assign(N, A->getInt());
  else if (auto L = A && A->isList() ? A->getIntList() : std::nullopt)
    for (size_t I = 0; I < N; ++I)
      V[I] = (*L)[L->size() == N ? I : 0];
  return Argument::ints(V);
}

/// The module attributes of conv1d / conv_transpose2d \p Op with weight
/// \p W, as the importer gives Conv1d / ConvTranspose2d modules.
static void convFamilyAttrs(const Node &Op, const Tensor &W, AttrMap &Attrs) {
  bool T = Op.target() == "conv_transpose2d";
  size_t N = T ? 2 : 1;
  const Argument *G = argAt(Op, 6, "groups");
  int64_t Groups = G && G->isInt() ? G->getInt() : 1;
  Attrs["groups"] = Argument::integer(Groups);
  Attrs["stride"] = intList(argAt(Op, 3, "stride"), 1, N);
  Attrs["padding"] = intList(argAt(Op, 4, "padding"), 0, N);
  if (T) {
    Attrs["output_padding"] = intList(argAt(Op, 5, "output_padding"), 0, N);
    Attrs["dilation"] = intList(argAt(Op, 7, "dilation"), 1, N);
    Attrs["in_channels"] = Argument::integer(W.dim(0));
    Attrs["out_channels"] = Argument::integer(W.dim(1) * Groups);
    Attrs["kernel_size"] = Argument::ints({W.dim(2), W.dim(3)});
  } else {
    Attrs["dilation"] = intList(argAt(Op, 5, "dilation"), 1, N);
    Attrs["in_channels"] = Argument::integer(W.dim(1) * Groups);
    Attrs["out_channels"] = Argument::integer(W.dim(0));
    Attrs["kernel_size"] = Argument::ints({W.dim(2)});
  }
}

/// A quantized module to add once the group is gone.
struct PendingModule {
  std::string Kind;
  /// The path it is named after (the op's scope, or its name).
  std::string Base;
  AttrMap Attrs;
  Tensor Weight;
  std::optional<Tensor> Bias;
};

/// The quantized module of weighted group \p M: convert's attributes for
/// the kind plus the output qparams.
static PendingModule pendingModule(const MatchResult &M,
                                   const GraphModule &GM) {
  const Node &Op = *M.Main;
  PendingModule P;
  P.Kind = M.replacement().str();
  // Named after the module that held the weight ("layer1.0.conv1" for
  // "layer1.0.conv1.weight"), else the op's scope, else the op.
  llvm::StringRef Owner = splitQualifiedName(M.Weight->target()).first;
  P.Base = !Owner.empty()        ? Owner.str()
           : !Op.scope().empty() ? Op.scope().str()
                                 : Op.name().str();
  P.Weight = *GM.lookupTensor(M.Weight->target());
  P.Bias = floatBias(M, GM);
  const Tensor &W = P.Weight;
  AttrMap &Attrs = P.Attrs;
  if (Op.target() == "conv1d" || Op.target() == "conv_transpose2d") {
    convFamilyAttrs(Op, W, Attrs);
  } else if (Op.target() == "conv2d") {
    const Argument *G = argAt(Op, 6, "groups");
    int64_t Groups = G && G->isInt() ? G->getInt() : 1;
    Attrs["dilation"] = intPair(argAt(Op, 5, "dilation"), 1);
    Attrs["groups"] = Argument::integer(Groups);
    Attrs["in_channels"] = Argument::integer(W.dim(1) * Groups);
    Attrs["kernel_size"] = Argument::ints({W.dim(2), W.dim(3)});
    Attrs["out_channels"] = Argument::integer(W.dim(0));
    Attrs["padding"] = intPair(argAt(Op, 4, "padding"), 0);
    Attrs["stride"] = intPair(argAt(Op, 3, "stride"), 1);
  } else {
    Attrs["in_features"] = Argument::integer(W.dim(1));
    Attrs["out_features"] = Argument::integer(W.dim(0));
  }
  Attrs["scale"] = Argument::real(M.Out.Scale);
  Attrs["zero_point"] = Argument::integer(M.Out.ZeroPoint);
  return P;
}

/// Adds \p P to the module tree; returns its path.
static std::string addModule(PendingModule P, GraphModule &GM) {
  std::string Path = freshModulePath(GM, P.Base);
  ModuleInfo &Mod = GM.addModule(Path, P.Kind);
  for (auto &KV : P.Attrs)
    Mod.setAttr(KV.first, std::move(KV.second));
  Mod.setTensor("weight", std::move(P.Weight));
  if (P.Bias)
    Mod.setTensor("bias", std::move(*P.Bias));
  return Path;
}

/// The call_function of a matched non-weighted group.
static Node *buildFunction(const MatchResult &M, Graph &G) {
  const Node &Op = *M.Main;
  std::vector<Argument> Args;
  auto In = [&](size_t I) { return Argument(const_cast<Node *>(M.Inputs[I])); };
  Argument S = Argument::real(M.Out.Scale),
           Z = Argument::integer(M.Out.ZeroPoint);
  if (M.Kind == GroupKind::Binary)
    Args = {In(0), In(1), S, Z};
  else if (M.Kind == GroupKind::Cat) {
    std::vector<Argument> Elems;
    for (size_t I = 0; I < M.Inputs.size(); ++I)
      Elems.push_back(In(I));
    const Argument *Dim = argAt(Op, 1, "dim");
    Args = {Argument::list(std::move(Elems)),
            Argument::integer(Dim ? Dim->getInt() : 0), S, Z};
  } else if (Op.target() == "leaky_relu") {
    const Argument *Slope = argAt(Op, 1, "negative_slope");
    Args = {In(0), Slope ? *Slope : Argument::real(0.01), S, Z};
  } else if (Op.target() == "softmax")
    Args = {In(0), *argAt(Op, 1, "dim")};
  else if (M.Kind == GroupKind::Fixed)
    Args = {In(0)};
  else
    Args = {In(0), S, Z};
  return G.callFunction(M.replacement(), std::move(Args));
}

/// The type of the group's int8 result: the quantize's, or the last op's
/// shape with the quantize's qparams.
static std::optional<TensorType> resultType(const MatchResult &M) {
  if (M.Quantize->type())
    return M.Quantize->type();
  const Node *Last = M.Ops.empty() ? nullptr : M.Ops.back();
  if (!Last || !Last->type())
    return std::nullopt;
  return TensorType{M.Out.Dtype, Last->type()->Dims,
                    QuantParams::perTensor(M.Out.Scale, M.Out.ZeroPoint)};
}

Node *foldqdq::rewriteGroup(const MatchResult &M, GraphModule &GM) {
  Graph &G = GM.graph();
  Node *Q = const_cast<Node *>(M.Quantize);
  Eraser E(GM);
  Node *New = nullptr;
  std::string Name = M.Main->name().str();
  std::optional<PendingModule> Pending;
  G.setInsertPoint(Q);
  switch (M.Kind) {
  case GroupKind::Cancel:
    New = const_cast<Node *>(M.Inputs[0]);
    Name.clear();
    break;
  case GroupKind::InPlace:
  case GroupKind::Shares: {
    // The op itself runs on the int8 value; a batch / layer norm becomes
    // its quantized kind with the output qparams.
    if (M.Kind == GroupKind::InPlace) {
      ModuleInfo *Mod = GM.lookupModule(M.Main->target());
      Mod->setKind(M.replacement().str());
      Mod->setAttr("scale", Argument::real(M.Out.Scale));
      Mod->setAttr("zero_point", Argument::integer(M.Out.ZeroPoint));
    }
    New = const_cast<Node *>(M.Main);
    Node *Dq = const_cast<Node *>(nodeAt(*New, 0, "input"));
    New->replaceInputWith(Dq, const_cast<Node *>(M.Inputs[0]));
    E.queue(Dq);
    New->setType(resultType(M));
    Name.clear();
    break;
  }
  case GroupKind::Weighted: {
    // The module is built once the weights are gone from the tree, so that
    // it can take the place of the module that held them.
    Pending = pendingModule(M, GM);
    E.keep(Pending->Base);
    std::vector<Argument> Args = {Argument(const_cast<Node *>(M.Inputs[0]))};
    if (M.Add)
      Args.push_back(Argument(const_cast<Node *>(M.Inputs[1])));
    // The target is set once the module exists (below).
    New = G.callModule("", std::move(Args));
    break;
  }
  default:
    New = buildFunction(M, G);
    break;
  }
  G.setInsertPointToEnd();
  if (New != M.Main && M.Kind != GroupKind::Cancel) {
    New->setType(resultType(M));
    New->setScope(M.Main->scope().str());
    for (const auto &KV : M.Main->meta())
      New->setMeta(KV.first, KV.second);
  }
  Q->replaceAllUsesWith(New);
  E.erase(Q);
  for (auto It = M.Ops.rbegin(); It != M.Ops.rend(); ++It)
    if (*It != New)
      E.erase(const_cast<Node *>(*It));
  E.finish();
  if (Pending)
    New->setTarget(addModule(std::move(*Pending), GM));
  // The new node takes the main op's name, as convert's nodes keep theirs.
  if (!Name.empty())
    llvm::consumeError(G.rename(New, Name));
  return New;
}
