//===- ConvertTest.cpp - convert_fx on the seed Net against PyTorch -------===//
//
// End to end: the Net with zoo/net.safetensors goes through prepare_fx,
// calibration on the batch PyTorch calibrated on, and
// convert_to_reference_fx; every observer's qparams and the int8 model's
// outputs are compared with PyTorch 1.13's (test/data/make_convert_golden.py
// wrote the golden files in convert/).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "qfx/IR/Printer.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/ADT/StringExtras.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::testutil;

namespace {

std::string dataPath(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/" + File;
}

Tensor readGolden(const std::string &File) {
  auto T = readNpy(dataPath("convert/" + File));
  if (!T)
    FAIL(errorToString(T.takeError()));
  return std::move(*T);
}

/// net_<mapping>_qparams.txt.
std::vector<GoldenQParams> readQParams(const std::string &Mapping) {
  std::vector<GoldenQParams> R =
      readGoldenQParams(dataPath("convert/net_" + Mapping + "_qparams.txt"));
  REQUIRE(!R.empty());
  return R;
}

/// The qconfig mappings make_convert_golden.py used, by name.
QConfigMapping mapping(const std::string &Name) {
  QConfig QC;
  if (Name == "x86") {
    auto P = QConfig::preset("x86");
    if (!P)
      FAIL(errorToString(P.takeError()));
    QC = *P;
  } else {
    QC.Activation = ObserverSpec::make(ObserverKind::MinMax, DType::U8,
                                       QScheme::PerTensorAffine,
                                       /*ReduceRange=*/true);
    QC.Weight = ObserverSpec::make(ObserverKind::PerChannelMinMax, DType::S8,
                                   QScheme::PerChannelSymmetric);
  }
  QConfigMapping M;
  M.setGlobal(QC);
  return M;
}

/// The Net with the committed weights, prepared with \p Mapping.
std::unique_ptr<GraphModule> preparedNet(const std::string &Mapping) {
  models::Net Net;
  llvm::Error E = Net.load_safetensors(dataPath("zoo/net.safetensors"));
  if (E)
    FAIL(errorToString(std::move(E)));
  Net.eval();
  auto Obs = prepare_fx(Net, mapping(Mapping),
                        {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})});
  if (!Obs)
    FAIL(errorToString(Obs.takeError()));
  return Obs->release();
}

/// Runs the observed graph once on the whole calibration batch (PyTorch
/// saw it as one batch; histograms depend on the batching).
void calibrate(GraphModule &GM) {
  auto Out = runObserved(GM, {readGolden("calibration.npy")});
  if (!Out)
    FAIL(errorToString(Out.takeError()));
}

bool isObserverCall(const GraphModule &GM, const Node &N) {
  if (N.op() != OpCode::CallModule)
    return false;
  const ModuleInfo *M = GM.lookupModule(N.target());
  return M && isObserverModule(*M);
}

/// The golden line for observed node \p Name, or nullptr.
const GoldenQParams *findGolden(const std::vector<GoldenQParams> &Golden,
                                llvm::StringRef Name) {
  for (const GoldenQParams &G : Golden)
    if (G.Observed == Name)
      return &G;
  return nullptr;
}

/// Every activation observer of \p GM against PyTorch's observer of the
/// same value: scale within 1e-6 relative, the same zero point.
void checkObserverQParams(const GraphModule &GM,
                          const std::vector<GoldenQParams> &Golden) {
  int Checked = 0;
  for (const Node &N : GM.graph()) {
    if (!isObserverCall(GM, N))
      continue;
    llvm::StringRef Observed = N.arg(0).getNode()->name();
    INFO("observer " << N.target().str() << " of " << Observed.str());
    const GoldenQParams *G = findGolden(Golden, Observed);
    REQUIRE(G);
    auto O = loadObserver(*GM.lookupModule(N.target()));
    if (!O)
      FAIL(errorToString(O.takeError()));
    auto QP = (*O)->calculateQParams();
    if (!QP)
      FAIL(errorToString(QP.takeError()));
    REQUIRE(QP->isPerTensor());
    CHECK(std::abs(QP->Scale - G->Scale) <= 1e-6 * G->Scale);
    CHECK(QP->ZeroPoint == G->ZeroPoint);
    ++Checked;
  }
  CHECK(Checked >= 4);
}

