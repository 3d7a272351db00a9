//===- ConvFamilyTest.cpp - Conv1d and BatchNorm1d through the stack ------===//
//
// Forward against PyTorch 1.13 (test/data/make_convfamily_golden.py wrote
// convfamily/), bad inputs, gradients against finite differences, and a tiny
// Conv1d + BatchNorm1d model through fusion, prepare_fx, calibration,
// convert and compile (float and int8) against PyTorch's FX results.
//
//===----------------------------------------------------------------------===//

#include "GradCheck.h"
#include "TestUtil.h"

#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Modules.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Npy.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Train/Tape.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace qfx;
using namespace qfx::nn;
using testutil::errorOf;
using testutil::take;

namespace {

std::string dataPath(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/convfamily/" + File;
}

const std::map<std::string, Tensor> &goldenOps() {
  static const std::map<std::string, Tensor> Ops =
      take(readSafetensors(dataPath("ops.safetensors"))).Tensors;
  return Ops;
}

const Tensor &golden(const std::string &Key) {
  auto It = goldenOps().find(Key);
  if (It == goldenOps().end())
    FAIL("no golden tensor " << Key);
  return It->second;
}

Tensor readGolden(const std::string &File) {
  return take(readNpy(dataPath(File)));
}

/// The largest |A - B| over max(1, |B|).
double maxRelDiff(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double M = 0;
  for (int64_t I = 0; I < A.numElements(); ++I) {
    double W = B.getAsDouble(I);
    M = std::max(M,
                 std::abs(A.getAsDouble(I) - W) / std::max(1.0, std::abs(W)));
  }
  return M;
}

/// |A - B| in units of \p Step, per element.
std::vector<double> stepsApart(const Tensor &A, const Tensor &B, double Step) {
  REQUIRE(A.shape() == B.shape());
  std::vector<double> R;
  for (int64_t I = 0; I < A.numElements(); ++I)
    R.push_back(std::abs(A.getAsDouble(I) - B.getAsDouble(I)) / Step);
  return R;
}

/// "<observer> <observed> <scale> <zero point>" lines of \p File.
std::vector<std::tuple<std::string, double, int64_t>>
readQParams(const std::string &File) {
  std::ifstream In(dataPath(File));
  REQUIRE(In.good());
  std::vector<std::tuple<std::string, double, int64_t>> R;
  for (std::string Line; std::getline(In, Line);) {
    std::istringstream S(Line);
    std::string Obs, Node;
    double Scale;
    int64_t Zp;
    S >> Obs >> Node >> Scale >> Zp;
    R.emplace_back(Node, Scale, Zp);
  }
  return R;
}

struct KernelModeScope {
  KernelMode Saved;
  explicit KernelModeScope(KernelMode M) : Saved(kernelMode()) {
    setKernelMode(M);
  }
  ~KernelModeScope() { setKernelMode(Saved); }
};

/// make_convfamily_golden.py's CONV1D cases.
struct Conv1dCase {
  const char *Name;
  int64_t Stride, Padding, Dilation, Groups;
  bool Bias;
};
const Conv1dCase Conv1dCases[] = {
    {"conv1d_basic", 1, 0, 1, 1, true},
    {"conv1d_stride_pad", 2, 1, 1, 1, true},
    {"conv1d_dil_groups", 1, 2, 2, 2, false},
    {"conv1d_depthwise", 1, 2, 1, 5, true},
};

Tensor runConv1d(const Conv1dCase &C) {
  std::string N = C.Name;
  Operand Bias =
      C.Bias ? Operand(golden(N + ".bias")) : Operand(Argument::none());
  return take(runOp(
      "conv1d", {golden(N + ".x"), golden(N + ".weight"), Bias,
                 Argument::integer(C.Stride), Argument::integer(C.Padding),
                 Argument::integer(C.Dilation), Argument::integer(C.Groups)}));
}

} // namespace

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

TEST_CASE("conv family: conv1d matches PyTorch on reference and oneDNN "
          "kernels",
          "[convfamily]") {
  for (KernelMode M : {KernelMode::Reference, KernelMode::OneDNN}) {
    KernelModeScope Scope(M);
    for (const Conv1dCase &C : Conv1dCases) {
      INFO(C.Name << (M == KernelMode::OneDNN ? " onednn" : " reference"));
      CHECK(maxRelDiff(runConv1d(C), golden(std::string(C.Name) + ".y")) <
            1e-5);
    }
  }
}

