// Unit tests for the observers: golden runs against PyTorch 1.13, state
// round trips, errors, and the behaviour of the calibrators PyTorch lacks.
#include "qfx/Quant/Observer.h"

#include "qfx/Quant/ObserverModule.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/Quant/Quantize.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace qfx;
using Catch::Contains;

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

std::vector<double> doubles(llvm::StringRef S) {
  std::vector<double> R;
  for (const std::string &P : splitText(S, ','))
    R.push_back(std::strtod(P.c_str(), nullptr));
  return R;
}

std::vector<int64_t> integers(llvm::StringRef S) {
  std::vector<int64_t> R;
  for (const std::string &P : splitText(S, ','))
    R.push_back(std::strtoll(P.c_str(), nullptr, 10));
  return R;
}

/// The lines of a tab-separated golden file, split into columns.
std::vector<std::vector<std::string>> readTsv(llvm::StringRef Name) {
  llvm::Expected<std::string> Text = readFile(quantDataPath(Name));
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  std::vector<std::vector<std::string>> Rows;
  for (const std::string &Line : splitText(*Text, '\n'))
    if (!Line.empty())
      Rows.push_back(splitText(Line, '\t'));
  return Rows;
}

DType parseTorchDtype(llvm::StringRef S) {
  return S == "quint8" ? DType::U8 : S == "qint8" ? DType::S8 : DType::F32;
}

/// Batch \p B of a [3, ...] dataset as its own tensor.
Tensor batch(const Tensor &Data, int64_t B) {
  llvm::SmallVector<int64_t, 4> Shape(Data.shape().begin() + 1,
                                      Data.shape().end());
  Tensor T(DType::F32, Shape);
  int64_t N = T.numElements();
  std::memcpy(T.data<float>(), Data.data<float>() + B * N, N * sizeof(float));
  return T;
}

/// make_quant_golden.py's splitmix_uniform: SplitMix64 of Seed + I, top 24
/// bits as a float in [0, 1).
std::vector<float> splitmixUniform(int64_t N, uint64_t Seed) {
  std::vector<float> R(N);
  for (int64_t I = 0; I < N; ++I) {
    uint64_t Z = (static_cast<uint64_t>(I) + Seed) * 0x9E3779B97F4A7C15ull;
    Z = (Z ^ (Z >> 30)) * 0xBF58476D1CE4E5B9ull;
    Z = (Z ^ (Z >> 27)) * 0x94D049BB133111EBull;
    Z ^= Z >> 31;
    R[I] = static_cast<float>(Z >> 40) * 0x1p-24f;
  }
  return R;
}

/// make_quant_golden.py's big_dataset, recomputed bit for bit: [24, 25088].
Tensor bigDataset() {
  constexpr int64_t Batches = 24, N = 25088;
  Tensor T(DType::F32, {Batches, N});
  for (int64_t B = 0; B < Batches; ++B) {
    std::vector<float> U[4];
    for (int K = 0; K < 4; ++K)
      U[K] = splitmixUniform(N, 1000003ull * (4 * B + K));
    float Scale = static_cast<float>(1 + 0.05 * B);
    float Shift = static_cast<float>(0.125 * B);
    float *Out = T.data<float>() + B * N;
    for (int64_t I = 0; I < N; ++I)
      Out[I] =
          ((U[0][I] + U[1][I]) + (U[2][I] + U[3][I]) - 2.0f) * Scale + Shift;
  }
  return T;
}

Tensor floats(llvm::ArrayRef<float> V) {
  return Tensor::fromFloats({static_cast<int64_t>(V.size())}, V);
}

const Tensor *stateBuffer(const std::vector<NamedTensor> &State,
                          llvm::StringRef Name) {
  for (const NamedTensor &T : State)
    if (T.Name == Name)
      return &T.Value;
  return nullptr;
}

QuantParams qparamsOf(const Observer &O) {
  llvm::Expected<QuantParams> QP = O.calculateQParams();
  if (!QP)
    FAIL(errorToString(QP.takeError()));
  return *QP;
}

std::string qparamsError(const Observer &O) {
  llvm::Expected<QuantParams> QP = O.calculateQParams();
  if (QP)
    return "";
  return errorToString(QP.takeError());
}

double relErr(double Got, double Want) {
  return Want == 0 ? std::fabs(Got) : std::fabs(Got - Want) / std::fabs(Want);
}

/// sum((i + 1) * h[i]) in double, in order, as the generator computes it.
double checksum(const Tensor &H) {
  double Sum = 0;
  for (int64_t I = 0; I < H.numElements(); ++I)
    Sum += static_cast<double>(I + 1) * H.data<float>()[I];
  return Sum;
}

