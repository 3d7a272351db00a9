// Unit tests for quantize / dequantize / fake-quantize: bit-exact against
// PyTorch 1.13 on random values, exact ties and special values.
#include "qfx/Quant/Quantize.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

using namespace qfx;

namespace {

std::string quantDataPath(llvm::StringRef Name) {
  return std::string(QFX_TEST_DATA_DIR) + "/quant/" + Name.str();
}

Tensor loadNpy(llvm::StringRef Name) {
  llvm::Expected<Tensor> T = readNpy(quantDataPath(Name));
  if (!T)
    FAIL(errorToString(T.takeError()));
  return *T;
}

std::vector<std::string> splitText(llvm::StringRef S, char Sep) {
  llvm::SmallVector<llvm::StringRef, 16> Parts;
  S.split(Parts, Sep);
  return std::vector<std::string>(Parts.begin(), Parts.end());
}

DType quantizedDtype(llvm::StringRef S) {
  return S == "quint8" ? DType::U8 : S == "qint8" ? DType::S8 : DType::S32;
}

/// Same dtype, shape and bytes (quantization parameters aside); on a
/// mismatch, reports the first differing element.
bool sameValues(const Tensor &Got, const Tensor &Want) {
  Tensor G = Got.clone();
  G.setQuant(QuantParams());
  if (G.identical(Want))
    return true;
  if (Got.dtype() != Want.dtype() || Got.shape() != Want.shape()) {
    UNSCOPED_INFO("dtype or shape differs");
    return false;
  }
  for (int64_t I = 0; I < Got.numElements(); ++I)
    if (Got.getAsDouble(I) != Want.getAsDouble(I) ||
        std::signbit(Got.getAsDouble(I)) != std::signbit(Want.getAsDouble(I))) {
      UNSCOPED_INFO("element " << I << ": got " << Got.getAsDouble(I)
                               << ", want " << Want.getAsDouble(I));
      break;
    }
  return false;
}

Tensor floats(llvm::ArrayRef<float> V) {
  return Tensor::fromFloats({static_cast<int64_t>(V.size())}, V);
}

std::vector<double> asDoubles(const Tensor &T) {
  std::vector<double> R;
  for (int64_t I = 0; I < T.numElements(); ++I)
    R.push_back(T.getAsDouble(I));
  return R;
}

} // namespace

TEST_CASE("quantize, dequantize and fake-quantize match PyTorch", "[quant]") {
  llvm::Expected<std::string> Text = readFile(quantDataPath("quantize.tsv"));
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  int Cases = 0;
  for (const std::string &Line : splitText(*Text, '\n')) {
    if (Line.empty())
      continue;
    std::vector<std::string> Col = splitText(Line, '\t');
    REQUIRE(Col.size() == 8);
    const std::string &Name = Col[0];
    INFO("case " << Name);
    DType T = quantizedDtype(Col[2]);
    std::vector<double> Scales;
    for (const std::string &S : splitText(Col[3], ','))
      Scales.push_back(std::strtod(S.c_str(), nullptr));
    std::vector<int64_t> Zps;
    for (const std::string &Z : splitText(Col[4], ','))
      Zps.push_back(std::stoll(Z));
    int64_t Axis = std::stoll(Col[5]);
    int64_t QMin = std::stoll(Col[6]), QMax = std::stoll(Col[7]);
    Tensor X = loadNpy("qt_" + Name + "_x.npy");
    if (Col[1] == "per_tensor") {
      Tensor Q = quantizePerTensor(X, Scales[0], Zps[0], T);
      CHECK(Q.quant() == QuantParams::perTensor(Scales[0], Zps[0]));
      CHECK(sameValues(Q, loadNpy("qt_" + Name + "_q.npy")));
      CHECK(sameValues(dequantize(Q), loadNpy("qt_" + Name + "_dq.npy")));
      CHECK(sameValues(fakeQuantizePerTensor(X, Scales[0], Zps[0], QMin, QMax),
                       loadNpy("qt_" + Name + "_fq.npy")));
      CHECK(sameValues(
          fakeQuantizeMaskPerTensor(X, Scales[0], Zps[0], QMin, QMax),
          loadNpy("qt_" + Name + "_mask.npy")));
    } else {
      Tensor Q = quantizePerChannel(X, Scales, Zps, Axis, T);
      CHECK(Q.quant() == QuantParams::perChannel(Scales, Zps, Axis));
      CHECK(sameValues(Q, loadNpy("qt_" + Name + "_q.npy")));
      CHECK(sameValues(dequantize(Q), loadNpy("qt_" + Name + "_dq.npy")));
      CHECK(sameValues(fakeQuantizePerChannel(X, Scales, Zps, Axis, QMin, QMax),
                       loadNpy("qt_" + Name + "_fq.npy")));
    }
    ++Cases;
  }
  CHECK(Cases == 7);
}