TEST_CASE("conv family: Conv1d and F::conv1d agree and have PyTorch's "
          "parameter layout",
          "[convfamily]") {
  Conv1d M(Conv1dOptions(4, 6, 3).stride(2).padding(1).groups(2));
  CHECK(M.weight.shape() == llvm::ArrayRef<int64_t>{6, 2, 3});
  CHECK(M.bias.shape() == llvm::ArrayRef<int64_t>{6});
  Tensor X = gradcheck::randomTensor({2, 4, 9}, 3);
  Tensor A = M.forward(X).tensor();
  Tensor B = F::conv1d(X, M.weight, M.bias, 2, 1, 1, 2).tensor();
  CHECK(A.shape() == llvm::ArrayRef<int64_t>{2, 6, 5});
  CHECK(maxRelDiff(A, B) == 0.0);
}

TEST_CASE("conv family: batch_norm on 2-d and 3-d input and BatchNorm1d match "
          "PyTorch",
          "[convfamily]") {
  for (const char *Case : {"bn1d_2d", "bn1d_3d"}) {
    INFO(Case);
    std::string N = Case;
    const Tensor &X = golden(N + ".x");
    BatchNorm1d BN(X.dim(1), N == "bn1d_3d" ? 1e-3 : 1e-5);
    BN.eval();
    std::pair<Tensor *, const char *> Params[] = {
        {&BN.weight, "weight"},
        {&BN.bias, "bias"},
        {&BN.running_mean, "running_mean"},
        {&BN.running_var, "running_var"}};
    for (auto &[T, K] : Params) // the members share the module's storage
      std::memcpy(T->rawData(), golden(N + "." + K).rawData(), T->byteSize());
    CHECK(maxRelDiff(BN.forward(X).tensor(), golden(N + ".y")) < 1e-5);
  }
}

//===----------------------------------------------------------------------===//
// Bad inputs
//===----------------------------------------------------------------------===//

TEST_CASE("conv family: bad conv1d and BatchNorm1d inputs name the op and "
          "the parameter",
          "[convfamily]") {
  Tensor W = gradcheck::randomTensor({4, 2, 3}, 1);
  struct Row {
    Tensor X, W;
    int64_t Stride, Groups;
    std::string Message;
  };
  const Row Rows[] = {
      {Tensor(DType::F32, {1, 4, 5, 5}), W, 1, 2,
       "conv1d: input: expected a 3-d input [N, C, L], got [1,4,5,5]"},
      {Tensor(DType::F32, {1, 4, 5}), Tensor(DType::F32, {4, 2, 3, 3}), 1, 2,
       "conv1d: weight: expected a 3-d weight [out, in/groups, k], got "
       "[4,2,3,3]"},
      {Tensor(DType::F32, {1, 4, 5}), W, 1, 3,
       "conv1d: groups: out_channels (4) is not divisible by groups (3)"},
      {Tensor(DType::F32, {1, 3, 5}), W, 1, 2,
       "conv1d: groups: input has 3 channels but weight expects 4 "
       "(groups=2)"},
      {Tensor(DType::F32, {1, 4, 5}), W, 0, 2,
       "conv1d: stride: must be at least 1, got 0"},
  };
  for (const Row &R : Rows) {
    auto T =
        runOp("conv1d", {R.X, R.W, Argument::none(),
                         Argument::integer(R.Stride), Argument::integer(0),
                         Argument::integer(1), Argument::integer(R.Groups)});
    CHECK(errorOf(std::move(T)) == R.Message);
  }
  CHECK(errorOf(runOp("conv1d", {Tensor(DType::F32, {1, 4, 5}), W,
                                 Argument::none(), Argument::ints({1, 1})})) ==
        "conv1d: stride: expected an int or one int, got 2 ints");

  auto Thrown = [](auto Fn) -> std::string {
    try {
      Fn();
    } catch (const std::exception &E) {
      return E.what();
    }
    return "";
  };
  CHECK(Thrown([] { Conv1d(Conv1dOptions(3, 4, 3).groups(2)); }) ==
        "Conv1d: in_channels (3) and out_channels (4) must be divisible by "
        "groups (2)");
  CHECK(Thrown([] {
          BatchNorm1d BN(4);
          BN.forward(Tensor(DType::F32, {1, 4, 2, 2}));
        }) == "BatchNorm1d: expected 2D or 3D input (got 4D input)");
  CHECK(Thrown([] {
          BatchNorm1d BN(4);
          BN.forward(Tensor(DType::F32, {1, 3, 2}));
        }) == "BatchNorm1d: batch_norm: input has 3 channels but the "
              "statistics have 4");
}

//===----------------------------------------------------------------------===//
// Gradients
//===----------------------------------------------------------------------===//

namespace {

struct OneConv : Module {
  std::shared_ptr<Conv1d> conv;
  explicit OneConv(const Conv1dOptions &O) : Module("OneConv") {
    conv = register_module("conv", std::make_shared<Conv1d>(O));
  }
  Value forward(Value X) override { return (*conv)(X); }
};

} // namespace