std::vector<float> gaussian(size_t N, unsigned Seed, float Sigma = 1.0f) {
  std::mt19937 Gen(Seed);
  std::normal_distribution<float> D(0.0f, Sigma);
  std::vector<float> V(N);
  for (float &X : V)
    X = D(Gen);
  return V;
}

/// Mean squared error of fake-quantizing \p X with \p QP.
double fakeQuantMse(const std::vector<float> &X, const QuantParams &QP,
                    const ObserverSpec &Spec) {
  Tensor FQ = fakeQuantizePerTensor(floats(X), QP.Scale, QP.ZeroPoint,
                                    Spec.QuantMin, Spec.QuantMax);
  double Sum = 0;
  for (size_t I = 0; I < X.size(); ++I) {
    double D = static_cast<double>(FQ.data<float>()[I]) - X[I];
    Sum += D * D;
  }
  return Sum / static_cast<double>(X.size());
}

} // namespace

TEST_CASE("observers match PyTorch on golden runs", "[quant]") {
  std::map<std::string, Tensor> Data;
  std::map<std::string, double> MaxRel;
  int Exact = 0, Total = 0, FullHistograms = 0;
  for (const std::vector<std::string> &Row : readTsv("observers.tsv")) {
    REQUIRE(Row.size() == 17);
    const std::string &Name = Row[0];
    INFO("case " << Name);
    std::optional<ObserverKind> Kind = parseObserverKind(Row[1]);
    std::optional<QScheme> Scheme = parseQScheme(Row[3]);
    REQUIRE(Kind);
    REQUIRE(Scheme);
    ObserverSpec Spec = ObserverSpec::make(*Kind, parseTorchDtype(Row[2]),
                                           *Scheme, Row[6] == "1");
    Spec.QuantMin = std::stoll(Row[4]);
    Spec.QuantMax = std::stoll(Row[5]);
    Spec.AveragingConstant = std::strtod(Row[7].c_str(), nullptr);
    Spec.ChAxis = std::stoll(Row[8]);
    Spec.Bins = std::stoll(Row[9]);
    Spec.UpsampleRate = std::stoll(Row[10]);
    REQUIRE(Spec.validate() == "");
    if (!Data.count(Row[11]))
      Data[Row[11]] =
          Row[11] == "big" ? bigDataset() : loadNpy("data_" + Row[11] + ".npy");
    const Tensor &D = Data[Row[11]];

    std::unique_ptr<Observer> O = Observer::create(Spec);
    for (int64_t B = 0; B < D.dim(0); ++B)
      O->observe(batch(D, B));
    QuantParams QP = qparamsOf(*O);
    std::vector<double> Scales = doubles(Row[12]);
    std::vector<int64_t> Zps = integers(Row[13]);
    std::vector<double> Scale =
        QP.isPerChannel() ? QP.Scales : std::vector<double>{QP.Scale};
    std::vector<int64_t> Zp =
        QP.isPerChannel() ? QP.ZeroPoints : std::vector<int64_t>{QP.ZeroPoint};
    REQUIRE(QP.isPerChannel() == isPerChannel(*Kind));
    REQUIRE(Scale.size() == Scales.size());
    CHECK(Zp == Zps);
    for (size_t I = 0; I < Scales.size(); ++I) {
      double E = relErr(Scale[I], Scales[I]);
      MaxRel[Row[1]] = std::max(MaxRel[Row[1]], E);
      CHECK(E <= 1e-6);
      Exact += Scale[I] == Scales[I];
      ++Total;
    }

    std::vector<NamedTensor> State = O->state();
    const Tensor *Min = stateBuffer(State, "min_val");
    const Tensor *Max = stateBuffer(State, "max_val");
    REQUIRE(Min);
    REQUIRE(Max);
    std::vector<double> WantMin = doubles(Row[14]), WantMax = doubles(Row[15]);
    REQUIRE(Min->numElements() == static_cast<int64_t>(WantMin.size()));
    for (size_t I = 0; I < WantMin.size(); ++I) {
      CHECK(Min->getAsDouble(I) == WantMin[I]);
      CHECK(Max->getAsDouble(I) == WantMax[I]);
    }
    if (Row[16] != "-") {
      const Tensor *H = stateBuffer(State, "histogram");
      REQUIRE(H);
      CHECK(checksum(*H) == std::strtod(Row[16].c_str(), nullptr));
      std::string HistFile = quantDataPath("hist_" + Name + ".npy");
      // A few runs also have the whole histogram.
      if (llvm::Expected<Tensor> Want = readNpy(HistFile)) {
        CHECK(H->identical(*Want));
        ++FullHistograms;
      } else {
        llvm::consumeError(Want.takeError());
      }
    }
  }
  for (const auto &[Kind, E] : MaxRel)
    WARN(Kind << ": max relative scale error " << E);
  WARN(Exact << " of " << Total << " scales bit-exact");
  CHECK(Total > 400);
  CHECK(FullHistograms == 2);
}

