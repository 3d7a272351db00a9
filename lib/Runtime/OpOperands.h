//===- OpOperands.h - Operand checks shared by the op-table files -*- C++ -*-=//
//
// Private to lib/Runtime: the typed operand accessors and result-type
// helpers every op family's table (OpTable, ArithOpTable,
// TransformerOpTable) uses, so each family states only its own ops.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_LIB_RUNTIME_OPOPERANDS_H
#define QFX_LIB_RUNTIME_OPOPERANDS_H

#include "QuantKernels.h"

#include "qfx/Runtime/Op.h"

// Propagates an error out of an Expected-returning function.
#define QFX_TRY(Var, Expr)                                                     \
  auto Var = (Expr);                                                           \
  if (!Var)                                                                    \
    return Var.takeError();

namespace qfx {
namespace operands {

inline TensorType f32Type(llvm::ArrayRef<int64_t> Dims) {
  return TensorType{DType::F32, Shape(Dims.begin(), Dims.end()), {}};
}

/// The tensor operand \p I, which must be f32.
inline llvm::Expected<const Tensor *> floatTensor(const BoundArgs &B,
                                                  size_t I) {
  QFX_TRY(T, B.tensor(I));
  if ((*T)->dtype() != DType::F32)
    return B.error(I,
                   "expected an f32 tensor, got " + dtypeName((*T)->dtype()));
  return *T;
}

/// floatTensor, or nullptr when the operand is none.
inline llvm::Expected<const Tensor *> optFloatTensor(const BoundArgs &B,
                                                     size_t I) {
  if (B.isNone(I))
    return nullptr;
  return floatTensor(B, I);
}

/// The tensor operand \p I of an op that runs on f32 and on quantized
/// tensors alike: f32, or u8 / s8 with per-tensor qparams.
inline llvm::Expected<const Tensor *> valueTensor(const BoundArgs &B,
                                                  size_t I) {
  QFX_TRY(T, B.tensor(I));
  if ((*T)->dtype() == DType::F32 || qref::isQuantizedActivation(**T))
    return *T;
  return B.error(I, "expected an f32 tensor or a u8 or s8 tensor with "
                    "per-tensor qparams, got " +
                        qref::describe(**T));
}

/// The result type of a dtype-generic op: \p X's dtype and qparams with
/// shape \p Dims (plain f32 for f32 inputs).
inline TensorType likeInput(const Tensor &X, llvm::ArrayRef<int64_t> Dims) {
  if (X.dtype() == DType::F32)
    return f32Type(Dims);
  return TensorType{X.dtype(), Shape(Dims.begin(), Dims.end()), X.quant()};
}

} // namespace operands
} // namespace qfx

#endif // QFX_LIB_RUNTIME_OPOPERANDS_H
