//===- DynamicTest.cpp - Every qconfig preset through the whole chain -----===//
//
// prepare_fx -> calibrate -> convert_to_reference_fx -> compile -> run for
// each preset on the zoo's Net and on a Linear model, and the dynamic and
// weight-only results against PyTorch 1.13 (test/data/make_dynamic_golden.py
// wrote the golden files in dynamic/). Each pass has its own tests; these
// check that the passes fit together.
//
//===----------------------------------------------------------------------===//

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Module.h"
#include "qfx/NN/Modules.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace qfx;

namespace {

std::string dataPath(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/" + File;
}

template <typename T> T must(llvm::Expected<T> E) {
  if (!E)
    FAIL(errorToString(E.takeError()));
  return std::move(*E);
}

Tensor npy(const std::string &File) { return must(readNpy(dataPath(File))); }

/// The MLP of make_dynamic_golden.py.
class MLP : public nn::Module {
public:
  MLP() : Module("MLP") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(64, 128));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(128, 128));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(128, 10));
  }
  nn::Value forward(nn::Value X) override {
    X = nn::F::relu((*fc1)(X));
    X = nn::F::relu((*fc2)(X));
    return (*fc3)(X);
  }
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

/// A model of the tests with its weights and data.
struct Subject {
  std::string Name;
  std::shared_ptr<nn::Module> Model;
  std::vector<int64_t> InputShape;
  Tensor Calibration, Test;
};

Subject mlp() {
  auto M = std::make_shared<MLP>();
  llvm::Error E = M->load_safetensors(dataPath("dynamic/mlp.safetensors"));
  if (E)
    FAIL(errorToString(std::move(E)));
  M->eval();
  return {"mlp", M, {1, 64}, npy("dynamic/x_b32.npy"), npy("dynamic/x_b4.npy")};
}

Subject net() {
  auto M = std::make_shared<models::Net>();
  llvm::Error E = M->load_safetensors(dataPath("zoo/net.safetensors"));
  if (E)
    FAIL(errorToString(std::move(E)));
  M->eval();
  return {"net",
          M,
          {1, 1, 28, 28},
          npy("convert/calibration.npy"),
          npy("convert/test_input.npy")};
}

/// max |Got - Want| / max |Want|: the error relative to the output's scale
/// (element-wise relative errors blow up on outputs near 0).
double relErr(const Tensor &Got, const Tensor &Want) {
  REQUIRE(Got.shape() == Want.shape());
  double Diff = 0, Max = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I) {
    Diff = std::max(Diff, std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)));
    Max = std::max(Max, std::fabs(Want.getAsDouble(I)));
  }
  return Max > 0 ? Diff / Max : Diff;
}

/// Figures for the record; printed with QFX_TEST_REPORT=1.
void report(const std::string &What, double Value) {
  if (std::getenv("QFX_TEST_REPORT"))
    std::printf("%-60s %.3g\n", What.c_str(), Value);
}

QConfigMapping globalPreset(const std::string &Preset) {
  QConfigMapping M;
  M.setGlobal(must(QConfig::preset(Preset)));
  return M;
}

/// prepare_fx (prepare_qat_fx for QAT presets), calibration on
/// S.Calibration unless \p Calibrate is false, convert_to_reference_fx.
std::unique_ptr<GraphModule> quantize(Subject &S, const std::string &Preset,
                                      bool Calibrate = true) {
  QConfigMapping Mapping = globalPreset(Preset);
  std::vector<InputSpec> Spec = {
      InputSpec::symbolic("x", DType::F32, S.InputShape)};
  bool QAT = must(QConfig::preset(Preset)).isQAT();
  ObservedModule Obs = QAT ? must(prepare_qat_fx(*S.Model, Mapping, Spec))
                           : must(prepare_fx(*S.Model, Mapping, Spec));
  if (Calibrate)
    must(Obs({S.Calibration}));
  return must(convert_to_reference_fx(Obs.graphModule()));
}