TEST_CASE("conv family: conv1d gradients match finite differences",
          "[convfamily][grad]") {
  for (auto O :
       {Conv1dOptions(3, 4, 3),
        Conv1dOptions(4, 6, 3).stride(2).padding(1).dilation(2).groups(2)}) {
    INFO("stride " << O.Stride << " groups " << O.Groups);
    OneConv M(O);
    Shape XS{2, O.In, 9};
    auto GM =
        take(symbolic_trace(M, {InputSpec::symbolic("x", DType::F32, XS)}));
    Tensor X = gradcheck::randomTensor(XS, 7);
    Tensor Y = take(Interpreter(*GM).run({X}))[0];
    Tensor R = gradcheck::randomTensor(Y.shape(), 8);
    TapeOptions TO;
    TO.InputGradients = true;
    Tape T(*GM, TO);
    take(T.forward({X}));
    if (llvm::Error E = T.backward({R}))
      FAIL(errorToString(std::move(E)));
    auto Run = [&](const Tensor &In) {
      return take(Interpreter(*GM).run({In}))[0];
    };
    CHECK(gradcheck::compareWithFiniteDifferences(Run, X, R, T.inputGrad(0)) ==
          "");
    Tensor &W = *GM->lookupModule("conv")->tensor("weight");
    Tensor W0 = W.clone();
    auto OfW = [&](const Tensor &NewW) {
      std::memcpy(W.rawData(), NewW.rawData(), W.byteSize());
      Tensor Out = Run(X);
      std::memcpy(W.rawData(), W0.rawData(), W.byteSize());
      return Out;
    };
    CHECK(gradcheck::compareWithFiniteDifferences(
              OfW, W0, R, T.grads().at("conv.weight")) == "");
  }
}

//===----------------------------------------------------------------------===//
// The tiny model through quantization and compilation
//===----------------------------------------------------------------------===//

namespace {

/// The oneDNN implementations of \p C's conv1d, deconv and batch_norm steps
/// that are oneDNN's reference (slow) code, one line each.
std::string referenceImpls(const CompiledModule &C) {
  std::string R;
  for (const StepInfo &S : C.steps())
    if ((S.Kind == "conv1d" || S.Kind == "deconv" || S.Kind == "batch_norm") &&
        llvm::StringRef(S.Impl).contains("ref"))
      R += S.Name + " (" + S.Kind + "): " + S.Impl + "\n";
  return R;
}

/// make_convfamily_golden.py's Tiny.
struct Tiny : Module {
  std::shared_ptr<Conv1d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm1d> bn1, bn2, bn3;
  std::shared_ptr<ReLU> relu1;
  std::shared_ptr<Linear> fc;
  Tiny() : Module("Tiny") {
    conv1 = register_module(
        "conv1", std::make_shared<Conv1d>(Conv1dOptions(4, 8, 3).padding(1)));
    bn1 = register_module("bn1", std::make_shared<BatchNorm1d>(8));
    relu1 = register_module("relu1", std::make_shared<ReLU>());
    conv2 = register_module(
        "conv2",
        std::make_shared<Conv1d>(
            Conv1dOptions(8, 8, 3).stride(2).padding(2).dilation(2).groups(2)));
    bn2 = register_module("bn2", std::make_shared<BatchNorm1d>(8));
    conv3 = register_module("conv3",
                            std::make_shared<Conv1d>(Conv1dOptions(8, 8, 1)));
    bn3 = register_module("bn3", std::make_shared<BatchNorm1d>(8));
    fc = register_module("fc", std::make_shared<Linear>(8 * 16, 10));
  }
  Value forward(Value X) override {
    X = (*relu1)((*bn1)((*conv1)(X)));
    X = F::relu((*bn2)((*conv2)(X)));
    X = F::relu((*conv3)(X));
    X = (*bn3)(X);
    X = F::flatten(X, 1);
    return (*fc)(X);
  }
};

std::unique_ptr<Tiny> tiny() {
  auto M = std::make_unique<Tiny>();
  if (llvm::Error E =
          M->load_safetensors(dataPath("tiny.safetensors"), /*Strict=*/false))
    FAIL(errorToString(std::move(E)));
  M->eval();
  return M;
}

QConfigMapping x86() {
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("x86")));
  return Map;
}

const InputSpec TinyInput = InputSpec::symbolic("x", DType::F32, {4, 4, 32});

} // namespace