TEST_CASE("calculateQParams follows PyTorch's _calculate_qparams", "[quant]") {
  ObserverSpec U8 = ObserverSpec::make(ObserverKind::MinMax, DType::U8,
                                       QScheme::PerTensorAffine);
  // The range always includes zero.
  QuantParams P = calculateQParams(1.0, 3.0, U8);
  CHECK(P.isPerTensor());
  CHECK(P.Scale == static_cast<double>(3.0f / 255.0f));
  CHECK(P.ZeroPoint == 0);
  P = calculateQParams(-2.0, -1.0, U8);
  CHECK(P.ZeroPoint == 255);
  // A zero range clamps the scale to float32's epsilon.
  P = calculateQParams(0.0, 0.0, U8);
  CHECK(P.Scale == std::ldexp(1.0, -23));
  CHECK(P.ZeroPoint == 0);

  ObserverSpec Sym = ObserverSpec::make(ObserverKind::MinMax, DType::U8,
                                        QScheme::PerTensorSymmetric);
  P = calculateQParams(-1.0, 2.0, Sym);
  CHECK(P.ZeroPoint == 128);
  CHECK(P.Scale == static_cast<double>(2.0f / 127.5f));
  // A customized quint8 range takes the rounded-down midpoint.
  Sym.QuantMin = 0;
  Sym.QuantMax = 15;
  CHECK(calculateQParams(-1.0, 2.0, Sym).ZeroPoint == 7);
  ObserverSpec S8 = ObserverSpec::make(ObserverKind::MinMax, DType::S8,
                                       QScheme::PerTensorSymmetric);
  P = calculateQParams(-3.0, 2.0, S8);
  CHECK(P.ZeroPoint == 0);
  CHECK(P.Scale == static_cast<double>(3.0f / 127.5f));
}

TEST_CASE("observers before and without data", "[quant]") {
  for (ObserverKind K :
       {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax,
        ObserverKind::Histogram, ObserverKind::Percentile,
        ObserverKind::Entropy, ObserverKind::MSE}) {
    ObserverSpec Spec =
        ObserverSpec::make(K, DType::U8, QScheme::PerTensorAffine);
    std::unique_ptr<Observer> O = Observer::create(Spec);
    INFO(observerKindName(K).str());
    CHECK_FALSE(O->hasObserved());
    CHECK(qparamsError(*O) ==
          observerKindName(K).str() + " has not observed any data");
    // PyTorch's initial buffers: +inf / -inf scalars.
    std::vector<NamedTensor> State = O->state();
    REQUIRE(stateBuffer(State, "min_val"));
    CHECK(stateBuffer(State, "min_val")->rank() == 0);
    CHECK(stateBuffer(State, "min_val")->getAsDouble(0) ==
          std::numeric_limits<double>::infinity());
    CHECK(stateBuffer(State, "max_val")->getAsDouble(0) ==
          -std::numeric_limits<double>::infinity());
    for (const NamedTensor &T : State)
      CHECK(T.IsBuffer);
    // Empty tensors are ignored.
    O->observe(Tensor(DType::F32, {0, 3}));
    CHECK_FALSE(O->hasObserved());
  }
  std::unique_ptr<Observer> PC = Observer::create(ObserverSpec::make(
      ObserverKind::PerChannelMinMax, DType::S8, QScheme::PerChannelSymmetric));
  CHECK(PC->state()[0].Value.rank() == 1);
  CHECK(PC->state()[0].Value.dim(0) == 0);
  CHECK(qparamsError(*PC) == "PerChannelMinMaxObserver has not observed any "
                             "data");

  std::unique_ptr<Observer> Ph = Observer::create(ObserverSpec::make(
      ObserverKind::Placeholder, DType::F32, QScheme::PerTensorAffine));
  Ph->observe(floats({1, 2}));
  CHECK_FALSE(Ph->hasObserved());
  CHECK(Ph->state().empty());
  CHECK(qparamsError(*Ph) == "placeholder observer has no qparams (dynamic "
                             "quantization computes them at run time)");

  ObserverSpec Fixed = ObserverSpec::make(ObserverKind::FixedQParams, DType::U8,
                                          QScheme::PerTensorAffine);
  Fixed.FixedScale = 2.0 / 256.0;
  Fixed.FixedZeroPoint = 128;
  QuantParams FP = qparamsOf(*Observer::create(Fixed));
  CHECK(FP == QuantParams::perTensor(2.0 / 256.0, 128));
}