Tensor interpretOne(const GraphModule &GM, const Tensor &X) {
  return must(interpret(GM, {X}));
}

std::unique_ptr<CompiledModule> compileFor(const GraphModule &GM,
                                           const Tensor &X) {
  CompileOptions Opts;
  Opts.BatchSize = X.dim(0);
  return must(compile(GM, Opts));
}

Tensor runCompiled(CompiledModule &CM, const Tensor &X) {
  auto R = must(CM.run({X}));
  REQUIRE(R.size() == 1);
  return R[0];
}

Tensor floatOutput(Subject &S, const Tensor &X) {
  auto GM = must(symbolic_trace(
      *S.Model, {InputSpec::symbolic("x", DType::F32, S.InputShape)}));
  return interpretOne(*GM, X);
}

/// Module paths of \p GM by kind.
std::map<std::string, std::vector<std::string>>
modulesByKind(const GraphModule &GM) {
  std::map<std::string, std::vector<std::string>> R;
  for (const std::string &Path : GM.moduleNames())
    if (const ModuleInfo *M = GM.lookupModule(Path))
      R[M->kind().str()].push_back(Path);
  return R;
}

size_t countKind(const std::map<std::string, std::vector<std::string>> &K,
                 const std::string &Kind) {
  auto It = K.find(Kind);
  return It == K.end() ? 0 : It->second.size();
}

size_t countSteps(const CompiledModule &CM, llvm::StringRef Kind) {
  size_t N = 0;
  for (const StepInfo &S : CM.steps())
    N += S.Kind == Kind;
  return N;
}

/// The weight of the weighted module \p Path (or of its float child "0").
const Tensor *weightOf(const GraphModule &GM, const std::string &Path) {
  const ModuleInfo *M = GM.lookupModule(Path);
  REQUIRE(M);
  if (const Tensor *W = M->tensor("weight"))
    return W;
  const ModuleInfo *C = M->child("0");
  return C ? C->tensor("weight") : nullptr;
}

/// Whether some node of \p GM calls function \p Fn.
bool callsFunction(const GraphModule &GM, llvm::StringRef Fn) {
  for (const Node &N : GM.graph())
    if (N.op() == OpCode::CallFunction && N.target() == Fn)
      return true;
  return false;
}

const char *const Cases[] = {"b1", "b4", "b32", "outlier"};

} // namespace

//===----------------------------------------------------------------------===//
// Against PyTorch
//===----------------------------------------------------------------------===//

TEST_CASE("dynamic: the MLP matches quantize_dynamic without calibration",
          "[dynamic]") {
  Subject S = mlp();
  auto GM = quantize(S, "dynamic", /*Calibrate=*/false);
  auto Kinds = modulesByKind(*GM);
  // Fused with their relu or not, all three Linears are dynamic.
  REQUIRE(countKind(Kinds, "QuantizedLinearDynamic") == 3);
  for (const std::string &Path : Kinds["QuantizedLinearDynamic"]) {
    INFO(Path);
    const Tensor *W = weightOf(*GM, Path);
    REQUIRE(W);
    CHECK(W->dtype() == DType::S8);
    CHECK(W->quant().isPerChannel());
    const Argument *RR = GM->lookupModule(Path)->attr("reduce_range");
    REQUIRE(RR);
    CHECK(RR->getBool());
  }
  double WorstRef = 0, WorstCompiled = 0;
  for (const char *Case : Cases) {
    INFO(Case);
    Tensor X = npy(std::string("dynamic/x_") + Case + ".npy");
    Tensor Want = npy(std::string("dynamic/dynamic_") + Case + ".npy");
    Tensor Ref = interpretOne(*GM, X);
    double E = relErr(Ref, Want);
    report(std::string("dynamic ") + Case + ": interpreter vs PyTorch", E);
    WorstRef = std::max(WorstRef, E);
    CHECK(E <= 1e-5);

    auto CM = compileFor(*GM, X);
    // Three per-batch input quantizations feeding three int8 matmuls, and
    // nothing left to the op-table fallback.
    CHECK(countSteps(*CM, "quantize_dynamic") == 3);
    CHECK(countSteps(*CM, "matmul") == 3);
    CHECK(countSteps(*CM, "fallback") == 0);
    for (const StepInfo &St : CM->steps())
      if (St.Kind == "matmul")
        CHECK(llvm::StringRef(St.Detail).contains("dynamic u8[0,127]"));
    Tensor Got = runCompiled(*CM, X);
    double C = relErr(Got, Want);
    report(std::string("dynamic ") + Case + ": compiled vs PyTorch", C);
    WorstCompiled = std::max(WorstCompiled, C);
    CHECK(C <= 1e-5);
  }
  report("dynamic: worst interpreter vs PyTorch", WorstRef);
  report("dynamic: worst compiled vs PyTorch", WorstCompiled);
}

