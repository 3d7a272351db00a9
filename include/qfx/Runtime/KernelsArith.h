//===- KernelsArith.h - Reference kernels of the arith family --*- C++ -*-===//
//
// The arith family's oracle kernels (sub, div, neg, reciprocal, interpolate,
// embedding, narrow), in PyTorch 1.13's semantics, and the shape functions
// that validate their operands. Like Kernels.h, kernels assert what the
// shape functions check.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_RUNTIME_KERNELSARITH_H
#define QFX_RUNTIME_KERNELSARITH_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace qfx {
namespace ref {

/// torch.div's rounding_mode: None, "trunc" or "floor".
enum class DivRounding : uint8_t { None, Trunc, Floor };

/// a - alpha * b with broadcasting (PyTorch computes sub as add with
/// -alpha).
Tensor sub(const Tensor &A, const Tensor &B, double Alpha = 1.0);
/// a / b with broadcasting, then rounded as \p R says.
Tensor div(const Tensor &A, const Tensor &B, DivRounding R = DivRounding::None);
/// a / s, s rounded to f32 first as PyTorch wraps a Python scalar.
Tensor divScalar(const Tensor &A, double S, DivRounding R = DivRounding::None);
/// s - alpha * a (torch.rsub with a scalar other).
Tensor rsubScalar(const Tensor &A, double S, double Alpha = 1.0);
Tensor neg(const Tensor &A);
Tensor reciprocal(const Tensor &A);

/// F.interpolate's modes (the ones qfx implements).
enum class InterpMode : uint8_t { Nearest, Bilinear };

/// F.interpolate's resolved parameters for a 4-d input: the output size and
/// the scale factors handed to the kernel (absent when the size was given,
/// or when recompute_scale_factor asked to derive them from the sizes).
struct InterpParams {
  InterpMode Mode = InterpMode::Nearest;
  std::array<int64_t, 2> Size{0, 0};
  std::array<std::optional<double>, 2> Scales;
  bool AlignCorners = false;
};

/// Validates an [N, C, H, W] input against \p P and returns the output shape.
llvm::Expected<Shape> interpolateShape(llvm::ArrayRef<int64_t> Input,
                                       const InterpParams &P);
/// PyTorch's nearest source index: floor(dst * scale) with the scale in f32
/// (1/scale_factor when given, else in/out), clamped to In - 1; the
/// identity and 2x cases are exact.
int64_t nearestSourceIndex(int64_t Dst, int64_t In, int64_t Out,
                           std::optional<double> Scale);
/// One axis of bilinear interpolation: source indices I0, I1 and weights
/// L0, L1 of output \p Dst, as PyTorch's float CPU kernel computes them
/// (\p Quantized: the quantized kernel's variant, without the same-size
/// shortcut and the clamp of the weight, its half-pixel offset in float).
struct LinearTap {
  int64_t I0 = 0, I1 = 0;
  float L0 = 1.0f, L1 = 0.0f;
};
LinearTap linearSourceTap(int64_t Dst, int64_t In, int64_t Out,
                          bool AlignCorners, std::optional<double> Scale,
                          bool Quantized = false);
/// F.interpolate on f32 [N, C, H, W].
Tensor interpolate(const Tensor &X, const InterpParams &P);
/// quantized interpolate on u8 / s8 [N, C, H, W]: the output keeps the
/// input's qparams (PyTorch's quantized upsample kernels); bilinear rounds
/// zp + nearbyint(interpolated - zp), which reproduces PyTorch 1.13's
/// outputs on every golden case.
Tensor interpolateQuantized(const Tensor &X, const InterpParams &P);

/// embedding: \p Indices (s64 or s32, any shape) rows of \p Weight
/// [num, dim]; fails naming the first index out of range.
llvm::Expected<Tensor> embedding(const Tensor &Indices, const Tensor &Weight);

/// torch.narrow's output shape.
llvm::Expected<Shape> narrowShape(llvm::ArrayRef<int64_t> Input, int64_t Dim,
                                  int64_t Start, int64_t Length);
/// torch.narrow, copied contiguously (any dtype; qparams kept).
Tensor narrow(const Tensor &X, int64_t Dim, int64_t Start, int64_t Length);
/// The extents torch.split(input, split_size, dim) gives for an extent
/// \p Extent (the last one smaller; one empty piece for an empty extent).
std::vector<int64_t> splitSizes(int64_t Extent, int64_t SplitSize);
/// The extents torch.chunk(input, chunks, dim) gives.
std::vector<int64_t> chunkSizes(int64_t Extent, int64_t Chunks);

} // namespace ref
} // namespace qfx

#endif // QFX_RUNTIME_KERNELSARITH_H
