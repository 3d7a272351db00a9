//===- Safetensors.h - .safetensors reader and writer -----------*- C++ -*-===//
//
// The format PyTorch users save state_dicts in: an 8-byte little-endian
// header length, a JSON header mapping names to {dtype, shape, data_offsets},
// then the raw little-endian bytes. Supported dtypes: F32, I8, U8, I32, I64.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_SAFETENSORS_H
#define QFX_SUPPORT_SAFETENSORS_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>

namespace qfx {

/// The contents of a .safetensors file. Names are kept sorted so that the
/// same contents always encode to the same bytes.
struct SafetensorsFile {
  std::map<std::string, Tensor> Tensors;
  /// The optional "__metadata__" string-to-string map.
  std::map<std::string, std::string> Metadata;
};

/// Parses the bytes of a .safetensors file, validating the header length,
/// the JSON, every dtype and shape, and every data offset (in range, size
/// equal to shape x dtype size, no overlaps, no gaps). \p Name prefixes
/// error messages.
llvm::Expected<SafetensorsFile> parseSafetensors(llvm::StringRef Bytes,
                                                 llvm::StringRef Name);

/// Reads and parses a .safetensors file.
llvm::Expected<SafetensorsFile> readSafetensors(llvm::StringRef Path);

/// Encodes tensors in name order, header padded with spaces to a multiple of
/// 8 bytes as the reference implementation does. Quantization parameters are
/// not stored.
std::string encodeSafetensors(const SafetensorsFile &F);

/// Writes a .safetensors file atomically.
llvm::Error writeSafetensors(llvm::StringRef Path, const SafetensorsFile &F);

} // namespace qfx

#endif // QFX_SUPPORT_SAFETENSORS_H