TEST_CASE("conv family: the tiny model's float forward matches PyTorch, "
          "interpreted and compiled without fallback",
          "[convfamily]") {
  auto M = tiny();
  Tensor X = readGolden("test_input.npy");
  Tensor Want = readGolden("tiny_float_output.npy");
  CHECK(maxRelDiff(M->forward(X).tensor(), Want) < 1e-5);
  auto GM = take(symbolic_trace(*M, {TinyInput}));
  CHECK(maxRelDiff(take(Interpreter(*GM).run({X}))[0], Want) < 1e-5);
  auto C = take(compile(*GM));
  for (const FallbackInfo &F : C->fallbacks())
    FAIL_CHECK(formatFallback(F));
  CHECK(referenceImpls(*C) == "");
  CHECK(maxRelDiff(take(C->run({X}))[0], Want) < 1e-4);
}

TEST_CASE("conv family: the tiny model quantizes as PyTorch's FX x86 and "
          "compiles to int8 without fallback",
          "[convfamily]") {
  auto M = tiny();
  auto Obs = take(prepare_fx(*M, x86(), {TinyInput}));
  GraphModule &P = Obs.graphModule();
  // Fusion as PyTorch 1.13: conv-bn-relu (module and functional relu) and
  // conv-relu fold their batch norms for post-training quantization.
  CHECK(P.lookupModule("conv1")->kind() == "ConvReLU1d");
  CHECK(P.lookupModule("conv2")->kind() == "ConvReLU1d");
  CHECK(P.lookupModule("conv3")->kind() == "ConvReLU1d");
  CHECK(P.lookupModule("bn3")->kind() == "BatchNorm1d");
  take(Obs({readGolden("calibration.npy")}));

  // Every observed value's qparams are PyTorch's.
  auto Golden = readQParams("tiny_qparams.txt");
  int Checked = 0;
  for (const Node &N : P.graph()) {
    if (N.op() != OpCode::CallModule ||
        !isObserverModule(*P.lookupModule(N.target())))
      continue;
    std::string Observed = N.arg(0).getNode()->name().str();
    INFO("observer of " << Observed);
    auto It = llvm::find_if(
        Golden, [&](const auto &G) { return std::get<0>(G) == Observed; });
    REQUIRE(It != Golden.end());
    auto QP = take(
        take(loadObserver(*P.lookupModule(N.target())))->calculateQParams());
    CHECK(std::abs(QP.Scale - std::get<1>(*It)) <= 1e-6 * std::get<1>(*It));
    CHECK(QP.ZeroPoint == std::get<2>(*It));
    ++Checked;
  }
  // PyTorch gives flatten an observer of its own holding bn3's qparams;
  // qfx's shares-qparams ops reuse their input's (docs/quantization.md).
  CHECK(Checked == static_cast<int>(Golden.size()) - 1);

  auto Ref = take(convert_to_reference_fx(P));
  CHECK(Ref->lookupModule("conv1")->kind() == "QuantizedConvReLU1d");
  CHECK(Ref->lookupModule("conv2")->kind() == "QuantizedConvReLU1d");
  CHECK(Ref->lookupModule("bn3")->kind() == "BatchNorm1d");
  CHECK(Ref->lookupModule("fc")->kind() == "QuantizedLinear");
  Tensor X = readGolden("test_input.npy");
  Tensor Q = take(Interpreter(*Ref).run({X}))[0];
  double Step = std::get<1>(Golden.back()); // fc's output scale
  // The reference interpreter against convert_fx (onednn engine) and
  // convert_to_reference_fx: every element within one output step.
  for (const char *File : {"tiny_output.npy", "tiny_reference_output.npy"}) {
    INFO(File);
    std::vector<double> D = stepsApart(Q, readGolden(File), Step);
    CHECK(*std::max_element(D.begin(), D.end()) <= 1.0 + 1e-6);
  }
  // Compiled int8: no fallback, within one step of the interpreter.
  auto C = take(compile(*Ref));
  for (const FallbackInfo &F : C->fallbacks())
    FAIL_CHECK(formatFallback(F));
  CHECK(referenceImpls(*C) == "");
  std::vector<double> D = stepsApart(take(C->run({X}))[0], Q, Step);
  CHECK(*std::max_element(D.begin(), D.end()) <= 1.0 + 1e-6);
}