TEST_CASE("dynamic: calibrating first changes nothing", "[dynamic]") {
  Subject S = mlp();
  auto Plain = quantize(S, "dynamic", /*Calibrate=*/false);
  auto Calibrated = quantize(S, "dynamic", /*Calibrate=*/true);
  CHECK(printToString(*Plain) == printToString(*Calibrated));
  Tensor X = npy("dynamic/x_b4.npy");
  CHECK(interpretOne(*Plain, X).identical(interpretOne(*Calibrated, X)));
}

TEST_CASE("weight_only: the MLP matches PyTorch's reference Linear",
          "[dynamic]") {
  Subject S = mlp();
  auto GM = quantize(S, "weight_only", /*Calibrate=*/false);
  auto Kinds = modulesByKind(*GM);
  // Kinds stay float (Linear, or LinearReLU where fusion merged the relu);
  // the weights are u8 with per-channel qparams.
  CHECK(countKind(Kinds, "Linear") == 3);
  for (const char *Path : {"fc1", "fc2", "fc3"}) {
    INFO(Path);
    const Tensor *W = weightOf(*GM, Path);
    REQUIRE(W);
    CHECK(W->dtype() == DType::U8);
    REQUIRE(W->quant().isPerChannel());
    CHECK(W->quant().Axis == 0);
  }
  CHECK(!callsFunction(*GM, "quantize_per_tensor"));
  for (const char *Case : Cases) {
    INFO(Case);
    Tensor X = npy(std::string("dynamic/x_") + Case + ".npy");
    Tensor Want = npy(std::string("dynamic/weight_only_") + Case + ".npy");
    Tensor FloatQParams =
        npy(std::string("dynamic/weight_only_fq_") + Case + ".npy");
    Tensor Ref = interpretOne(*GM, X);
    double E = relErr(Ref, Want);
    report(std::string("weight_only ") + Case + ": interpreter vs PyTorch", E);
    // Same dequantized weights; only the float summation order differs.
    CHECK(E <= 1e-5);
    auto CM = compileFor(*GM, X);
    CHECK(countSteps(*CM, "fallback") == 0);
    double C = relErr(runCompiled(*CM, X), Want);
    report(std::string("weight_only ") + Case + ": compiled vs PyTorch", C);
    CHECK(C <= 1e-5);
    // PyTorch's float_qparams_weight_only_qconfig rounds the weights with
    // float zero points; the integer ones differ by under half a step.
    double F = relErr(Ref, FloatQParams);
    report(std::string("weight_only ") + Case + ": vs float_qparams", F);
    CHECK(F <= 0.05);
  }
}

//===----------------------------------------------------------------------===//
// Every preset through the chain
//===----------------------------------------------------------------------===//

