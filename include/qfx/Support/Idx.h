//===- Idx.h - Reader for IDX files (MNIST, Fashion-MNIST) ------*- C++ -*-===//
//
// The format of the MNIST family of datasets, plain or gzip-compressed:
// a big-endian magic (0x0803 images, 0x0801 labels), the extents, then
// unsigned bytes.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_SUPPORT_IDX_H
#define QFX_SUPPORT_IDX_H

#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>

namespace qfx {

/// Reads an IDX file (".gz" or not) into a u8 tensor: images as [N,1,H,W],
/// labels as [N]. \p Limit > 0 keeps only the first Limit items. Errors
/// name the file and what is wrong (bad magic, truncated data ...).
llvm::Expected<Tensor> readIdx(llvm::StringRef Path, int64_t Limit = 0);

/// Images and their labels, row for row.
struct IdxPair {
  /// u8 [N,1,H,W].
  Tensor Images;
  /// u8 [N], each below the class count.
  Tensor Labels;
};

/// Reads an images file and a labels file (each limited as readIdx does)
/// and checks that they belong together: images of rank 4, labels of rank
/// 1, as many labels as images, every label in [0, \p NumClasses). Errors
/// name the file at fault.
llvm::Expected<IdxPair> readIdxPair(llvm::StringRef ImagesPath,
                                    llvm::StringRef LabelsPath, int64_t Limit,
                                    int64_t NumClasses);

/// u8 images [N,1,H,W] to f32 normalized as the demo's weights were
/// trained: (x / 255 - 0.5) / 0.5.
Tensor normalizeImages(const Tensor &Images);

} // namespace qfx

#endif // QFX_SUPPORT_IDX_H