TEST_CASE("min/max observers on small known inputs", "[quant]") {
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::MovingAverageMinMax,
                                         DType::U8, QScheme::PerTensorAffine);
  Spec.AveragingConstant = 0.5;
  std::unique_ptr<Observer> O = Observer::create(Spec);
  O->observe(floats({-1, 3}));
  O->observe(floats({-3, 1}));
  std::vector<NamedTensor> S = O->state();
  CHECK(stateBuffer(S, "min_val")->getAsDouble(0) == -2.0);
  CHECK(stateBuffer(S, "max_val")->getAsDouble(0) == 2.0);

  std::unique_ptr<Observer> M = Observer::create(ObserverSpec::make(
      ObserverKind::MinMax, DType::U8, QScheme::PerTensorAffine));
  M->observe(floats({1, std::nanf(""), 2}));
  CHECK(qparamsError(*M) == "observed values include nan");

  // Per channel along axis 1 of [2, 3].
  ObserverSpec PCSpec = ObserverSpec::make(
      ObserverKind::PerChannelMinMax, DType::S8, QScheme::PerChannelSymmetric);
  PCSpec.ChAxis = 1;
  std::unique_ptr<Observer> PC = Observer::create(PCSpec);
  PC->observe(Tensor::fromFloats({2, 3}, {1, -2, 3, -4, 5, 0}));
  QuantParams QP = qparamsOf(*PC);
  REQUIRE(QP.isPerChannel());
  CHECK(QP.Axis == 1);
  CHECK(QP.Scales ==
        std::vector<double>{4.0f / 127.5f, 5.0f / 127.5f, 3.0f / 127.5f});
  CHECK(QP.ZeroPoints == std::vector<int64_t>{0, 0, 0});
  // A different channel count is reported, as PyTorch raises there.
  PC->observe(Tensor::fromFloats({1, 2}, {1, 2}));
  CHECK(qparamsError(*PC) ==
        "PerChannelMinMaxObserver: observed 2 channels after 3");
  PCSpec.ChAxis = 2;
  std::unique_ptr<Observer> Bad = Observer::create(PCSpec);
  Bad->observe(Tensor::fromFloats({2, 3}, {1, -2, 3, -4, 5, 0}));
  CHECK(qparamsError(*Bad) == "PerChannelMinMaxObserver: ch_axis 2 is out of "
                              "range for a [2,3] tensor");
}

TEST_CASE("observer modules round-trip", "[quant]") {
  std::vector<float> X = gaussian(3000, 5, 2.0f);
  X[7] = 40.0f;
  for (ObserverKind K :
       {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax,
        ObserverKind::PerChannelMinMax,
        ObserverKind::MovingAveragePerChannelMinMax, ObserverKind::Histogram,
        ObserverKind::Percentile, ObserverKind::Entropy, ObserverKind::MSE}) {
    INFO(observerKindName(K).str());
    bool PC = isPerChannel(K);
    ObserverSpec Spec = ObserverSpec::make(K, DType::S8,
                                           PC ? QScheme::PerChannelAffine
                                              : QScheme::PerTensorSymmetric);
    Spec.ChAxis = PC ? 1 : 0;
    std::unique_ptr<Observer> O = Observer::create(Spec);
    Tensor T = Tensor::fromFloats({30, 100}, X);
    O->observe(T);
    ModuleInfo M("Module");
    O->toModule(M);
    CHECK(M.kind() == observerKindName(K));
    for (const NamedTensor &S : O->state()) {
      REQUIRE(M.tensor(S.Name));
      CHECK(M.tensor(S.Name)->identical(S.Value));
    }
    llvm::Expected<std::unique_ptr<Observer>> Back = Observer::fromModule(M);
    if (!Back)
      FAIL(errorToString(Back.takeError()));
    CHECK((*Back)->spec() == Spec);
    CHECK(qparamsOf(**Back) == qparamsOf(*O));
    // Resuming from the module equals never having stopped.
    O->observe(T);
    (*Back)->observe(T);
    CHECK(qparamsOf(**Back) == qparamsOf(*O));
  }
}