TEST_CASE("every preset: prepare, calibrate, convert, compile, run",
          "[dynamic]") {
  for (const char *Preset :
       {"x86", "onednn", "qat_x86", "dynamic", "weight_only"}) {
    for (bool IsNet : {true, false}) {
      Subject S = IsNet ? net() : mlp();
      std::string P = Preset;
      std::string Label = P + " on " + S.Name;
      INFO(Label);
      auto GM = quantize(S, P);
      auto Kinds = modulesByKind(*GM);
      bool Static = P == "x86" || P == "onednn" || P == "qat_x86";
      if (Static) {
        if (IsNet)
          CHECK(countKind(Kinds, "QuantizedConvReLU2d") == 2);
        CHECK(countKind(Kinds, "QuantizedLinear") +
                  countKind(Kinds, "QuantizedLinearReLU") ==
              (IsNet ? 1u : 3u));
      } else if (P == "dynamic") {
        // Conv stays float under dynamic quantization, as in PyTorch.
        CHECK(countKind(Kinds, "QuantizedConvReLU2d") == 0);
        CHECK(countKind(Kinds, "QuantizedLinearDynamic") == (IsNet ? 1u : 3u));
        for (const std::string &Path : Kinds["QuantizedLinearDynamic"])
          CHECK(weightOf(*GM, Path)->dtype() == DType::S8);
        if (IsNet)
          CHECK(weightOf(*GM, "conv1")->dtype() == DType::F32);
      } else {
        std::vector<std::string> Weighted = {"fc1", "fc2", "fc3"};
        if (IsNet)
          Weighted = {"conv1", "conv2", "fc"};
        for (const std::string &Path : Weighted) {
          INFO(Path);
          CHECK(weightOf(*GM, Path)->dtype() == DType::U8);
        }
      }
      Tensor X = S.Test;
      Tensor Ref = interpretOne(*GM, X);
      auto CM = compileFor(*GM, X);
      CHECK(countSteps(*CM, "fallback") == 0);
      if (P == "dynamic")
        CHECK(countSteps(*CM, "quantize_dynamic") == (IsNet ? 1u : 3u));
      // Static: one quantize at the input, int8 primitives from there on.
      if (Static)
        CHECK(countSteps(*CM, "quantize") == 1);
      Tensor Got = runCompiled(*CM, X);
      Tensor Float = floatOutput(S, X);
      double ToRef = relErr(Got, Ref), ToFloat = relErr(Got, Float);
      report(Label + ": compiled vs interpreter", ToRef);
      report(Label + ": compiled vs float", ToFloat);
      // Static int8 outputs may differ by an output step or two where
      // oneDNN rounds a tie the other way (one step is about 1% of the
      // range here); dynamic and weight-only only by float rounding order.
      CHECK(ToRef <= (Static ? 0.05 : 1e-5));
      CHECK(ToFloat <= 0.1);
    }
  }
}

//===----------------------------------------------------------------------===//
// qopt
//===----------------------------------------------------------------------===//

namespace {

struct TempDir {
  llvm::SmallString<128> Path;
  TempDir() {
    REQUIRE(!llvm::sys::fs::createUniqueDirectory("qfx-dynamic-test", Path));
  }
  ~TempDir() { llvm::sys::fs::remove_directories(Path); }
  std::string file(llvm::StringRef Name) const {
    llvm::SmallString<128> P(Path);
    llvm::sys::path::append(P, Name);
    return std::string(P);
  }
};

/// Runs qopt with \p Args; returns its exit status, stderr in \p Err.
int qopt(const TempDir &Dir, std::vector<std::string> Args, std::string &Err) {
  Args.insert(Args.begin(), QFX_QOPT_PATH);
  std::vector<llvm::StringRef> Refs(Args.begin(), Args.end());
  std::string OutFile = Dir.file("stdout.txt"), ErrFile = Dir.file("stderr");
  llvm::Optional<llvm::StringRef> Redirects[] = {
      llvm::StringRef(""), llvm::StringRef(OutFile), llvm::StringRef(ErrFile)};
  int Status = llvm::sys::ExecuteAndWait(QFX_QOPT_PATH, Refs, llvm::None,
                                         Redirects, 120);
  Err = must(readFile(ErrFile));
  return Status;
}

} // namespace