/// Where PyTorch quantized a value, the converted graph has an int8
/// version of it with the same qparams: the node itself for ops, the
/// quantize_per_tensor of a placeholder.
void checkConvertedTypes(const GraphModule &GM,
                         const std::vector<GoldenQParams> &Golden) {
  for (const GoldenQParams &G : Golden) {
    INFO("value " << G.Observed);
    const Node *N = GM.graph().lookup(G.Observed);
    REQUIRE(N);
    if (N->op() == OpCode::Placeholder) {
      REQUIRE(N->users().size() == 1);
      N = N->users()[0];
      CHECK(N->target() == "quantize_per_tensor");
    }
    REQUIRE(N->type());
    CHECK(N->type()->Dtype == DType::U8);
    REQUIRE(N->type()->Quant.isPerTensor());
    CHECK(std::abs(N->type()->Quant.Scale - G.Scale) <= 1e-6 * G.Scale);
    CHECK(N->type()->Quant.ZeroPoint == G.ZeroPoint);
  }
}

/// The largest |A - B| in units of \p Step.
double maxStepsApart(const Tensor &A, const Tensor &B, double Step) {
  REQUIRE(A.shape() == B.shape());
  double Max = 0;
  for (int64_t I = 0; I < A.numElements(); ++I)
    Max = std::max(Max, std::abs(A.getAsDouble(I) - B.getAsDouble(I)) / Step);
  return Max;
}

Tensor runConverted(const GraphModule &GM) {
  auto Out = interpret(GM, {readGolden("test_input.npy")});
  if (!Out)
    FAIL(errorToString(Out.takeError()));
  return std::move(*Out);
}

} // namespace

TEST_CASE("convert: Net against PyTorch's prepare_fx / convert_fx",
          "[convert]") {
  for (const char *Name : {"minmax", "x86"}) {
    INFO("mapping " << Name);
    std::vector<GoldenQParams> Golden = readQParams(Name);
    std::unique_ptr<GraphModule> Observed = preparedNet(Name);
    calibrate(*Observed);
    checkObserverQParams(*Observed, Golden);

    PassContext Ctx;
    auto GM = convert_to_reference_fx(*Observed, &Ctx);
    if (!GM)
      FAIL(errorToString(GM.takeError()));
    checkConvertedTypes(**GM, Golden);
    CHECK((*GM)->lookupModule("conv1")->kind() == "QuantizedConvReLU2d");
    CHECK((*GM)->lookupModule("conv2")->kind() == "QuantizedConvReLU2d");
    CHECK((*GM)->lookupModule("fc")->kind() == "QuantizedLinear");

    // The int8 model within one output quantization step of PyTorch's, on
    // every element.
    const GoldenQParams *Out = findGolden(Golden, "fc");
    REQUIRE(Out);
    Tensor Q = runConverted(**GM);
    double Steps = maxStepsApart(
        Q, readGolden(std::string("net_") + Name + "_output.npy"), Out->Scale);
    INFO("max difference from convert_fx: " << Steps << " steps");
    CHECK(Steps <= 1.0 + 1e-6);
    double RefSteps = maxStepsApart(
        Q, readGolden(std::string("net_") + Name + "_reference_output.npy"),
        Out->Scale);
    INFO("max difference from convert_to_reference_fx: " << RefSteps
                                                         << " steps");
    CHECK(RefSteps <= 1.0 + 1e-6);
  }
}

