//===- ImportPatterns.cpp - GELU and LayerNorm from their ONNX forms ------===//
//
// torch.onnx.export (PyTorch 1.13) writes nn.GELU / F.gelu as
//   Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5
// (approximate='tanh': x * x * x, Mul, Add, Mul, Tanh, Add 1, Mul x, Mul 0.5)
// and nn.LayerNorm below opset 17 as
//   ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul w, Add b.
// They import as one gelu and one LayerNorm module, the nodes quantization
// and lowering know. qfx has no erf or sqrt op, so Erf and Sqrt make
// partial values (no graph node) that only the pattern's next node may
// read; Pow 2 is x * x, Tanh a tanh, and the tanh GELU is matched backwards
// from its last Mul over the nodes it made.
//
//===----------------------------------------------------------------------===//

#include "NodeReader.h"

#include "qfx/IR/GraphModule.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace qfx;
using namespace qfx::onnximport;

std::string qfx::onnximport::describePartial(Partial P) {
  switch (P) {
  case Partial::GeluErf:
    return "the Erf of a GELU (x * (1 + Erf(x / sqrt(2))) * 0.5); only an Add "
           "of 1 may read it";
  case Partial::GeluErfPlus1:
    return "1 + Erf(x / sqrt(2)) of a GELU; only a Mul by x or by 0.5 may "
           "read it";
  case Partial::GeluHalfErf:
    return "0.5 * (1 + Erf(x / sqrt(2))) of a GELU; only a Mul by x may read "
           "it";
  case Partial::GeluXErf:
    return "x * (1 + Erf(x / sqrt(2))) of a GELU; only a Mul by 0.5 may read "
           "it";
  case Partial::NormSqrt:
    return "the Sqrt of a layer norm ((x - mean) / Sqrt(var + eps)); only its "
           "Div may read it";
  case Partial::Taken:
    return "part of a GELU or layer norm pattern that was already imported";
  case Partial::None:
    break;
  }
  return "a value";
}

static constexpr double Sqrt2 = 1.4142135623730951;
static constexpr double Pi = 3.141592653589793;

/// The value of a one-element float constant (a number in the pattern).
static std::optional<double> realConst(const OnnxValue &V) {
  if (!V.isConst() || V.Const->dtype() != DType::F32 ||
      V.Const->numElements() != 1 || !V.Dep.empty())
    return std::nullopt;
  return V.Const->getAsDouble(0);
}

/// A number for messages ("3", "0.5").
static std::string num(double V) {
  char Buf[32];
  std::snprintf(Buf, sizeof(Buf), "%g", V);
  return Buf;
}

/// Whether \p V is \p Want up to float rounding.
static bool near(double V, double Want) {
  return std::fabs(V - Want) <= 1e-6 * std::fabs(Want);
}

static bool isCall(const Node *N, llvm::StringRef Target, size_t NumArgs) {
  return N && N->op() == OpCode::CallFunction && N->target() == Target &&
         N->numArgs() == NumArgs && N->kwargs().empty();
}

/// A float argument of \p N, or none.
static std::optional<double> realArg(const Node *N, size_t I) {
  if (I >= N->numArgs() || !N->arg(I).isFloat())
    return std::nullopt;
  return N->arg(I).getFloat();
}

/// The node argument \p I of \p N, or null.
static Node *nodeArg(const Node *N, size_t I) {
  return I < N->numArgs() && N->arg(I).isNode() ? N->arg(I).getNode() : nullptr;
}

/// Defines output 0 as \p Nd with batch flag \p Batch (the pattern's inner
/// values are gone, so defineNode cannot look at them).
static void defineAs(NodeReader &R, Node *Nd, bool Batch) {
  OnnxValue V;
  V.N = Nd;
  V.BatchDim0 = Batch;
  R.define(0, std::move(V));
}