TEST_CASE("observer module errors", "[quant]") {
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                         QScheme::PerTensorAffine);
  auto Err = [](const ModuleInfo &M) {
    llvm::Expected<std::unique_ptr<Observer>> O = Observer::fromModule(M);
    if (O)
      return std::string();
    return errorToString(O.takeError());
  };
  auto Fresh = [&] {
    ModuleInfo M;
    Observer::create(Spec)->toModule(M);
    return M;
  };
  {
    ModuleInfo C = Fresh();
    C.eraseTensor("min_val");
    CHECK(Err(C) == "observer module: missing buffer 'min_val'");
  }
  {
    ModuleInfo C = Fresh();
    C.setTensor("histogram", Tensor(DType::F32, {5}), true);
    CHECK(Err(C) == "observer module: buffer 'histogram' must be f32[2048], "
                    "got f32[5]");
  }
  {
    ModuleInfo C = Fresh();
    C.setTensor("max_val", Tensor(DType::S8, {}), true);
    CHECK(Err(C) == "observer module: buffer 'max_val' must be f32[], got "
                    "s8[]");
  }
  {
    ModuleInfo C = Fresh();
    C.setTensor("min_val", Tensor::declared(DType::F32, {}), true);
    CHECK(Err(C) == "observer module: buffer 'min_val' has no data");
  }
  {
    ModuleInfo C = Fresh();
    Tensor H(DType::F32, {2048});
    H.data<float>()[3] = std::nanf("");
    C.setTensor("histogram", H, true);
    CHECK(Err(C) == "observer module: buffer 'histogram' has a non-finite "
                    "count");
    // PyTorch's interpolated histograms have tiny negative bins.
    H.data<float>()[3] = -0x1p-11f;
    C.setTensor("histogram", H, true);
    CHECK(Err(C) == "");
  }
  {
    ModuleInfo C = Fresh();
    C.eraseAttr("quant_min");
    CHECK(Err(C) == "observer module: missing attribute 'quant_min'");
  }
  {
    ModuleInfo C = Fresh();
    C.setKind("FancyObserver");
    CHECK(Err(C) == "observer module: unknown observer kind 'FancyObserver'");
  }
  ModuleInfo PC;
  Observer::create(ObserverSpec::make(ObserverKind::PerChannelMinMax, DType::S8,
                                      QScheme::PerChannelSymmetric))
      ->toModule(PC);
  PC.setTensor("min_val", Tensor(DType::F32, {3}), true);
  CHECK(Err(PC) == "observer module: buffer 'max_val' must be f32[3], got "
                   "f32[0]");
  ModuleInfo Cal;
  Observer::create(ObserverSpec::make(ObserverKind::Entropy, DType::U8,
                                      QScheme::PerTensorAffine))
      ->toModule(Cal);
  Tensor Neg(DType::F32, {2048});
  Neg.data<float>()[0] = -1;
  Cal.setTensor("negative_histogram", Neg, true);
  CHECK(Err(Cal) == "observer module: buffer 'negative_histogram' has a "
                    "negative count");
  Neg.data<float>()[0] = 1;
  Cal.setTensor("negative_histogram", Neg, true);
  CHECK(Err(Cal) == "observer module: buffer 'negative_histogram' exceeds "
                    "'histogram' in bin 0");
}

TEST_CASE("histogram observer on special inputs", "[quant]") {
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                         QScheme::PerTensorAffine);
  std::unique_ptr<Observer> O = Observer::create(Spec);
  O->observe(floats({2, 2, 2}));
  std::vector<NamedTensor> S = O->state();
  CHECK(stateBuffer(S, "min_val")->getAsDouble(0) == 2.0);
  CHECK(stateBuffer(S, "max_val")->getAsDouble(0) == 2.0);
  QuantParams QP = qparamsOf(*O);
  CHECK(QP.Scale == static_cast<double>(2.0f / 255.0f));
  CHECK(QP.ZeroPoint == 0);
  // A range that grows by a huge factor restarts instead of allocating.
  O->observe(floats({2.0f, 2.0f + 0x1p-20f}));
  O->observe(floats({-1e18f, 1e18f}));
  S = O->state();
  CHECK(stateBuffer(S, "min_val")->getAsDouble(0) == -1e18f);
  CHECK(stateBuffer(S, "max_val")->getAsDouble(0) == 1e18f);
  qparamsOf(*O);
}

