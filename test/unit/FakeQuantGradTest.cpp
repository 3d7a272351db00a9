// Unit tests for fake quantization's straight-through estimator, bit-exact
// against PyTorch 1.13's forward and autograd (test/data/qat/).
#include "qfx/Quant/Quantize.h"
#include "qfx/Train/GradKernels.h"

#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/JSON.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace qfx;

namespace {

std::string qatDataPath(llvm::StringRef Name) {
  return std::string(QFX_TEST_DATA_DIR) + "/qat/" + Name.str();
}

Tensor loadNpy(llvm::StringRef Name) {
  llvm::Expected<Tensor> T = readNpy(qatDataPath(Name.str() + ".npy"));
  if (!T)
    FAIL(errorToString(T.takeError()));
  return *T;
}

/// One case of fq_params.json.
const llvm::json::Object &caseParams(const llvm::json::Value &Root,
                                     llvm::StringRef Case) {
  const llvm::json::Object *Obj = Root.getAsObject();
  REQUIRE(Obj);
  const llvm::json::Object *C = Obj->getObject(Case);
  REQUIRE(C);
  return *C;
}

llvm::json::Value loadParams() {
  llvm::Expected<std::string> Text = readFile(qatDataPath("fq_params.json"));
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  llvm::Expected<llvm::json::Value> V = llvm::json::parse(*Text);
  if (!V)
    FAIL(errorToString(V.takeError()));
  return std::move(*V);
}

int64_t intField(const llvm::json::Object &O, llvm::StringRef Key) {
  llvm::Optional<int64_t> V = O.getInteger(Key);
  REQUIRE(V);
  return *V;
}

/// Bit-for-bit equal f32 tensors: NaNs and the sign of zero count, since
/// PyTorch's g * mask yields -0.0 where g < 0 is masked out.
bool sameBits(const Tensor &Got, const Tensor &Want) {
  if (Got.dtype() != DType::F32 || Want.dtype() != DType::F32 ||
      Got.shape() != Want.shape()) {
    UNSCOPED_INFO("dtype or shape differs");
    return false;
  }
  const float *G = Got.data<float>(), *W = Want.data<float>();
  for (int64_t I = 0, E = Got.numElements(); I < E; ++I) {
    uint32_t GB, WB;
    std::memcpy(&GB, &G[I], sizeof(float));
    std::memcpy(&WB, &W[I], sizeof(float));
    if (GB != WB) {
      UNSCOPED_INFO("element " << I << ": got " << G[I] << ", want " << W[I]);
      return false;
    }
  }
  return true;
}

/// The STE backward as autograd computes it: g * mask, in float.
Tensor steGradient(const Tensor &G, const Tensor &Mask) {
  REQUIRE(Mask.dtype() == DType::U8);
  REQUIRE(Mask.shape() == G.shape());
  Tensor R(DType::F32, G.shape());
  const float *In = G.data<float>();
  const uint8_t *M = Mask.data<uint8_t>();
  float *Out = R.data<float>();
  for (int64_t I = 0, E = G.numElements(); I < E; ++I)
    Out[I] = In[I] * static_cast<float>(M[I]);
  return R;
}

void checkPerTensor(llvm::StringRef Case) {
  llvm::json::Value Root = loadParams();
  const llvm::json::Object &P = caseParams(Root, Case);
  llvm::Optional<double> Scale = P.getNumber("scale");
  REQUIRE(Scale);
  int64_t ZeroPoint = intField(P, "zero_point");
  int64_t QuantMin = intField(P, "quant_min");
  int64_t QuantMax = intField(P, "quant_max");

  Tensor X = loadNpy(Case.str() + "_x");
  Tensor G = loadNpy(Case.str() + "_g");
  CHECK(
      sameBits(fakeQuantizePerTensor(X, *Scale, ZeroPoint, QuantMin, QuantMax),
               loadNpy(Case.str() + "_y")));
  Tensor Mask =
      fakeQuantizeMaskPerTensor(X, *Scale, ZeroPoint, QuantMin, QuantMax);
  CHECK(sameBits(steGradient(G, Mask), loadNpy(Case.str() + "_dx")));
  // The mask training uses comes from the forward's own pass.
  Tensor FusedMask;
  CHECK(sameBits(fakeQuantizePerTensor(X, *Scale, ZeroPoint, QuantMin, QuantMax,
                                       &FusedMask),
                 loadNpy(Case.str() + "_y")));
  CHECK(sameBits(grad::mulElementwise(G, FusedMask),
                 loadNpy(Case.str() + "_dx")));
}

} // namespace

