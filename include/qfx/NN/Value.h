//===- Value.h - The tensor handle model code computes with -----*- C++ -*-===//
//
// A Value carries either data (eager execution) or a node of a graph being
// recorded (symbolic tracing), so one forward() serves both: the same model
// code runs on images and records its own graph, with no templates and no
// special types. Ops on Values dispatch through the op table (Runtime/Op.h).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_NN_VALUE_H
#define QFX_NN_VALUE_H

#include "qfx/IR/Graph.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace qfx {
namespace nn {

class Tracer;

/// Thrown by model code on errors users cause (shape mismatches, bad
/// arguments). symbolicTrace turns it into an llvm::Error.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Thrown when forward() uses a symbolic value where a concrete one is
/// needed (control flow, reading a scalar). The message names the module
/// path and the op.
class TraceError : public Error {
public:
  using Error::Error;
};

/// A tensor handle: concrete (holds a Tensor) or symbolic (holds a node of
/// the graph being traced, with its static type).
class Value {
public:
  /// An undefined value.
  Value() = default;
  /// A concrete value. Implicit, so tensors can be passed where Values are
  /// expected.
  Value(Tensor T);

  bool defined() const { return Defined; }
  bool isSymbolic() const { return N != nullptr; }
  /// The data of a concrete value; throws TraceError if symbolic.
  const Tensor &tensor() const;
  /// The node of a symbolic value, or nullptr.
  Node *node() const { return N; }
  Tracer *tracer() const { return T; }

  /// Static information, available in both worlds (shapes are concrete at
  /// trace time, specialized to the example inputs).
  DType dtype() const;
  llvm::ArrayRef<int64_t> shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  /// Extent of dimension \p D (negative counts from the end).
  int64_t size(int64_t D) const;
  int64_t numel() const;

  /// Tensor methods (recorded as call_method when symbolic).
  Value reshape(llvm::ArrayRef<int64_t> Shape) const;
  Value view(llvm::ArrayRef<int64_t> Shape) const;
  Value flatten(int64_t StartDim = 0, int64_t EndDim = -1) const;
  Value permute(llvm::ArrayRef<int64_t> Dims) const;
  Value transpose(int64_t Dim0, int64_t Dim1) const;
  Value contiguous() const;
  /// Tensor.expand: -1 keeps a dimension. With \p BatchLike, size[0] is
  /// that tensor's dimension 0 wherever the graph runs, so a graph traced at
  /// one batch size works at any (qfx's stand-in for x.shape[0]).
  Value expand(llvm::ArrayRef<int64_t> Sizes) const;
  Value expand(llvm::ArrayRef<int64_t> Sizes, const Value &BatchLike) const;
  /// Tensor.select(dim, index) (x[:, 0] is select(1, 0)).
  Value select(int64_t Dim, int64_t Index) const;
  Value mean(llvm::ArrayRef<int64_t> Dims, bool KeepDim = false) const;
  Value relu() const;
  Value sigmoid() const;
  Value tanh() const;

  // arith family: torch.Tensor.split / chunk (one narrow node per piece).
  std::vector<Value> split(int64_t SplitSize, int64_t Dim = 0) const;
  std::vector<Value> chunk(int64_t Chunks, int64_t Dim = 0) const;

  /// Control flow on data: fine eagerly, a TraceError when symbolic (like
  /// torch.fx's "symbolically traced variables cannot be used as inputs to
  /// control flow").
  explicit operator bool() const;
  /// The single element as a double; a TraceError when symbolic.
  double item() const;

private:
  friend class Tracer;
  Value(Tracer *T, Node *N, TensorType Ty);

  bool Defined = false;
  Tensor Data;
  Tracer *T = nullptr;
  Node *N = nullptr;
  TensorType Ty;
};

Value operator+(const Value &A, const Value &B);
Value operator+(const Value &A, double S);
Value operator+(double S, const Value &A);
Value operator*(const Value &A, const Value &B);
Value operator*(const Value &A, double S);
Value operator*(double S, const Value &A);

// arith family: `-` records sub / rsub / neg, `/` records div, and
// `s / x` records reciprocal then mul, which is how torch's __rtruediv__
// computes it.
Value operator-(const Value &A, const Value &B);
Value operator-(const Value &A, double S);
Value operator-(double S, const Value &A);
Value operator-(const Value &A);
Value operator/(const Value &A, const Value &B);
Value operator/(const Value &A, double S);
Value operator/(double S, const Value &A);

/// An argument of an op call: a Value, a plain argument (int, float, bool,
/// string, none, int list), or a list of Values (cat).
class OpArg {
public:
  OpArg(Value V) : K(Kind::Val), V(std::move(V)) {}
  OpArg(Tensor T) : OpArg(Value(std::move(T))) {}
  OpArg(Argument A) : K(Kind::Arg), A(std::move(A)) {}
  OpArg(int64_t I) : OpArg(Argument::integer(I)) {}
  OpArg(int I) : OpArg(Argument::integer(I)) {}
  OpArg(double D) : OpArg(Argument::real(D)) {}
  OpArg(bool B) : OpArg(Argument::boolean(B)) {}
  OpArg(std::vector<int64_t> L) : OpArg(Argument::ints(L)) {}
  OpArg(std::vector<Value> L) : K(Kind::List), L(std::move(L)) {}

  enum class Kind : uint8_t { Val, Arg, List };
  Kind K;
  Value V;
  Argument A;
  std::vector<Value> L;
};

using OpKwargs = std::vector<std::pair<std::string, OpArg>>;

/// Runs op \p Op eagerly, or records it when any argument is symbolic.
/// \p AsMethod records call_method instead of call_function. Throws
/// nn::Error on invalid arguments.
Value dispatch(llvm::StringRef Op, std::vector<OpArg> Args,
               OpKwargs Kwargs = {}, bool AsMethod = false);

} // namespace nn
} // namespace qfx

#endif // QFX_NN_VALUE_H