TEST_CASE("histogram observers refuse tensors PyTorch's HistogramObserver "
          "raises on",
          "[quant]") {
  float Inf = std::numeric_limits<float>::infinity();
  float NaN = std::nanf("");
  struct Case {
    ObserverKind Kind;
    std::vector<float> Data;
    std::string Message;
  };
  const char *Finite = " during calibration; histogram observers need finite "
                       "values";
  const char *Int64 = " during calibration; it needs magnitudes below 2^63 "
                      "(PyTorch's int() of the histogram range overflows "
                      "there)";
  std::vector<Case> Cases = {
      {ObserverKind::Histogram,
       {1, NaN, 2},
       std::string("HistogramObserver saw a non-finite value (nan)") + Finite},
      {ObserverKind::Histogram,
       {NaN},
       std::string("HistogramObserver saw a non-finite value (nan)") + Finite},
      {ObserverKind::Histogram,
       {Inf, 1},
       std::string("HistogramObserver saw a non-finite value (inf)") + Finite},
      {ObserverKind::Histogram,
       {-Inf, 1},
       std::string("HistogramObserver saw a non-finite value (-inf)") + Finite},
      // These crashed: the bin index overflowed.
      {ObserverKind::Histogram,
       {3.4e38f, 0, 0, 0},
       "HistogramObserver saw 3.39999995e+38" + std::string(Int64)},
      {ObserverKind::Histogram,
       {0x1p95f, 0, 0, -1},
       "HistogramObserver saw 3.96140813e+28" + std::string(Int64)},
      {ObserverKind::Histogram,
       {-3e38f, 3e38f},
       "HistogramObserver saw 3.00000001e+38" + std::string(Int64)},
      {ObserverKind::Histogram,
       {-0x1p63f, 0},
       "HistogramObserver saw -9.22337204e+18" + std::string(Int64)},
      {ObserverKind::Percentile,
       {NaN, Inf},
       std::string("PercentileObserver saw a non-finite value (nan)") + Finite},
      {ObserverKind::Entropy,
       {1, -Inf},
       std::string("EntropyObserver saw a non-finite value (-inf)") + Finite},
      {ObserverKind::MSE,
       {Inf},
       std::string("MSEObserver saw a non-finite value (inf)") + Finite},
  };
  for (const Case &C : Cases) {
    INFO(observerKindName(C.Kind).str() << " " << C.Message);
    std::unique_ptr<Observer> O = Observer::create(
        ObserverSpec::make(C.Kind, DType::U8, QScheme::PerTensorAffine));
    O->observe(floats({-1, 1}));
    std::vector<NamedTensor> Before = O->state();
    O->observe(floats(C.Data));
    CHECK(O->problem() == C.Message);
    CHECK(qparamsError(*O) == C.Message);
    // The refused tensor left the state alone, and so do later ones.
    O->observe(floats({-5, 5}));
    std::vector<NamedTensor> After = O->state();
    REQUIRE(After.size() == Before.size());
    for (size_t I = 0; I < After.size(); ++I)
      CHECK(After[I].Value.identical(Before[I].Value));
    // Fresh, too.
    std::unique_ptr<Observer> F = Observer::create(
        ObserverSpec::make(C.Kind, DType::U8, QScheme::PerTensorAffine));
    F->observe(floats(C.Data));
    CHECK(qparamsError(*F) == C.Message);
  }
  // Below 2^63 PyTorch's observer works, and so does qfx's.
  std::unique_ptr<Observer> O = Observer::create(ObserverSpec::make(
      ObserverKind::Histogram, DType::U8, QScheme::PerTensorAffine));
  O->observe(floats({0x1p62f, 0, 1, -1}));
  CHECK(O->problem() == "");
  qparamsOf(*O);
}

TEST_CASE("histogram bins match torch.histc for any bin count", "[quant]") {
  // 1.13's kernel computes (x - left) / width * bins in float (so no finite
  // value overflows); with 3000 bins that differs from (x - left) * bins /
  // width: PyTorch's HistogramObserver(bins=3000) puts 2.5149998664855957
  // of [0, 3, x] in bin 2515, not 2514.
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                         QScheme::PerTensorAffine);
  Spec.Bins = 3000;
  std::unique_ptr<Observer> O = Observer::create(Spec);
  O->observe(floats({0.0f, 3.0f, 2.5149998664855957f}));
  std::vector<NamedTensor> S = O->state();
  const Tensor *H = stateBuffer(S, "histogram");
  REQUIRE(H);
  CHECK(H->data<float>()[0] == 1.0f);
  CHECK(H->data<float>()[2515] == 1.0f);
  CHECK(H->data<float>()[2999] == 1.0f);
}

TEST_CASE("qparams of a range wider than float's are an error", "[quant]") {
  for (ObserverKind K :
       {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax,
        ObserverKind::Percentile}) {
    INFO(observerKindName(K).str());
    std::unique_ptr<Observer> O = Observer::create(
        ObserverSpec::make(K, DType::U8, QScheme::PerTensorAffine));
    O->observe(floats({-3e38f, 3e38f}));
    CHECK(qparamsError(*O) ==
          "observed range [-3.00000001e+38, 3.00000001e+38] gives a "
          "non-finite scale (inf); quantization needs a range narrower than "
          "float's");
  }
  // PyTorch's symmetric scale, max(|min|, |max|) / 127.5, stays finite.
  std::unique_ptr<Observer> Sym = Observer::create(ObserverSpec::make(
      ObserverKind::MinMax, DType::S8, QScheme::PerTensorSymmetric));
  Sym->observe(floats({-3e38f, 3e38f}));
  CHECK(qparamsOf(*Sym).Scale == static_cast<double>(3e38f / 127.5f));
  ObserverSpec PC = ObserverSpec::make(ObserverKind::PerChannelMinMax,
                                       DType::S8, QScheme::PerChannelAffine);
  std::unique_ptr<Observer> P = Observer::create(PC);
  P->observe(Tensor::fromFloats({2, 2}, {1, 2, -3e38f, 3e38f}));
  CHECK(qparamsError(*P) ==
        "channel 1: observed range [-3.00000001e+38, 3.00000001e+38] gives a "
        "non-finite scale (inf); quantization needs a range narrower than "
        "float's");
}

