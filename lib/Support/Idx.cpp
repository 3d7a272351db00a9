//===- Idx.cpp - Reader for IDX files (MNIST, Fashion-MNIST) --------------===//

#include "qfx/Support/Idx.h"

#include "qfx/Support/Error.h"

#include "llvm/ADT/StringExtras.h"

#include <zlib.h>

#include <cstring>
#include <string>
#include <vector>

using namespace qfx;

/// Reads the whole (possibly gzip-compressed) file; gzread passes plain
/// files through unchanged.
static llvm::Expected<std::string> readMaybeGzip(llvm::StringRef Path) {
  gzFile F = gzopen(Path.str().c_str(), "rb");
  if (!F)
    return fileError(Path, "cannot open");
  std::string Data;
  char Buf[1 << 16];
  int N;
  while ((N = gzread(F, Buf, sizeof(Buf))) > 0)
    Data.append(Buf, static_cast<size_t>(N));
  int Err = 0;
  const char *Msg = gzerror(F, &Err);
  std::string Reason = Err < 0 ? std::string(Msg) : std::string();
  gzclose(F);
  if (N < 0 || Err < 0)
    return fileError(Path, "cannot decompress: " + Reason);
  return Data;
}

static uint32_t bigEndian32(const std::string &D, size_t Off) {
  const auto *P = reinterpret_cast<const unsigned char *>(D.data() + Off);
  return (uint32_t(P[0]) << 24) | (uint32_t(P[1]) << 16) |
         (uint32_t(P[2]) << 8) | uint32_t(P[3]);
}

llvm::Expected<Tensor> qfx::readIdx(llvm::StringRef Path, int64_t Limit) {
  auto Data = readMaybeGzip(Path);
  if (!Data)
    return Data.takeError();
  if (Data->size() < 8)
    return fileError(Path, "too short for an IDX header");
  uint32_t Magic = bigEndian32(*Data, 0);
  if (Magic != 0x803 && Magic != 0x801)
    return fileError(Path, "bad magic 0x" + llvm::utohexstr(Magic) +
                               " (expected 0x803 images or 0x801 labels)");
  int64_t N = bigEndian32(*Data, 4);
  Shape S{N};
  size_t Header = 8;
  if (Magic == 0x803) {
    if (Data->size() < 16)
      return fileError(Path, "truncated image header");
    S = {N, 1, int64_t(bigEndian32(*Data, 8)), int64_t(bigEndian32(*Data, 12))};
    Header = 16;
  }
  auto Count = checkedNumElements(S);
  if (!Count)
    return prefixError(Count.takeError(), Path.str());
  if (Data->size() - Header < static_cast<size_t>(*Count))
    return fileError(Path, "data is truncated: expected " +
                               llvm::Twine(*Count) + " bytes, found " +
                               llvm::Twine(Data->size() - Header));
  if (Limit > 0 && Limit < N)
    S[0] = Limit;
  Tensor T(DType::U8, S);
  std::memcpy(T.rawData(), Data->data() + Header, T.byteSize());
  return T;
}

llvm::Expected<IdxPair> qfx::readIdxPair(llvm::StringRef ImagesPath,
                                         llvm::StringRef LabelsPath,
                                         int64_t Limit, int64_t NumClasses) {
  llvm::Expected<Tensor> Images = readIdx(ImagesPath, Limit);
  if (!Images)
    return Images.takeError();
  if (Images->rank() != 4)
    return fileError(ImagesPath, "expected images [N,1,H,W], got u8" +
                                     formatShape(Images->shape()));
  llvm::Expected<Tensor> Labels = readIdx(LabelsPath, Limit);
  if (!Labels)
    return Labels.takeError();
  if (Labels->rank() != 1)
    return fileError(LabelsPath, "expected labels [N], got u8" +
                                     formatShape(Labels->shape()));
  // Consumers index the labels by image row: a short labels file would be
  // read past its end.
  if (Images->dim(0) != Labels->dim(0))
    return fileError(LabelsPath, llvm::Twine(Labels->dim(0)) + " labels but '" +
                                     ImagesPath + "' has " +
                                     llvm::Twine(Images->dim(0)) + " images");
  const uint8_t *L = Labels->data<uint8_t>();
  for (int64_t I = 0; I < Labels->dim(0); ++I)
    if (L[I] >= NumClasses)
      return fileError(LabelsPath, "row " + llvm::Twine(I) + ": label " +
                                       llvm::Twine(unsigned(L[I])) +
                                       " is not in [0, " +
                                       llvm::Twine(NumClasses) + ")");
  return IdxPair{std::move(*Images), std::move(*Labels)};
}

Tensor qfx::normalizeImages(const Tensor &Images) {
  Tensor R(DType::F32, Images.shape());
  const uint8_t *In = Images.data<uint8_t>();
  float *Out = R.data<float>();
  for (int64_t I = 0; I < R.numElements(); ++I)
    Out[I] = (static_cast<float>(In[I]) / 255.0f - 0.5f) / 0.5f;
  return R;
}
