//===- Op.h - The op table: schemas, type inference, execution --*- C++ -*-===//
//
// Every call_function / call_method target and every standard module kind
// is described once here: its schema (parameter names and defaults, as in
// PyTorch's signatures), how to infer its result type, and how to run it.
// The tracer (eager and symbolic forward) and the interpreter both go
// through this table, which is why an interpreted graph reproduces eager
// forward() bit for bit.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_OP_H
#define QFX_RUNTIME_OP_H

#include "qfx/IR/Graph.h"
#include "qfx/Runtime/Kernels.h"
#include "qfx/Runtime/KernelsConvFamily.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace qfx {

class ModuleInfo;

/// An op operand: a tensor, a plain (non-node) argument, or a list of
/// operands (cat's tensor list). For type inference, tensors are
/// Tensor::declared (type only); for execution they hold data.
class Operand {
public:
  Operand() = default;
  Operand(Tensor T) : K(Kind::Tensor), T(std::move(T)) {}
  Operand(Argument A);
  static Operand list(std::vector<Operand> Elems);

  enum class Kind : uint8_t { Tensor, Arg, List };
  Kind kind() const { return K; }
  bool isTensor() const { return K == Kind::Tensor; }
  bool isList() const { return K == Kind::List; }
  bool isNone() const { return K == Kind::Arg && A.isNone(); }
  const Tensor &tensor() const;
  const Argument &arg() const;
  const std::vector<Operand> &elems() const;

private:
  Kind K = Kind::Arg;
  Tensor T;
  Argument A;
  std::vector<Operand> L;
};

/// One schema parameter: a name and, if optional, its default.
struct OpParam {
  /// A required parameter.
  OpParam(const char *Name) : Name(Name) {}
  /// An optional parameter with its default.
  OpParam(const char *Name, Argument Default)
      : Name(Name), Default(std::move(Default)) {}

  const char *Name;
  std::optional<Argument> Default;
};

/// Operands bound to a schema (positional + keyword + defaults), with typed
/// accessors that fail with messages naming the op and the parameter.
class BoundArgs {
public:
  BoundArgs(llvm::StringRef Op, std::vector<const char *> Names,
            std::vector<Operand> Values)
      : Op(Op), Names(std::move(Names)), Values(std::move(Values)) {}

  llvm::StringRef op() const { return Op; }
  size_t size() const { return Values.size(); }
  const Operand &operand(size_t I) const { return Values[I]; }

  llvm::Expected<const Tensor *> tensor(size_t I) const;
  /// nullptr when the operand is none.
  llvm::Expected<const Tensor *> optTensor(size_t I) const;
  llvm::Expected<std::vector<Tensor>> tensorList(size_t I) const;
  llvm::Expected<int64_t> integer(size_t I) const;
  /// Ints and floats both read as double.
  llvm::Expected<double> real(size_t I) const;
  llvm::Expected<bool> boolean(size_t I) const;
  llvm::Expected<std::vector<int64_t>> ints(size_t I) const;
  /// PyTorch's _pair: an int k means (k, k); a list must have two ints.
  llvm::Expected<std::array<int64_t, 2>> pair(size_t I) const;
  bool isNone(size_t I) const { return Values[I].isNone(); }

  /// An error "<op>: <param>: <Msg>".
  llvm::Error error(size_t I, const llvm::Twine &Msg) const;

private:
  std::string Op;
  std::vector<const char *> Names;
  std::vector<Operand> Values;
};

/// An op: schema plus type inference and execution.
struct OpDef {
  const char *Name;
  /// Whether it is recorded as call_function (F::relu) or call_method
  /// (x.reshape); some ops exist as both.
  bool IsFunction;
  bool IsMethod;
  std::vector<OpParam> Params;
  llvm::Expected<TensorType> (*Infer)(const BoundArgs &);
  llvm::Expected<Tensor> (*Run)(const BoundArgs &);
};

/// The op called \p Name, or nullptr.
const OpDef *lookupOp(llvm::StringRef Name);
/// All ops, sorted by name.
llvm::ArrayRef<OpDef> allOps();

/// Binds positional and keyword operands to \p Def's schema: too many or
/// unknown arguments, missing required ones and duplicates are errors.
llvm::Expected<BoundArgs>
bindArgs(const OpDef &Def, std::vector<Operand> Positional,
         std::vector<std::pair<std::string, Operand>> Keywords);

/// Binds and infers the result type of op \p Name.
llvm::Expected<TensorType>
inferOp(llvm::StringRef Name, std::vector<Operand> Positional,
        std::vector<std::pair<std::string, Operand>> Keywords = {});
/// Binds and runs op \p Name on data.
llvm::Expected<Tensor>
runOp(llvm::StringRef Name, std::vector<Operand> Positional,
      std::vector<std::pair<std::string, Operand>> Keywords = {});

/// conv2d's stride / padding / dilation / groups from its bound arguments
/// (also what its gradient needs).
llvm::Expected<ref::Conv2dParams> conv2dParams(const BoundArgs &B);
/// conv1d's (and quantized_conv1d's) parameters as those of the conv2d it
/// runs as: input [N, C, 1, L], stride (1, s), padding (0, p), dilation
/// (1, d) (also what its gradient needs).
llvm::Expected<ref::Conv2dParams> conv1dParams(const BoundArgs &B);
/// conv_transpose2d's stride / padding / output_padding / groups / dilation.
llvm::Expected<ref::ConvTranspose2dParams>
convTranspose2dParams(const BoundArgs &B);
/// max_pool2d's (\p IsMax) or avg_pool2d's window parameters, PyTorch's
/// defaults applied.
llvm::Expected<ref::Pool2dParams> pool2dParams(const BoundArgs &B, bool IsMax);

/// Standard leaf module kinds (Conv2d, Linear, ReLU ...) are ops applied to
/// the module's tensors and attributes. A data table maps each kind to its op
/// and says which tensors and attributes become which operands.
struct ModuleKindDef {
  const char *Kind;
  const char *Op;
  /// Module tensors passed after the input, in order ("" = absent -> none).
  std::vector<const char *> TensorOperands;
  /// Module attributes passed as keyword arguments of the same name.
  std::vector<const char *> AttrOperands;
  /// Module attributes passed positionally between the input and the
  /// tensors, for schemas that put them there (layer_norm's
  /// normalized_shape).
  std::vector<const char *> LeadingAttrs = {};
};

/// The kind \p Kind, or nullptr for kinds that are not standard leaves.
const ModuleKindDef *lookupModuleKind(llvm::StringRef Kind);

/// The op call that module \p M applied to \p Inputs stands for; tensors of
/// \p M are passed as-is (declared tensors give type inference).
llvm::Expected<std::pair<const OpDef *, BoundArgs>>
bindModuleCall(const ModuleInfo &M, std::vector<Operand> Inputs);

/// Which implementation runs conv2d, linear and pooling: the reference
/// kernels or oneDNN's fp32 primitives (the default). Both the eager path
/// and the interpreter read this, so they always agree.
enum class KernelMode { Reference, OneDNN };
void setKernelMode(KernelMode M);
KernelMode kernelMode();

} // namespace qfx

#endif // QFX_RUNTIME_OP_H
