//===- Npy.h - NumPy .npy reader and writer ---------------------*- C++ -*-===//
//
// Users' inputs and calibration data arrive as .npy files. Supported: format
// versions 1.0, 2.0 and 3.0, little-endian (or byte-order-free) dtypes
// <f4, |i1, |u1, <i4, <i8 (and |b1 is rejected), C order only; <f8 only
// through the input readers, which convert it to float32.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_NPY_H
#define QFX_SUPPORT_NPY_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace qfx {

/// Parses the bytes of a .npy file. \p Name (usually the path) prefixes every
/// error message. Rejects Fortran order, big-endian data, unsupported dtypes,
/// malformed headers, and data shorter or longer than the shape says.
llvm::Expected<Tensor> parseNpy(llvm::StringRef Bytes, llvm::StringRef Name);

/// Reads and parses a .npy file. float64 data is an error that says how to
/// save float32.
llvm::Expected<Tensor> readNpy(llvm::StringRef Path);

/// parseNpy for model inputs and calibration data: float64 (numpy's default
/// float dtype) is converted to float32, rounding to nearest as
/// x.astype(np.float32) does. Not for weights, whose precision the caller
/// should choose.
llvm::Expected<Tensor> parseNpyInput(llvm::StringRef Bytes,
                                     llvm::StringRef Name);
/// readNpy with parseNpyInput's float64 conversion.
llvm::Expected<Tensor> readNpyInput(llvm::StringRef Path);

/// Encodes a tensor as .npy (version 1.0, C order, little-endian).
/// Quantization parameters are not stored (.npy has no place for them).
std::string encodeNpy(const Tensor &T);

/// Writes a tensor as .npy atomically.
llvm::Error writeNpy(llvm::StringRef Path, const Tensor &T);

} // namespace qfx

#endif // QFX_SUPPORT_NPY_H