TEST_CASE("calibrators clip a far outlier", "[quant]") {
  std::vector<float> X = gaussian(100000, 11);
  X[500] = 1000.0f;
  ObserverSpec MinMaxSpec = ObserverSpec::make(ObserverKind::MinMax, DType::S8,
                                               QScheme::PerTensorSymmetric);
  std::unique_ptr<Observer> MM = Observer::create(MinMaxSpec);
  MM->observe(floats(X));
  double MinMaxScale = qparamsOf(*MM).Scale;
  CHECK(MinMaxScale * 127.5 == Approx(1000.0));

  for (ObserverKind K : {ObserverKind::Percentile, ObserverKind::Entropy}) {
    INFO(observerKindName(K).str());
    ObserverSpec Spec =
        ObserverSpec::make(K, DType::S8, QScheme::PerTensorSymmetric);
    std::unique_ptr<Observer> O = Observer::create(Spec);
    O->observe(floats(X));
    QuantParams QP = qparamsOf(*O);
    double Threshold = QP.Scale * 127.5;
    CHECK(QP.ZeroPoint == 0);
    CHECK(Threshold < 100.0);
    CHECK(Threshold > 3.0);
    if (K == ObserverKind::Percentile) {
      // The 99.99th percentile of |N(0, 1)| is 3.89; one bin is 0.5 wide.
      CHECK(Threshold == Approx(4.0).epsilon(1e-6));
    }
  }
  // Clipping the outlier costs more squared error than it saves here, and
  // MSE knows it: it does at least as well as min/max.
  ObserverSpec MSESpec = ObserverSpec::make(ObserverKind::MSE, DType::S8,
                                            QScheme::PerTensorSymmetric);
  std::unique_ptr<Observer> MSE = Observer::create(MSESpec);
  MSE->observe(floats(X));
  CHECK(fakeQuantMse(X, qparamsOf(*MSE), MSESpec) <=
        fakeQuantMse(X, qparamsOf(*MM), MinMaxSpec));
}

TEST_CASE("percentile observer thresholds", "[quant]") {
  // 1000 values 0.001 .. 1.0 and a tail: the 90th percentile of |x|.
  std::vector<float> X;
  for (int I = 1; I <= 1000; ++I)
    X.push_back(static_cast<float>(I) / 1000.0f);
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Percentile, DType::U8,
                                         QScheme::PerTensorAffine);
  Spec.Percentile = 90;
  std::unique_ptr<Observer> O = Observer::create(Spec);
  O->observe(floats(X));
  // Range [0, 1.0] -> R = 2, bins of 2 / 2048; the bin holding 0.9 ends at
  // 922 / 1024.
  QuantParams QP = qparamsOf(*O);
  CHECK(QP.ZeroPoint == 0);
  CHECK(QP.Scale == static_cast<double>((922.0f / 1024.0f) / 255.0f));
  // Percentile 100 is the min/max range.
  Spec.Percentile = 100;
  std::unique_ptr<Observer> All = Observer::create(Spec);
  All->observe(floats(X));
  CHECK(qparamsOf(*All).Scale == static_cast<double>(1.0f / 255.0f));
}

TEST_CASE("MSE observer beats min/max on heavy tails", "[quant]") {
  std::mt19937 Gen(3);
  std::exponential_distribution<float> Exp(1.0f);
  std::vector<float> X(200000);
  for (size_t I = 0; I < X.size(); ++I)
    X[I] = (I % 2 ? 1.0f : -1.0f) * Exp(Gen); // Laplace
  for (QScheme S : {QScheme::PerTensorSymmetric, QScheme::PerTensorAffine})
    for (bool FourBit : {false, true}) {
      ObserverSpec MMSpec =
          ObserverSpec::make(ObserverKind::MinMax, DType::S8, S);
      if (FourBit) {
        MMSpec.QuantMin = -8;
        MMSpec.QuantMax = 7;
      }
      ObserverSpec MSESpec = MMSpec;
      MSESpec.Kind = ObserverKind::MSE;
      std::unique_ptr<Observer> MM = Observer::create(MMSpec);
      std::unique_ptr<Observer> MSE = Observer::create(MSESpec);
      MM->observe(floats(X));
      MSE->observe(floats(X));
      double MinMaxErr = fakeQuantMse(X, qparamsOf(*MM), MMSpec);
      double MSEErr = fakeQuantMse(X, qparamsOf(*MSE), MSESpec);
      INFO("min/max " << MinMaxErr << ", mse " << MSEErr);
      CHECK(MSEErr < (FourBit ? 0.5 : 0.95) * MinMaxErr);
    }
}