TEST_CASE("qat: per-tensor quint8 fake quantize and its STE gradient match "
          "PyTorch",
          "[qat]") {
  checkPerTensor("fq_pt");
}

TEST_CASE("qat: per-tensor qint8 fake quantize and its STE gradient match "
          "PyTorch",
          "[qat]") {
  checkPerTensor("fq_pt8");
}

TEST_CASE("qat: per-channel fake quantize and its STE gradient match PyTorch",
          "[qat]") {
  llvm::json::Value Root = loadParams();
  const llvm::json::Object &P = caseParams(Root, "fq_pc");
  int64_t Axis = intField(P, "axis");
  int64_t QuantMin = intField(P, "quant_min");
  int64_t QuantMax = intField(P, "quant_max");

  // The float32 scales PyTorch used, widened exactly to double.
  Tensor ScalesT = loadNpy("fq_pc_scales");
  Tensor ZpsT = loadNpy("fq_pc_zps");
  REQUIRE(ScalesT.dtype() == DType::F32);
  std::vector<double> Scales;
  std::vector<int64_t> ZeroPoints;
  for (int64_t I = 0; I < ScalesT.numElements(); ++I) {
    Scales.push_back(ScalesT.getAsDouble(I));
    ZeroPoints.push_back(static_cast<int64_t>(ZpsT.getAsDouble(I)));
  }
  // The JSON copy must describe the same case.
  const llvm::json::Array *JsonZps = P.getArray("zero_points");
  REQUIRE(JsonZps);
  REQUIRE(JsonZps->size() == ZeroPoints.size());
  for (size_t I = 0; I < ZeroPoints.size(); ++I)
    CHECK((*JsonZps)[I].getAsInteger() == ZeroPoints[I]);

  Tensor X = loadNpy("fq_pc_x");
  Tensor G = loadNpy("fq_pc_g");
  CHECK(sameBits(
      fakeQuantizePerChannel(X, Scales, ZeroPoints, Axis, QuantMin, QuantMax),
      loadNpy("fq_pc_y")));
  Tensor Mask = fakeQuantizeMaskPerChannel(X, Scales, ZeroPoints, Axis,
                                           QuantMin, QuantMax);
  CHECK(sameBits(steGradient(G, Mask), loadNpy("fq_pc_dx")));
  Tensor FusedMask;
  CHECK(sameBits(fakeQuantizePerChannel(X, Scales, ZeroPoints, Axis, QuantMin,
                                        QuantMax, &FusedMask),
                 loadNpy("fq_pc_y")));
  CHECK(sameBits(grad::mulElementwise(G, FusedMask), loadNpy("fq_pc_dx")));
}

TEST_CASE("qat: per-channel mask agrees with the per-tensor one channel by "
          "channel",
          "[qat]") {
  // Channel C of a per-channel mask along axis 1 is the per-tensor mask of
  // that channel's slice: checks the axis walk, not just axis 0.
  Tensor X =
      Tensor::fromFloats({2, 3, 2}, {-0.9f, 0.26f, 0.5f, 2.0f, 1.3f, -3.1f,
                                     0.125f, 7.9f, -0.6f, 0.7f, 0.05f, 12.0f});
  std::vector<double> Scales = {0.25, 0.5, 0.1};
  std::vector<int64_t> Zps = {2, 0, -3};
  Tensor Mask = fakeQuantizeMaskPerChannel(X, Scales, Zps, 1, -4, 5);
  REQUIRE(Mask.dtype() == DType::U8);
  const float *In = X.data<float>();
  const uint8_t *M = Mask.data<uint8_t>();
  for (int64_t O = 0; O < 2; ++O)
    for (int64_t C = 0; C < 3; ++C)
      for (int64_t I = 0; I < 2; ++I) {
        int64_t Idx = (O * 3 + C) * 2 + I;
        Tensor One = fakeQuantizeMaskPerTensor(
            Tensor::fromFloats({1}, {In[Idx]}), Scales[C], Zps[C], -4, 5);
        CHECK(M[Idx] == One.data<uint8_t>()[0]);
      }
}