TEST_CASE("conv family: torch.onnx.export's Conv1d and 3-d BatchNormalization "
          "import at opsets 13 and 17",
          "[convfamily][onnx]") {
  Tensor X = readGolden("test_input.npy");
  Tensor Want = readGolden("tiny_float_output.npy");
  for (const char *File : {"tiny_opset13.onnx", "tiny_opset17.onnx"}) {
    INFO(File);
    auto GM = take(importOnnx(dataPath(File)));
    int Conv1ds = 0, BatchNorm1ds = 0;
    for (const Node &N : GM->graph())
      if (N.op() == OpCode::CallModule) {
        llvm::StringRef K = GM->lookupModule(N.target())->kind();
        Conv1ds += K == "Conv1d";
        BatchNorm1ds += K == "BatchNorm1d";
      }
    // The exporter folds bn1 and bn2 into their convs; bn3 stays.
    CHECK(Conv1ds == 3);
    CHECK(BatchNorm1ds == 1);
    CHECK(maxRelDiff(take(Interpreter(*GM).run({X}))[0], Want) < 1e-5);
    auto C = take(compile(*GM));
    CHECK(C->fallbacks().empty());
  }
}

//===----------------------------------------------------------------------===//
// ConvTranspose2d
//===----------------------------------------------------------------------===//

namespace {

/// make_convfamily_golden.py's CONVT cases.
struct ConvTCase {
  const char *Name;
  int64_t Stride, Padding, OutputPadding, Groups, Dilation;
  bool Bias;
};
const ConvTCase ConvTCases[] = {
    {"convt_basic", 1, 0, 0, 1, 1, true},
    {"convt_stride_outpad", 2, 1, 1, 1, 1, true},
    {"convt_groups_dil", 2, 0, 1, 2, 2, false},
};

std::vector<Operand> convTOperands(const ConvTCase &C, const Tensor &X) {
  std::string N = C.Name;
  return {X,
          golden(N + ".weight"),
          C.Bias ? Operand(golden(N + ".bias")) : Operand(Argument::none()),
          Argument::integer(C.Stride),
          Argument::integer(C.Padding),
          Argument::integer(C.OutputPadding),
          Argument::integer(C.Groups),
          Argument::integer(C.Dilation)};
}

/// make_convfamily_golden.py's Up.
struct Up : Module {
  std::shared_ptr<ConvTranspose2d> up1, up2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Conv2d> conv;
  Up() : Module("Up") {
    up1 = register_module(
        "up1", std::make_shared<ConvTranspose2d>(
                   ConvTranspose2dOptions(3, 8, 3).stride(2).padding(1)));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(8));
    up2 = register_module(
        "up2", std::make_shared<ConvTranspose2d>(
                   ConvTranspose2dOptions(8, 4, 2).stride(2).bias(false)));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(4));
    conv = register_module(
        "conv", std::make_shared<Conv2d>(Conv2dOptions(4, 2, 3).padding(1)));
  }
  Value forward(Value X) override {
    X = F::relu((*bn1)((*up1)(X)));
    X = (*bn2)((*up2)(X));
    return (*conv)(X);
  }
};

std::unique_ptr<Up> up() {
  auto M = std::make_unique<Up>();
  if (llvm::Error E =
          M->load_safetensors(dataPath("up.safetensors"), /*Strict=*/false))
    FAIL(errorToString(std::move(E)));
  M->eval();
  return M;
}

const InputSpec UpInput = InputSpec::symbolic("x", DType::F32, {4, 3, 6, 6});

} // namespace

TEST_CASE("conv family: conv_transpose2d matches PyTorch", "[convfamily]") {
  for (const ConvTCase &C : ConvTCases) {
    INFO(C.Name);
    std::string N = C.Name;
    Tensor Y =
        take(runOp("conv_transpose2d", convTOperands(C, golden(N + ".x"))));
    CHECK(maxRelDiff(Y, golden(N + ".y")) < 1e-5);
  }
  ConvTranspose2d M(
      ConvTranspose2dOptions(4, 6, 3).stride(2).output_padding(1).groups(2));
  CHECK(M.weight.shape() == llvm::ArrayRef<int64_t>{4, 3, 3, 3});
  Tensor X = gradcheck::randomTensor({1, 4, 5, 5}, 4);
  Tensor A = M.forward(X).tensor();
  CHECK(A.shape() == llvm::ArrayRef<int64_t>{1, 6, 12, 12});
  Tensor B =
      F::conv_transpose2d(X, M.weight, M.bias, {2}, {0}, {1}, 2).tensor();
  CHECK(maxRelDiff(A, B) == 0.0);
}