TEST_CASE("entropy observer keeps a compact distribution whole", "[quant]") {
  // Uniform data has nothing to clip: the threshold covers the range.
  std::vector<float> X;
  for (int I = 0; I < 20000; ++I)
    X.push_back(-1.5f + 3.0f * static_cast<float>(I) / 19999.0f);
  ObserverSpec Spec = ObserverSpec::make(ObserverKind::Entropy, DType::S8,
                                         QScheme::PerTensorSymmetric);
  std::unique_ptr<Observer> O = Observer::create(Spec);
  O->observe(floats(X));
  double Threshold = qparamsOf(*O).Scale * 127.5;
  CHECK(Threshold >= 1.45);
  CHECK(Threshold <= 1.5 * (1 + 1e-6));
}

TEST_CASE("calibrator histograms do not depend on batch order", "[quant]") {
  std::vector<float> A = gaussian(5000, 1, 0.5f), B = gaussian(5000, 2, 7.0f),
                     C = gaussian(5000, 3, 2.0f);
  for (ObserverKind K :
       {ObserverKind::Percentile, ObserverKind::Entropy, ObserverKind::MSE}) {
    ObserverSpec Spec =
        ObserverSpec::make(K, DType::U8, QScheme::PerTensorAffine);
    std::unique_ptr<Observer> O1 = Observer::create(Spec);
    std::unique_ptr<Observer> O2 = Observer::create(Spec);
    for (const auto *V : {&A, &B, &C})
      O1->observe(floats(*V));
    for (const auto *V : {&C, &A, &B})
      O2->observe(floats(*V));
    std::vector<NamedTensor> S1 = O1->state(), S2 = O2->state();
    REQUIRE(S1.size() == 4);
    REQUIRE(S2.size() == S1.size());
    for (size_t I = 0; I < S1.size(); ++I)
      CHECK(S1[I].Value.identical(S2[I].Value));
    CHECK(qparamsOf(*O1) == qparamsOf(*O2));
    // The histogram counts every value; negatives separately.
    const Tensor *H = stateBuffer(S1, "histogram");
    const Tensor *N = stateBuffer(S1, "negative_histogram");
    double Count = 0, Neg = 0;
    for (int64_t I = 0; I < H->numElements(); ++I) {
      Count += H->getAsDouble(I);
      Neg += N->getAsDouble(I);
    }
    CHECK(Count == 15000);
    size_t WantNeg = 0;
    for (const auto *V : {&A, &B, &C})
      for (float X : *V)
        WantNeg += X < 0;
    CHECK(Neg == static_cast<double>(WantNeg));
  }
}

TEST_CASE("calibration through observer modules fails on refused tensors",
          "[quant]") {
  auto RunErr = [](ModuleInfo &M, const Tensor &X) {
    llvm::Expected<Tensor> R =
        runObserverModule(M, "activation_post_process_0", X);
    return R ? std::string() : errorToString(R.takeError());
  };
  ModuleInfo M;
  initObserverModule(M, ObserverSpec::make(ObserverKind::Histogram, DType::U8,
                                           QScheme::PerTensorAffine));
  CHECK(RunErr(M, floats({-1, 1})) == "");
  // Before: the NaN was dropped and convert said "observed no data".
  CHECK(RunErr(M, floats({std::nanf(""), 0})) ==
        "observer 'activation_post_process_0': HistogramObserver saw a "
        "non-finite value (nan) during calibration; histogram observers need "
        "finite values");
  // The state is that of the first batch.
  llvm::Expected<std::unique_ptr<Observer>> O = loadObserver(M);
  if (!O)
    FAIL(errorToString(O.takeError()));
  CHECK(stateBuffer((*O)->state(), "max_val")->getAsDouble(0) == 1.0);

  // A FakeQuantize whose zero_point buffer is no int32 (a loaded file).
  ModuleInfo FQ;
  initFakeQuantizeModule(FQ, ObserverSpec::make(ObserverKind::MinMax, DType::U8,
                                                QScheme::PerTensorAffine));
  FQ.setTensor("observer_enabled", Tensor(DType::U8, {}), true);
  Tensor Zp(DType::F32, {1});
  Zp.data<float>()[0] = std::nanf("");
  FQ.setTensor("zero_point", Zp, true);
  FQ.setTensor("scale", Tensor::fromFloats({1}, {0.5f}), true);
  CHECK(RunErr(FQ, floats({1, 2})) ==
        "FakeQuantize 'activation_post_process_0': zero_point nan is not an "
        "int32");
  Zp.data<float>()[0] = 3e9f;
  FQ.setTensor("zero_point", Zp, true);
  CHECK(RunErr(FQ, floats({1, 2})) ==
        "FakeQuantize 'activation_post_process_0': zero_point 3e+09 is not an "
        "int32");
}