TEST_CASE("qopt: dynamic qconfig JSON, prepare and convert without "
          "calibration",
          "[dynamic][qopt]") {
  TempDir Dir;
  std::string Model = dataPath("qopt/model.ir");
  std::string QConfig = Dir.file("dynamic.json");
  REQUIRE(!writeFileAtomically(QConfig,
                               R"({"object_type": [["Linear", "dynamic"]]})"));
  for (bool Calibrate : {false, true}) {
    INFO("calibrate " << Calibrate);
    std::string Observed = Dir.file("observed.json");
    std::string Quantized = Dir.file("dynamic.out.json");
    std::string Err;
    std::vector<std::string> Args = {
        Model,
        "--qconfig=" + QConfig,
        "--passes=fuse,qconfig-propagation,prepare",
        "--emit=json",
        "-o",
        Observed};
    if (Calibrate)
      Args.push_back("--calibrate=" + dataPath("qopt/calib.npy"));
    REQUIRE(qopt(Dir, Args, Err) == 0);
    INFO(Err);
    REQUIRE(qopt(Dir,
                 {Observed, "--passes=convert", "--emit=json", "-o", Quantized},
                 Err) == 0);
    auto GM = must(loadGraphModule(Quantized));
    CHECK(GM->lookupModule("fc")->kind() == "QuantizedLinearDynamic");
    CHECK(GM->lookupModule("fc")->tensor("weight")->dtype() == DType::S8);
    // The conv's qconfig is none: it stays float, and nothing is quantized
    // in the graph.
    CHECK(GM->lookupModule("conv1")->kind() == "ConvReLU2d");
    CHECK(!callsFunction(*GM, "quantize_per_tensor"));

    std::string Input = "--run=" + dataPath("qopt/input.npy");
    std::string Ref = Dir.file("ref.npy"), Out = Dir.file("out.npy");
    REQUIRE(qopt(Dir, {Quantized, Input, "-o", Ref}, Err) == 0);
    REQUIRE(qopt(Dir, {Quantized, Input, "--compiled", "-o", Out}, Err) == 0);
    Tensor A = must(readNpy(Ref)), B = must(readNpy(Out));
    Tensor Float = must(interpret(*must(loadGraphModule(Model)),
                                  {must(readNpy(dataPath("qopt/input.npy")))}));
    CHECK(relErr(B, A) <= 1e-5);
    CHECK(relErr(A, Float) <= 0.05);
  }
}

TEST_CASE("dynamic: a static activation observer is rejected", "[dynamic]") {
  Subject S = mlp();
  QConfig QC = must(QConfig::preset("dynamic"));
  QC.Name = "custom";
  QC.Activation = ObserverSpec::make(ObserverKind::MinMax, DType::U8,
                                     QScheme::PerTensorAffine);
  QConfigMapping M;
  M.setGlobal(QC);
  auto Obs = prepare_fx(*S.Model, M,
                        {InputSpec::symbolic("x", DType::F32, S.InputShape)});
  REQUIRE(!Obs);
  CHECK_THAT(errorToString(Obs.takeError()),
             Catch::Matchers::Contains(
                 "a dynamic qconfig needs a quint8 PlaceholderObserver for "
                 "activations, got MinMaxObserver of quint8"));
}

TEST_CASE("dynamic and weight_only under prepare_qat_fx", "[dynamic]") {
  // Placeholders stay plain observers in training graphs; the weights are
  // fake-quantized and converted as in PTQ.
  for (const char *Preset : {"dynamic", "weight_only"}) {
    INFO(Preset);
    Subject S = mlp();
    auto Obs = must(
        prepare_qat_fx(*S.Model, globalPreset(Preset),
                       {InputSpec::symbolic("x", DType::F32, S.InputShape)}));
    must(Obs({S.Calibration}));
    auto GM = must(convert_to_reference_fx(Obs.graphModule()));
    Tensor X = npy("dynamic/x_b4.npy");
    Tensor Ref = interpretOne(*GM, X);
    CHECK(relErr(Ref, floatOutput(S, X)) <= 0.1);
    auto CM = compileFor(*GM, X);
    CHECK(relErr(runCompiled(*CM, X), Ref) <= 1e-5);
  }
}