TEST_CASE("conv family: bad conv_transpose2d inputs name the op and the "
          "parameter",
          "[convfamily]") {
  const ConvTCase &C = ConvTCases[1]; // weight [4, 6, 3, 3], stride 2
  struct Row {
    Shape X;
    int64_t OutputPadding, Groups;
    std::string Message;
  };
  const Row Rows[] = {
      {{4, 5, 5},
       1,
       1,
       "conv_transpose2d: input: expected a 4-d input [N, C, H, W], got "
       "[4,5,5]"},
      {{1, 4, 5, 5},
       2,
       1,
       "conv_transpose2d: output_padding: must be smaller than either stride "
       "or dilation, got output_padding (2, 2), stride (2, 2), dilation "
       "(1, 1)"},
      {{1, 4, 5, 5},
       1,
       3,
       "conv_transpose2d: groups: in_channels (4) is not divisible by groups "
       "(3)"},
      {{1, 3, 5, 5},
       1,
       1,
       "conv_transpose2d: input: has 3 channels but weight expects 4"},
  };
  for (const Row &R : Rows) {
    std::vector<Operand> Ops = convTOperands(C, Tensor(DType::F32, R.X));
    Ops[5] = Operand(Argument::integer(R.OutputPadding));
    Ops[6] = Operand(Argument::integer(R.Groups));
    CHECK(errorOf(runOp("conv_transpose2d", Ops)) == R.Message);
  }
  std::string Thrown;
  try {
    ConvTranspose2d(
        ConvTranspose2dOptions(4, 6, 3).stride(2).output_padding(2));
  } catch (const std::exception &E) {
    Thrown = E.what();
  }
  CHECK(Thrown == "ConvTranspose2d: output_padding must be smaller than "
                  "either stride or dilation");
}

TEST_CASE("conv family: conv_transpose2d gradients match finite differences",
          "[convfamily][grad]") {
  for (const ConvTCase &C : ConvTCases) {
    INFO(C.Name);
    std::string N = C.Name;
    const Tensor &X = golden(N + ".x");
    auto Run = [&](const Tensor &In, const Tensor &W) {
      std::vector<Operand> Ops = convTOperands(C, In);
      Ops[1] = W;
      return take(runOp("conv_transpose2d", Ops));
    };
    const Tensor &W = golden(N + ".weight");
    Tensor R = gradcheck::randomTensor(Run(X, W).shape(), 9);
    ref::ConvTranspose2dParams P;
    P.Stride = {C.Stride, C.Stride};
    P.Padding = {C.Padding, C.Padding};
    P.OutputPadding = {C.OutputPadding, C.OutputPadding};
    P.Dilation = {C.Dilation, C.Dilation};
    P.Groups = C.Groups;
    auto G = ref::convTranspose2dBackward(X, W, C.Bias, R, P);
    CHECK(gradcheck::compareWithFiniteDifferences(
              [&](const Tensor &T) { return Run(T, W); }, X, R, G.X) == "");
    CHECK(gradcheck::compareWithFiniteDifferences(
              [&](const Tensor &T) { return Run(X, T); }, W, R, G.W) == "");
  }
}

TEST_CASE("conv family: ConvTranspose2d + BatchNorm2d fuse as PyTorch's and "
          "the float model compiles without fallback",
          "[convfamily]") {
  auto M = up();
  Tensor X = readGolden("up_test_input.npy");
  Tensor Want = readGolden("up_float_output.npy");
  CHECK(maxRelDiff(M->forward(X).tensor(), Want) < 1e-5);
  auto Obs = take(prepare_fx(*M, x86(), {UpInput}));
  // A relu after the batch norm takes it (BNReLU2d), as in PyTorch 1.13;
  // bn2 folds into up2.
  GraphModule &P = Obs.graphModule();
  CHECK(P.lookupModule("up1")->kind() == "ConvTranspose2d");
  CHECK(P.lookupModule("bn1")->kind() == "BNReLU2d");
  CHECK(P.lookupModule("up2")->kind() == "ConvTranspose2d");
  CHECK(P.lookupModule("bn2") == nullptr);
  auto GM = take(symbolic_trace(*M, {UpInput}));
  auto C = take(compile(*GM));
  for (const FallbackInfo &F : C->fallbacks())
    FAIL_CHECK(formatFallback(F));
  CHECK(referenceImpls(*C) == "");
  CHECK(maxRelDiff(take(C->run({X}))[0], Want) < 1e-4);
  for (const char *File : {"up_opset13.onnx", "up_opset17.onnx"}) {
    INFO(File);
    auto Imported = take(importOnnx(dataPath(File)));
    CHECK(maxRelDiff(take(Interpreter(*Imported).run({X}))[0], Want) < 1e-5);
    auto CI = take(compile(*Imported));
    CHECK(CI->fallbacks().empty());
  }
}

namespace {

/// PyTorch 1.13's get_default_qconfig_mapping("x86") as far as Up needs
/// it: the x86 qconfig, with per-tensor symmetric MinMax weights for
/// ConvTranspose2d.
QConfigMapping x86Default() {
  QConfig QC = take(QConfig::preset("x86"));
  QConfig Transpose = QC;
  Transpose.Weight = ObserverSpec::make(ObserverKind::MinMax, DType::S8,
                                        QScheme::PerTensorSymmetric);
  QConfigMapping Map;
  Map.setGlobal(QC);
  Map.setObjectType("ConvTranspose2d", Transpose);
  return Map;
}

} // namespace