TEST_CASE("quantize rounds half to even after scaling by 1 / scale",
          "[quant]") {
  Tensor Q = quantizePerTensor(floats({0.5f, 1.5f, 2.5f, -0.5f, -1.5f}), 1.0,
                               10, DType::U8);
  CHECK(asDoubles(Q) == std::vector<double>{10, 12, 12, 10, 8});
  // x * (1 / scale) is exactly 127.5 in float (x / scale would give
  // 127.49999), and rounds to 128.
  Q = quantizePerTensor(floats({0.273939937f}), 0.00214854861, 0, DType::U8);
  CHECK(Q.getAsDouble(0) == 128);
  // Saturation, and PyTorch's treatment of values beyond int64: infinities
  // and NaN become quant_min.
  float Inf = std::numeric_limits<float>::infinity();
  Q = quantizePerTensor(floats({1e10f, -1e10f, Inf, -Inf, std::nanf("")}), 1.0,
                        0, DType::S8);
  CHECK(asDoubles(Q) == std::vector<double>{127, -128, -128, -128, -128});
  Q = quantizePerTensor(floats({3e9f, -3e9f}), 1.0, 0, DType::S32);
  CHECK(asDoubles(Q) == std::vector<double>{2147483647.0, -2147483648.0});
}

TEST_CASE("dequantize per tensor and per channel", "[quant]") {
  Tensor Q = quantizePerTensor(floats({-0.3f, 0.0f, 2.0f}), 0.1, 5, DType::U8);
  CHECK(asDoubles(Q) == std::vector<double>{2, 5, 25});
  // Per tensor: float(q - zp) * float(scale).
  Tensor D = dequantize(Q);
  CHECK(D.dtype() == DType::F32);
  CHECK(D.data<float>()[0] == -3.0f * 0.1f);
  CHECK(D.data<float>()[2] == 20.0f * 0.1f);
  // Per channel: the product is taken in double, then rounded.
  Tensor QC = quantizePerChannel(Tensor::fromFloats({2, 2}, {1, 2, 3, 4}),
                                 {0.1, 0.3}, {0, 1}, 0, DType::S8);
  Tensor DC = dequantize(QC);
  CHECK(DC.data<float>()[1] == static_cast<float>(20 * 0.1));
  CHECK(DC.data<float>()[3] == static_cast<float>(13 * 0.3));
  CHECK(QC.getAsDouble(3) == 14);
}

TEST_CASE("fake quantize and its mask", "[quant]") {
  Tensor X = floats({-1.0f, 0.26f, 0.5f, 2.0f, 1.3f});
  Tensor FQ = fakeQuantizePerTensor(X, 0.25, 2, 0, 7);
  // q = clamp(nearbyint(x / 0.25) + 2, 0, 7): 0 (clamped), 3, 4, 7 (clamped
  // from 10), 7 (5 + 2).
  CHECK(asDoubles(FQ) == std::vector<double>{-0.5, 0.25, 0.5, 1.25, 1.25});
  Tensor Mask = fakeQuantizeMaskPerTensor(X, 0.25, 2, 0, 7);
  CHECK(Mask.dtype() == DType::U8);
  CHECK(asDoubles(Mask) == std::vector<double>{0, 1, 1, 0, 1});

  Tensor PC =
      fakeQuantizePerChannel(Tensor::fromFloats({2, 3}, {1, 2, 3, 1, 2, 3}),
                             {1.0, 0.5}, {0, 0}, 0, -2, 2);
  CHECK(asDoubles(PC) == std::vector<double>{1, 2, 2, 1, 1, 1});
}