TEST_CASE("convert: the reference graph has int8 only between one quantize "
          "and one dequantize",
          "[convert]") {
  std::unique_ptr<GraphModule> Observed = preparedNet("minmax");
  calibrate(*Observed);
  PassContext Ctx;
  auto GM = convert_to_reference_fx(*Observed, &Ctx);
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  int Quantize = 0, Dequantize = 0;
  for (const Node &N : (*GM)->graph()) {
    Quantize += N.target() == "quantize_per_tensor";
    Dequantize += N.target() == "dequantize";
    CHECK_FALSE(isObserverCall(**GM, N));
    if (N.op() != OpCode::Output && N.op() != OpCode::Placeholder) {
      INFO("node " << N.name().str());
      CHECK(N.type());
    }
  }
  CHECK(Quantize == 1);
  CHECK(Dequantize == 1);
  for (const std::string &Path : (*GM)->moduleNames()) {
    INFO("module " << Path);
    CHECK_FALSE(isObserverModule(*(*GM)->lookupModule(Path)));
    CHECK_FALSE(llvm::StringRef(Path).contains("weight_post_process"));
  }
  // Every conversion and boundary is explained.
  std::vector<std::string> Messages;
  for (const Remark &R : Ctx.Remarks)
    if (R.Pass == "convert")
      Messages.push_back(R.Node + ": " + R.Message);
  std::string All = llvm::join(Messages, "\n");
  INFO(All);
  CHECK(llvm::StringRef(All).contains(
      "conv1: conv1 → QuantizedConvReLU2d (from ConvReLU2d"));
  CHECK(llvm::StringRef(All).contains("fc: fc → QuantizedLinear"));
  CHECK(llvm::StringRef(All).contains("inserted quantize_per_tensor for x"));
  CHECK(llvm::StringRef(All).contains("dequantize fc at the output"));
}

TEST_CASE("convert: the observed module stays as it was", "[convert]") {
  std::unique_ptr<GraphModule> Observed = preparedNet("minmax");
  calibrate(*Observed);
  std::string Before = printToString(*Observed);
  auto Ref = convert_to_reference_fx(*Observed);
  if (!Ref)
    FAIL(errorToString(Ref.takeError()));
  CHECK(printToString(*Observed) == Before);
  // convert_fx's module holds the same reference graph.
  auto Fx = convert_fx(*Observed);
  if (!Fx)
    FAIL(errorToString(Fx.takeError()));
  CHECK(printToString(Fx->graphModule()) == printToString(**Ref));
}

TEST_CASE("convert: an uncalibrated model is an error naming the observer",
          "[convert]") {
  std::unique_ptr<GraphModule> Observed = preparedNet("minmax");
  auto GM = convert_to_reference_fx(*Observed);
  if (GM)
    FAIL("convert of an uncalibrated model succeeded");
  std::string Msg = errorToString(GM.takeError());
  INFO(Msg);
  CHECK(llvm::StringRef(Msg).contains(
      "(observing 'x') observed no data: calibrate before convert"));
  CHECK(llvm::StringRef(Msg).contains("activation_post_process_0"));
}

TEST_CASE("convert: a QAT model matches its fake-quantized self", "[convert]") {
  // prepare_qat_fx, one training-mode pass to set the fake-quant ranges,
  // then observers frozen: the fake-quantized float model and the int8
  // model compute the same function up to rounding inside the ops.
  models::Net Net;
  llvm::Error E = Net.load_safetensors(dataPath("zoo/net.safetensors"));
  if (E)
    FAIL(errorToString(std::move(E)));
  QConfigMapping M;
  auto QC = QConfig::preset("qat_x86");
  if (!QC)
    FAIL(errorToString(QC.takeError()));
  M.setGlobal(*QC);
  auto Obs = prepare_qat_fx(
      Net, M, {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})});
  if (!Obs)
    FAIL(errorToString(Obs.takeError()));
  GraphModule &GM = Obs->graphModule();
  calibrate(GM);
  for (const std::string &Path : GM.moduleNames()) {
    ModuleInfo *FQ = GM.lookupModule(Path);
    if (isFakeQuantizeModule(*FQ))
      FQ->setTensor("observer_enabled", Tensor(DType::U8, {1}), true);
  }
  Tensor Input = readGolden("test_input.npy");
  auto FakeQuant = runObserved(GM, {Input});
  if (!FakeQuant)
    FAIL(errorToString(FakeQuant.takeError()));
  auto Q = convert_to_reference_fx(GM);
  if (!Q)
    FAIL(errorToString(Q.takeError()));
  CHECK((*Q)->lookupModule("conv1")->kind() == "QuantizedConvReLU2d");
  const Node *Fc = (*Q)->graph().lookup("fc");
  REQUIRE(Fc);
  REQUIRE(Fc->type());
  double Steps = maxStepsApart(runConverted(**Q), (*FakeQuant)[0],
                               Fc->type()->Quant.Scale);
  INFO("max difference: " << Steps << " steps");
  CHECK(Steps <= 1.0 + 1e-5);
}