TEST_CASE("conv family: ConvTranspose2d quantizes as PyTorch's FX x86 "
          "default mapping and compiles to int8 without fallback",
          "[convfamily]") {
  auto M = up();
  auto Obs = take(prepare_fx(*M, x86Default(), {UpInput}));
  take(Obs({readGolden("up_calibration.npy")}));
  GraphModule &P = Obs.graphModule();
  auto Golden = readQParams("up_qparams.txt");
  int Checked = 0;
  for (const Node &N : P.graph()) {
    if (N.op() != OpCode::CallModule ||
        !isObserverModule(*P.lookupModule(N.target())))
      continue;
    std::string Observed = N.arg(0).getNode()->name().str();
    INFO("observer of " << Observed);
    auto It = llvm::find_if(
        Golden, [&](const auto &G) { return std::get<0>(G) == Observed; });
    REQUIRE(It != Golden.end());
    auto QP = take(
        take(loadObserver(*P.lookupModule(N.target())))->calculateQParams());
    CHECK(std::abs(QP.Scale - std::get<1>(*It)) <= 1e-6 * std::get<1>(*It));
    CHECK(QP.ZeroPoint == std::get<2>(*It));
    ++Checked;
  }
  CHECK(Checked == static_cast<int>(Golden.size()));

  auto Ref = take(convert_to_reference_fx(P));
  CHECK(Ref->lookupModule("up1")->kind() == "QuantizedConvTranspose2d");
  CHECK(Ref->lookupModule("up2")->kind() == "QuantizedConvTranspose2d");
  Tensor X = readGolden("up_test_input.npy");
  Tensor Q = take(Interpreter(*Ref).run({X}))[0];
  double Step = std::get<1>(Golden.back());
  for (const char *File : {"up_output.npy", "up_reference_output.npy"}) {
    INFO(File);
    std::vector<double> D = stepsApart(Q, readGolden(File), Step);
    CHECK(*std::max_element(D.begin(), D.end()) <= 1.0 + 1e-6);
  }
  auto C = take(compile(*Ref));
  for (const FallbackInfo &F : C->fallbacks())
    FAIL_CHECK(formatFallback(F));
  CHECK(referenceImpls(*C) == "");
  std::vector<double> D = stepsApart(take(C->run({X}))[0], Q, Step);
  CHECK(*std::max_element(D.begin(), D.end()) <= 1.0 + 1e-6);

  // A per-channel weight observer on axis 0 (the x86 qconfig as is) is
  // PyTorch's error too.
  auto M2 = up();
  auto Obs2 = take(prepare_fx(*M2, x86(), {UpInput}));
  take(Obs2({readGolden("up_calibration.npy")}));
  CHECK(errorOf(convert_to_reference_fx(Obs2.graphModule())) ==
        "convert_to_reference_fx: pass 'convert': node 'up1': "
        "ConvTranspose2d: per-channel weight quantization must be along axis "
        "1 (output channels), got axis 0; use a per-tensor weight observer as "
        "PyTorch 1.13's get_default_qconfig_mapping(\"x86\") does");
}

//===----------------------------------------------------------------------===//
// QAT
//===----------------------------------------------------------------------===//

namespace {

/// conv -> bn -> relu with a Conv1d + BatchNorm1d, or the same as a
/// Conv2d with a [1, k] kernel + BatchNorm2d (PyTorch's conv1d is that
/// conv2d over a unit height).
struct ConvBnRelu : Module {
  std::shared_ptr<Module> conv, bn;
  explicit ConvBnRelu(bool OneD) : Module("ConvBnRelu") {
    if (OneD) {
      conv = register_module(
          "conv", std::make_shared<Conv1d>(Conv1dOptions(4, 6, 3).padding(1)));
      bn = register_module("bn", std::make_shared<BatchNorm1d>(6));
    } else {
      Conv2dOptions O(4, 6, std::array<int64_t, 2>{1, 3});
      O.Padding = {0, 1};
      conv = register_module("conv", std::make_shared<Conv2d>(O));
      bn = register_module("bn", std::make_shared<BatchNorm2d>(6));
    }
  }
  Value forward(Value X) override { return F::relu((*bn)((*conv)(X))); }
};

} // namespace