static llvm::Error emitGelu(NodeReader &R, Node *X, bool Batch, bool Tanh) {
  std::vector<Argument> Args = {Argument(X)};
  if (Tanh)
    Args.push_back(Argument::string("tanh"));
  auto N = R.emit(OpCode::CallFunction, "gelu", std::move(Args));
  if (!N)
    return N.takeError();
  defineAs(R, *N, Batch);
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// GELU, erf form
//===----------------------------------------------------------------------===//

llvm::Error qfx::onnximport::importErf(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto T = R.input(0);
  if (!T)
    return T.takeError();
  // x / sqrt(2), or x * (1 / sqrt(2)), read by this Erf only.
  Node *D = (*T)->N, *X = nullptr;
  if (D && R.readers(D) == 1 && !D->hasUsers()) {
    if (isCall(D, "div", 2) && realArg(D, 1) && near(*realArg(D, 1), Sqrt2))
      X = nodeArg(D, 0);
    if (isCall(D, "mul", 2) && realArg(D, 1) &&
        near(*realArg(D, 1), 1.0 / Sqrt2))
      X = nodeArg(D, 0);
  }
  if (!X || !R.takeApart({D}))
    return R.error("Erf is only imported as part of a GELU, x * 0.5 * (1 + "
                   "Erf(x / sqrt(2))), and its input is not an x / sqrt(2) "
                   "that nothing else reads");
  OnnxValue V;
  V.Part = Partial::GeluErf;
  V.PartOf = X;
  V.BatchDim0 = (*T)->BatchDim0;
  R.define(0, std::move(V));
  return llvm::Error::success();
}

/// A partial GELU value \p P multiplied by \p Other (a node, a number or
/// another partial): the next partial, or the gelu.
static llvm::Error mulGelu(NodeReader &R, const OnnxValue &P, size_t Other) {
  Node *X = P.PartOf;
  bool Batch = P.BatchDim0;
  auto Next = [&](Partial Part) {
    OnnxValue V;
    V.Part = Part;
    V.PartOf = X;
    V.BatchDim0 = Batch;
    R.define(0, std::move(V));
    return llvm::Error::success();
  };
  auto O = R.input(Other);
  if (!O)
    return O.takeError();
  std::optional<double> K = realConst(**O);
  Node *N = (*O)->N;
  if (P.Part == Partial::GeluErfPlus1) {
    if (K && near(*K, 0.5))
      return Next(Partial::GeluHalfErf);
    if (N == X)
      return Next(Partial::GeluXErf);
    // (x * 0.5) * (1 + erf): the x * 0.5 goes.
    if (isCall(N, "mul", 2) && nodeArg(N, 0) == X && realArg(N, 1) &&
        near(*realArg(N, 1), 0.5) && R.readers(N) == 1 && R.takeApart({N}))
      return emitGelu(R, X, Batch, false);
    return R.error("1 + Erf(x / sqrt(2)) of a GELU must be multiplied by x, "
                   "0.5 or x * 0.5");
  }
  if (P.Part == Partial::GeluHalfErf && N == X)
    return emitGelu(R, X, Batch, false);
  if (P.Part == Partial::GeluXErf && K && near(*K, 0.5))
    return emitGelu(R, X, Batch, false);
  return R.error(P.Part == Partial::GeluXErf
                     ? "x * (1 + Erf(x / sqrt(2))) of a GELU must be "
                       "multiplied by 0.5"
                     : "0.5 * (1 + Erf(x / sqrt(2))) of a GELU must be "
                       "multiplied by x");
}

//===----------------------------------------------------------------------===//
// GELU, tanh form (all its ops exist: matched backwards)
//===----------------------------------------------------------------------===//

namespace {
/// A product read apart through muls that only it reads: the factors that
/// are nodes, the product of the numbers, and the muls it went through
/// (each before the muls it reads, so they erase in order).
struct Product {
  std::vector<Node *> Factors;
  double K = 1.0;
  std::vector<Node *> Muls;
};
} // namespace

static void expandFactor(NodeReader &R, Node *N, Product &P, int Depth) {
  if (Depth < 4 && isCall(N, "mul", 2) && R.readers(N) == 1 &&
      N->users().size() <= 1) {
    P.Muls.push_back(N);
    for (size_t I = 0; I < 2; ++I) {
      if (std::optional<double> K = realArg(N, I))
        P.K *= *K;
      else if (Node *A = nodeArg(N, I))
        expandFactor(R, A, P, Depth + 1);
      else
        P.Factors.push_back(nullptr); // Not a product of nodes and numbers.
    }
    return;
  }
  P.Factors.push_back(N);
}

/// 1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)) for \p X; the nodes to
/// erase are appended to \p Erase. False when \p G is not that.
static bool isTanhGate(NodeReader &R, Node *G, Node *X,
                       std::vector<Node *> &Erase) {
  auto Single = [&](Node *N) { return R.readers(N) == 1; };
  if (!isCall(G, "add", 2) || !realArg(G, 1) || !near(*realArg(G, 1), 1.0) ||
      !Single(G))
    return false;
  Node *T = nodeArg(G, 0);
  if (!isCall(T, "tanh", 1) || !Single(T))
    return false;
  Product Inner;
  expandFactor(R, nodeArg(T, 0), Inner, 0);
  if (Inner.Factors.size() != 1 || !near(Inner.K, std::sqrt(2.0 / Pi)))
    return false;
  Node *S = Inner.Factors[0];
  if (!isCall(S, "add", 2) || !Single(S))
    return false;
  Node *Q = nodeArg(S, 0) == X ? nodeArg(S, 1) : nodeArg(S, 0);
  if ((nodeArg(S, 0) != X && nodeArg(S, 1) != X) || !Q)
    return false;
  Product Cube;
  expandFactor(R, Q, Cube, 0);
  if (Cube.Factors != std::vector<Node *>{X, X, X} || !near(Cube.K, 0.044715) ||
      Cube.Muls.empty())
    return false;
  Erase.insert(Erase.end(), {G, T});
  Erase.insert(Erase.end(), Inner.Muls.begin(), Inner.Muls.end());
  Erase.push_back(S);
  Erase.insert(Erase.end(), Cube.Muls.begin(), Cube.Muls.end());
  return true;
}

/// The Mul that ends a tanh GELU; false when this Mul is not one.
static llvm::Expected<bool> tanhGelu(NodeReader &R) {
  Product P;
  bool Batch = false;
  for (size_t I = 0; I < 2; ++I) {
    auto V = R.input(I);
    if (!V)
      return V.takeError();
    Batch |= (*V)->BatchDim0;
    if (std::optional<double> K = realConst(**V))
      P.K *= *K;
    else if ((*V)->N)
      expandFactor(R, (*V)->N, P, 0);
    else
      return false;
  }
  if (P.Factors.size() != 2 || !near(P.K, 0.5))
    return false;
  for (size_t I = 0; I < 2; ++I) {
    Node *X = P.Factors[I], *G = P.Factors[1 - I];
    std::vector<Node *> Erase = P.Muls;
    if (!X || !G || !isTanhGate(R, G, X, Erase) || !R.takeApart(Erase))
      continue;
    if (llvm::Error E = emitGelu(R, X, Batch, true))
      return E;
    return true;
  }
  return false;
}

//===----------------------------------------------------------------------===//
// LayerNorm
//===----------------------------------------------------------------------===//

llvm::Error qfx::onnximport::importSqrt(NodeReader &R) {
  if (llvm::Error E = R.requireSingleOutput())
    return E;
  auto A = R.input(0);
  if (!A)
    return A.takeError();
  Node *N = (*A)->N;
  if (!isCall(N, "add", 2) || !realArg(N, 1) || R.readers(N) != 1)
    return R.error("Sqrt is only imported as part of a layer norm, (x - "
                   "mean) / Sqrt(ReduceMean((x - mean)^2) + eps), and its "
                   "input is not a variance plus eps that nothing else reads");
  OnnxValue V;
  V.Part = Partial::NormSqrt;
  V.PartOf = N;
  V.BatchDim0 = (*A)->BatchDim0;
  R.define(0, std::move(V));
  return llvm::Error::success();
}

llvm::Error qfx::onnximport::importPow(NodeReader &R) {
  auto X = R.node(0);
  auto Y = R.constScalar(1, "the exponent");
  if (llvm::Error E = firstError(X, Y))
    return E;
  if (*Y != 2.0)
    return R.error("only exponent 2 (x * x, as a layer norm's variance) is "
                   "supported, got " +
                   num(*Y));
  auto N = R.emit(OpCode::CallFunction, "mul", {Argument(*X), Argument(*X)});
  if (!N)
    return N.takeError();
  R.defineNode(0, *N);
  return llvm::Error::success();
}

/// The axes of a mean(x, dims, keepdim=True) node, normalized and checked
/// to be the last dims of \p Rank; empty if not.
static std::vector<int64_t> lastDimsMean(const Node *M, int64_t Rank) {
  if (!M || M->op() != OpCode::CallFunction || M->target() != "mean" ||
      M->numArgs() != 3 || !M->arg(2).isBool() || !M->arg(2).getBool())
    return {};
  auto Dims = M->arg(1).getIntList();
  if (!Dims || Dims->empty())
    return {};
  std::vector<int64_t> D = *Dims;
  for (int64_t &A : D) {
    A = A < 0 ? A + Rank : A;
    if (A < 0 || A >= Rank)
      return {};
  }
  llvm::sort(D);
  for (size_t I = 0; I < D.size(); ++I)
    if (D[I] != Rank - static_cast<int64_t>(D.size() - I))
      return {};
  return D;
}

/// (x - mean) / Sqrt(mean((x - mean)^2) + eps): a layer_norm without
/// weight and bias (a following Mul and Add fold them in).
static llvm::Error normCore(NodeReader &R, const OnnxValue &Sqrt) {
  auto DV = R.input(0);
  if (!DV)
    return DV.takeError();
  auto Fail = [&](const char *Why) {
    return R.error(llvm::Twine("not a layer norm, (x - mean) / Sqrt(mean((x "
                               "- mean)^2) + eps) over the last axes: ") +
                   Why);
  };
  Node *A = Sqrt.PartOf, *D = (*DV)->N;
  Node *V = nodeArg(A, 0);
  Node *P = V ? nodeArg(V, 0) : nullptr;
  if (!D || !isCall(D, "sub", 2) || R.readers(D) != 2)
    return Fail("the dividend is not an x - mean read only by the pattern");
  Node *X = nodeArg(D, 0), *M = nodeArg(D, 1);
  if (!X || !M || !X->type() || nodeArg(M, 0) != X || R.readers(M) != 1)
    return Fail("the dividend is not x minus a mean of x");
  int64_t Rank = X->type()->Dims.size();
  std::vector<int64_t> Axes = lastDimsMean(M, Rank);
  if (Axes.empty() || lastDimsMean(V, Rank) != Axes)
    return Fail("the means are not over the same last axes with keepdims");
  if (!isCall(P, "mul", 2) || nodeArg(P, 0) != D || nodeArg(P, 1) != D ||
      R.readers(P) != 1 || R.readers(V) != 1)
    return Fail("the variance is not the mean of (x - mean)^2");
  double Eps = shortestDouble(*realArg(A, 1));
  if (!(Eps >= 0.0) || !std::isfinite(Eps))
    return Fail("eps is negative or not finite");
  std::vector<int64_t> Norm;
  for (int64_t Ax : Axes)
    Norm.push_back(X->type()->Dims[Ax]);
  bool Batch = (*DV)->BatchDim0;
  if (!R.takeApart({A, V, P, D, M}))
    return Fail("a value of the pattern is also used elsewhere");
  auto N = R.emit(OpCode::CallFunction, "layer_norm",
                  {Argument(X), Argument::ints(Norm), Argument::none(),
                   Argument::none(), Argument::real(Eps)});
  if (!N)
    return N.takeError();
  defineAs(R, *N, Batch);
  return llvm::Error::success();
}

llvm::Expected<Node *> qfx::onnximport::emitLayerNormModule(
    NodeReader &R, Node *X, llvm::ArrayRef<int64_t> Norm, double Eps,
    const Tensor &W, const Tensor &B, llvm::StringRef WeightName) {
  std::string Path = R.newModulePath(WeightName, "layer_norm");
  ModuleInfo &M = R.gm().addModule(Path, "LayerNorm");
  M.setAttr("normalized_shape", Argument::ints(Norm));
  M.setAttr("eps", Argument::real(shortestDouble(Eps)));
  M.setAttr("elementwise_affine", Argument::boolean(true));
  M.setTensor("weight", W);
  M.setTensor("bias", B);
  return R.emit(OpCode::CallModule, Path, {Argument(X)});
}

/// A float constant of shape \p Norm with no batch element, or null.
static const Tensor *normParam(const OnnxValue &V,
                               llvm::ArrayRef<int64_t> Norm) {
  if (!V.isConst() || V.Const->dtype() != DType::F32 || !V.Dep.empty() ||
      V.Const->shape() != Norm)
    return nullptr;
  return &*V.Const;
}

/// layer_norm(x, shape) * w: a LayerNorm module with weight w (its bias,
/// zero until a following Add folds it).
static llvm::Expected<bool> foldNormWeight(NodeReader &R) {
  for (size_t I = 0; I < 2; ++I) {
    auto L = R.input(I), W = R.input(1 - I);
    if (!L || !W) {
      llvm::consumeError(L.takeError());
      llvm::consumeError(W.takeError());
      return false;
    }
    Node *N = (*L)->N;
    // normCore's layer_norm(x, shape[, None, None[, eps]]).
    if (!N || N->op() != OpCode::CallFunction || N->target() != "layer_norm" ||
        !N->kwargs().empty() || N->numArgs() < 2 || N->numArgs() > 5 ||
        !N->arg(0).isNode() || !N->arg(1).getIntList() || R.readers(N) != 1 ||
        N->hasUsers())
      continue;
    bool Affine = false;
    for (size_t J = 2; J < std::min<size_t>(N->numArgs(), 4); ++J)
      Affine |= !N->arg(J).isNone();
    std::optional<double> Eps = N->numArgs() == 5 ? realArg(N, 4) : 1e-5;
    std::vector<int64_t> Norm = *N->arg(1).getIntList();
    const Tensor *WT = normParam(**W, Norm);
    if (Affine || !Eps || !WT)
      continue;
    Node *X = N->arg(0).getNode();
    bool Batch = (*L)->BatchDim0;
    std::string WName = (*W)->InitName;
    Tensor Zero(DType::F32, Norm);
    for (int64_t J = 0; J < Zero.numElements(); ++J)
      Zero.data<float>()[J] = 0.0f;
    Tensor WCopy = *WT;
    if (!R.takeApart({N}))
      continue;
    auto M = emitLayerNormModule(R, X, Norm, *Eps, WCopy, Zero, WName);
    if (!M)
      return M.takeError();
    R.state().NormsAwaitingBias.insert(*M);
    defineAs(R, *M, Batch);
    return true;
  }
  return false;
}

/// LayerNorm(x) + b right after its weight: b is its bias.
static llvm::Expected<bool> foldNormBias(NodeReader &R) {
  for (size_t I = 0; I < 2; ++I) {
    auto L = R.input(I), B = R.input(1 - I);
    if (!L || !B) {
      llvm::consumeError(L.takeError());
      llvm::consumeError(B.takeError());
      return false;
    }
    Node *N = (*L)->N;
    if (!N || !R.state().NormsAwaitingBias.count(N) || R.readers(N) != 1 ||
        N->hasUsers())
      continue;
    ModuleInfo *M = R.gm().lookupModule(N->target());
    const Tensor *BT =
        M ? normParam(**B, *M->attr("normalized_shape")->getIntList())
          : nullptr;
    if (!BT)
      continue;
    M->setTensor("bias", *BT);
    R.state().NormsAwaitingBias.erase(N);
    defineAs(R, N, (*L)->BatchDim0);
    return true;
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Entry points from the Add / Mul / Div handlers
//===----------------------------------------------------------------------===//

llvm::Expected<bool> qfx::onnximport::addInPattern(NodeReader &R) {
  const OnnxValue *P0 = R.partial(0), *P1 = R.partial(1);
  const OnnxValue *P = P0 ? P0 : P1;
  if (!P)
    return foldNormBias(R);
  if (P->Part != Partial::GeluErf || (P0 && P1))
    return false; // input() names the problem.
  auto O = R.input(P0 ? 1 : 0);
  if (!O)
    return O.takeError();
  std::optional<double> K = realConst(**O);
  if (!K || !near(*K, 1.0))
    return R.error("the Erf of a GELU must be added to 1");
  OnnxValue V;
  V.Part = Partial::GeluErfPlus1;
  V.PartOf = P->PartOf;
  V.BatchDim0 = P->BatchDim0;
  R.define(0, std::move(V));
  return true;
}

llvm::Expected<bool> qfx::onnximport::mulInPattern(NodeReader &R) {
  const OnnxValue *P0 = R.partial(0), *P1 = R.partial(1);
  const OnnxValue *P = P0 ? P0 : P1;
  if (!P) {
    auto Tanh = tanhGelu(R);
    if (!Tanh || *Tanh)
      return Tanh;
    return foldNormWeight(R);
  }
  if (P->Part == Partial::GeluErf || P->Part == Partial::NormSqrt ||
      P->Part == Partial::Taken || (P0 && P1))
    return false;      // input() names the problem.
  OnnxValue Copy = *P; // define() may replace the map entry P points into.
  if (llvm::Error E = mulGelu(R, Copy, P0 ? 1 : 0))
    return E;
  return true;
}

llvm::Expected<bool> qfx::onnximport::divInPattern(NodeReader &R) {
  const OnnxValue *P = R.partial(1);
  if (!P || P->Part != Partial::NormSqrt || R.partial(0))
    return false;
  OnnxValue Copy = *P;
  if (llvm::Error E = normCore(R, Copy))
    return E;
  return true;
}