TEST_CASE("conv family: a QAT ConvBnReLU1d trains as the unit-height "
          "ConvBnReLU2d",
          "[convfamily][qat]") {
  ConvBnRelu M1(true), M2(false);
  // Same parameters: the 2-d conv's [6, 4, 1, 3] weight holds the 1-d one's
  // [6, 4, 3] bytes.
  auto Params1 = M1.named_parameters();
  auto Params2 = M2.named_parameters();
  REQUIRE(Params1.size() == Params2.size());
  for (size_t I = 0; I < Params1.size(); ++I) {
    Tensor &T = Params1[I].second;
    REQUIRE(Params1[I].first == Params2[I].first);
    Tensor R = gradcheck::randomTensor(T.shape(), 20 + I, 0.5f, 1.5f);
    std::memcpy(T.rawData(), R.rawData(), T.byteSize());
    std::memcpy(Params2[I].second.rawData(), R.rawData(), T.byteSize());
  }
  QConfigMapping Map;
  Map.setGlobal(take(QConfig::preset("qat_x86")));
  Tensor X = gradcheck::randomTensor({2, 4, 7}, 30);
  Tensor X4 = X.reshaped({2, 4, 1, 7});
  M1.train();
  M2.train();
  auto O1 = take(prepare_qat_fx(
      M1, Map, {InputSpec::symbolic("x", DType::F32, {2, 4, 7})}));
  auto O2 = take(prepare_qat_fx(
      M2, Map, {InputSpec::symbolic("x", DType::F32, {2, 4, 1, 7})}));
  CHECK(O1.graphModule().lookupModule("conv")->kind() == "ConvBnReLU1d");
  CHECK(O2.graphModule().lookupModule("conv")->kind() == "ConvBnReLU2d");
  auto Step = [](GraphModule &GM, const Tensor &In, const Tensor &R) {
    TapeOptions TO;
    TO.InputGradients = true;
    Tape T(GM, TO);
    Tensor Y = take(T.forward({In}))[0];
    if (llvm::Error E = T.backward({R}))
      FAIL(errorToString(std::move(E)));
    return std::make_tuple(Y, T.inputGrad(0), T.grads());
  };
  Tensor R = gradcheck::randomTensor({2, 6, 7}, 31);
  auto [Y1, DX1, G1] = Step(O1.graphModule(), X, R);
  auto [Y2, DX2, G2] = Step(O2.graphModule(), X4, R.reshaped({2, 6, 1, 7}));
  CHECK(maxRelDiff(Y1, Y2.reshaped({2, 6, 7})) < 1e-6);
  CHECK(maxRelDiff(DX1, DX2.reshaped({2, 4, 7})) < 1e-6);
  for (const char *P :
       {"conv.0.weight", "conv.0.bias", "conv.1.weight", "conv.1.bias"}) {
    INFO(P);
    REQUIRE(G1.count(P));
    REQUIRE(G2.count(P));
    CHECK(maxRelDiff(G1.at(P), G2.at(P).reshaped(G1.at(P).shape())) < 1e-6);
  }
}

TEST_CASE("conv family: ConvTranspose2d with per-channel weights on axis 1 "
          "compiles to int8 like its reference",
          "[convfamily]") {
  QConfig QC = take(QConfig::preset("x86"));
  QConfig Transpose = QC;
  Transpose.Weight = ObserverSpec::make(
      ObserverKind::PerChannelMinMax, DType::S8, QScheme::PerChannelSymmetric);
  Transpose.Weight.ChAxis = 1;
  QConfigMapping Map;
  Map.setGlobal(QC);
  Map.setObjectType("ConvTranspose2d", Transpose);
  auto M = up();
  auto Obs = take(prepare_fx(*M, Map, {UpInput}));
  take(Obs({readGolden("up_calibration.npy")}));
  auto Ref = take(convert_to_reference_fx(Obs.graphModule()));
  const Tensor *W = Ref->lookupModule("up1")->tensor("weight");
  REQUIRE(W);
  CHECK(W->quant().isPerChannel());
  CHECK(W->quant().Axis == 1);
  CHECK(W->quant().Scales.size() == 8);
  Tensor X = readGolden("up_test_input.npy");
  Tensor Q = take(Interpreter(*Ref).run({X}))[0];
  auto C = take(compile(*Ref));
  CHECK(C->fallbacks().empty());
  const Node *Deq = Ref->graph().outputNode()->arg(0).getNode();
  double Step = Deq->arg(0).getNode()->type()->Quant.Scale;
  std::vector<double> D = stepsApart(take(C->run({X}))[0], Q, Step);
  CHECK(*std::max_element(D.begin(), D.end()) <= 1.0 + 1e-6);
  // And close to the float model (a few output steps).
  std::vector<double> F =
      stepsApart(Q, readGolden("up_float_output.npy"), Step);
  CHECK(*std::max_element(F.begin(), F.end()) <= 8.0);
}
