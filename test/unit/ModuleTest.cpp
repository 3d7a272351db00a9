// Unit tests for nn::Module: registration, PyTorch's naming and ordering,
// state_dict loading and its errors, modes and calls.
#include "qfx/NN/Module.h"
#include "qfx/NN/Modules.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Support/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::nn;
using Catch::Contains;
using Catch::StartsWith;

namespace {

std::string goldenPath(llvm::StringRef Name) {
  return std::string(QFX_TEST_DATA_DIR) + "/nn/" + Name.str();
}

/// One "<section>\t<name>\t<detail>" line of a .keys golden file, as
/// "<name> <detail>" (readable when a comparison fails).
using KeyLine = std::string;

/// The (name, detail) pairs of \p Section in golden file \p File.
std::vector<KeyLine> goldenKeys(llvm::StringRef File, llvm::StringRef Section) {
  llvm::Expected<std::string> Text = readFile(goldenPath(File));
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  llvm::SmallVector<llvm::StringRef, 0> Lines;
  llvm::StringRef(*Text).split(Lines, '\n', -1, /*KeepEmpty=*/false);
  std::vector<KeyLine> R;
  for (llvm::StringRef L : Lines) {
    llvm::SmallVector<llvm::StringRef, 3> F;
    L.split(F, '\t');
    REQUIRE(F.size() == 3);
    if (F[0] == Section)
      R.push_back((F[1] + " " + F[2]).str());
  }
  REQUIRE(!R.empty());
  return R;
}

std::vector<KeyLine>
withShapes(const std::vector<std::pair<std::string, Tensor>> &Tensors) {
  std::vector<KeyLine> R;
  for (const auto &[Name, T] : Tensors)
    R.push_back(Name + " " + formatShape(T.shape()));
  return R;
}

std::vector<std::string>
names(const std::vector<std::pair<std::string, Tensor>> &Tensors) {
  std::vector<std::string> R;
  for (const auto &KV : Tensors)
    R.push_back(KV.first);
  return R;
}

Tensor filled(llvm::ArrayRef<int64_t> Shape, float V) {
  Tensor T(DType::F32, Shape);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.setFromDouble(I, V);
  return T;
}

/// Whether every element of \p T equals \p V.
bool allEqual(const Tensor &T, double V) {
  for (int64_t I = 0; I < T.numElements(); ++I)
    if (T.getAsDouble(I) != V)
      return false;
  return true;
}

/// Fails the test with \p E's message if it is an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

std::string loadError(Module &M, const std::map<std::string, Tensor> &State,
                      bool Strict = true) {
  llvm::Error E = M.load_state_dict(State, Strict);
  if (!E)
    return "";
  return errorToString(std::move(E));
}

//===----------------------------------------------------------------------===//
// Models mirroring make_nn_golden.py's
//===----------------------------------------------------------------------===//

class BasicBlock : public Module {
public:
  BasicBlock(int64_t In, int64_t Out, int64_t Stride) : Module("BasicBlock") {
    register_module(
        "conv1",
        std::make_shared<Conv2d>(
            Conv2dOptions(In, Out, 3).stride(Stride).padding(1).bias(false)));
    register_module("bn1", std::make_shared<BatchNorm2d>(Out));
    register_module("relu", std::make_shared<ReLU>());
    register_module("conv2",
                    std::make_shared<Conv2d>(
                        Conv2dOptions(Out, Out, 3).padding(1).bias(false)));
    register_module("bn2", std::make_shared<BatchNorm2d>(Out));
    if (Stride != 1 || In != Out)
      register_module(
          "downsample",
          std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
              std::make_shared<Conv2d>(
                  Conv2dOptions(In, Out, 1).stride(Stride).bias(false)),
              std::make_shared<BatchNorm2d>(Out)}));
  }
};

class ResNet : public Module {
public:
  ResNet() : Module("ResNet") {
    register_module("conv1",
                    std::make_shared<Conv2d>(
                        Conv2dOptions(3, 4, 3).padding(1).bias(false)));
    register_module("bn1", std::make_shared<BatchNorm2d>(4));
    register_module("relu", std::make_shared<ReLU>());
    register_module("maxpool", std::make_shared<MaxPool2d>(2));
    auto L1 = register_module("layer1", std::make_shared<Sequential>());
    L1->push_back(std::make_shared<BasicBlock>(4, 4, 1));
    L1->push_back(std::make_shared<BasicBlock>(4, 4, 1));
    auto L2 = register_module("layer2", std::make_shared<Sequential>());
    L2->push_back(std::make_shared<BasicBlock>(4, 8, 2));
    register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
    register_module("fc", std::make_shared<Linear>(8, 10));
  }
};

/// The registration orders where PyTorch's orders differ from it.
class Odd : public Module {
public:
  Odd() : Module("Odd") {
    auto Child = register_module("child", std::make_shared<Linear>(2, 3));
    b = register_buffer("b", Tensor(DType::F32, {2}));
    a = register_parameter("a", filled({3}, 1));
    c = register_buffer("c", Tensor(DType::F32, {1, 2}));
    d = register_parameter("d", filled({4}, 1));
    absent = register_parameter("absent", Tensor());
    register_module("tail", std::make_shared<BatchNorm2d>(2));
    register_module("alias", Child);
  }
  Tensor a, b, c, d, absent;
};

/// A small model for load errors; its tensors are filled with 0.5.
class Net : public Module {
public:
  Net() : Module("Net") {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(1, 40, 5));
    fc = register_module("fc", std::make_shared<Linear>(40, 2));
    for (auto &KV : state_dict())
      for (int64_t I = 0; I < KV.second.numElements(); ++I)
        KV.second.setFromDouble(I, 0.5);
  }
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<Linear> fc;
};

/// A complete state for Net, every value \p V.
std::map<std::string, Tensor> netState(float V) {
  return {{"conv1.weight", filled({40, 1, 5, 5}, V)},
          {"conv1.bias", filled({40}, V)},
          {"fc.weight", filled({2, 40}, V)},
          {"fc.bias", filled({2}, V)}};
}

} // namespace

//===----------------------------------------------------------------------===//
// Registration
//===----------------------------------------------------------------------===//

TEST_CASE("register_parameter returns a handle sharing storage", "[nn]") {
  Module M("M");
  Tensor W = filled({2, 3}, 1);
  Tensor H = M.register_parameter("w", W);
  REQUIRE(M.tensors().size() == 1);
  CHECK(M.tensors()[0].Name == "w");
  CHECK_FALSE(M.tensors()[0].IsBuffer);
  CHECK(H.rawData() == W.rawData());
  REQUIRE(M.tensor("w"));
  CHECK(M.tensor("w")->rawData() == W.rawData());
  CHECK(M.tensor("x") == nullptr);

  Tensor B = M.register_buffer("b", Tensor(DType::S64, {}));
  REQUIRE(M.tensors().size() == 2);
  CHECK(M.tensors()[1].IsBuffer);
  CHECK(B.dtype() == DType::S64);
}

TEST_CASE("a tensor without data is not registered", "[nn]") {
  Module M("M");
  Tensor Absent = M.register_parameter("bias", Tensor());
  CHECK_FALSE(Absent.hasData());
  CHECK(M.tensors().empty());
  CHECK(M.tensor("bias") == nullptr);
  CHECK(M.state_dict().empty());
  // Nothing is recorded for it, so the name stays free.
  M.register_buffer("bias", filled({1}, 0));
  CHECK(M.tensors().size() == 1);
}

TEST_CASE("children are found by name in registration order", "[nn]") {
  Module M("M");
  auto A = M.register_module("a", std::make_shared<ReLU>());
  auto B = M.register_module("b", std::make_shared<Linear>(2, 2));
  REQUIRE(M.children().size() == 2);
  CHECK(M.children()[0].first == "a");
  CHECK(M.children()[1].first == "b");
  CHECK(M.child("a") == A.get());
  CHECK(M.child("b") == B.get());
  CHECK(M.child("c") == nullptr);
}

//===----------------------------------------------------------------------===//
// Names and orders, compared with PyTorch's
//===----------------------------------------------------------------------===//

TEST_CASE("named_modules matches PyTorch's order and class names", "[nn]") {
  for (const char *File : {"resnet.keys", "odd.keys"}) {
    INFO(File);
    std::shared_ptr<Module> M;
    if (llvm::StringRef(File) == "resnet.keys")
      M = std::make_shared<ResNet>();
    else
      M = std::make_shared<Odd>();
    std::vector<KeyLine> Got;
    for (const auto &[Name, Mod] : M->named_modules())
      Got.push_back(Name + " " + Mod->kind().str());
    CHECK(Got == goldenKeys(File, "module"));
  }
}

TEST_CASE("named_parameters, named_buffers and state_dict match PyTorch",
          "[nn]") {
  ResNet R;
  Odd O;
  CHECK(withShapes(R.named_parameters()) ==
        goldenKeys("resnet.keys", "parameter"));
  CHECK(withShapes(R.named_buffers()) == goldenKeys("resnet.keys", "buffer"));
  CHECK(withShapes(R.state_dict()) == goldenKeys("resnet.keys", "state"));
  CHECK(withShapes(O.named_parameters()) ==
        goldenKeys("odd.keys", "parameter"));
  CHECK(withShapes(O.named_buffers()) == goldenKeys("odd.keys", "buffer"));
  CHECK(withShapes(O.state_dict()) == goldenKeys("odd.keys", "state"));
}

TEST_CASE("nested names are qualified", "[nn]") {
  ResNet R;
  std::vector<std::string> Keys = names(R.state_dict());
  CHECK(std::count(Keys.begin(), Keys.end(), "layer1.0.bn1.running_mean") == 1);
  CHECK(std::count(Keys.begin(), Keys.end(),
                   "layer2.0.downsample.1.num_batches_tracked") == 1);
  Module *Block = R.child("layer1")->child("0");
  REQUIRE(Block);
  CHECK(Block->kind() == "BasicBlock");
  CHECK(names(Block->state_dict()).front() == "conv1.weight");
}

TEST_CASE("state_dict entries share storage with the module", "[nn]") {
  Odd O;
  int Found = 0;
  for (const auto &[Name, T] : O.state_dict())
    if (Name == "a") {
      ++Found;
      CHECK(T.rawData() == O.a.rawData());
    }
  CHECK(Found == 1);
}

//===----------------------------------------------------------------------===//
// load_state_dict
//===----------------------------------------------------------------------===//

TEST_CASE("load_state_dict updates the registered handles", "[nn]") {
  Net N;
  Tensor W = N.conv1->weight;
  REQUIRE(allEqual(W, 0.5));
  std::map<std::string, Tensor> S = netState(2.0f);
  S["conv1.weight"].setFromDouble(7, -3.25);
  REQUIRE(loadError(N, S) == "");
  CHECK(W.getAsDouble(7) == -3.25);
  CHECK(W.getAsDouble(0) == 2.0);
  CHECK(allEqual(N.conv1->bias, 2.0));
  CHECK(allEqual(N.fc->weight, 2.0));
  // The values are copied, not aliased.
  S["fc.bias"].setFromDouble(0, 9.0);
  CHECK(N.fc->bias.getAsDouble(0) == 2.0);
}

TEST_CASE("load_state_dict reports missing keys", "[nn]") {
  Net N;
  std::map<std::string, Tensor> S = netState(2.0f);
  S.erase("fc.bias");
  S.erase("conv1.bias");
  CHECK(loadError(N, S) == "error(s) in loading state_dict for Net: missing "
                           "keys: 'conv1.bias', 'fc.bias'");
  CHECK(allEqual(N.conv1->weight, 0.5));
}

TEST_CASE("load_state_dict reports unexpected keys", "[nn]") {
  Net N;
  std::map<std::string, Tensor> S = netState(2.0f);
  S["fc.b"] = filled({2}, 1);
  S["extra"] = filled({1}, 1);
  CHECK(loadError(N, S) == "error(s) in loading state_dict for Net: "
                           "unexpected keys: 'extra', 'fc.b'");
  CHECK(allEqual(N.fc->weight, 0.5));
}

TEST_CASE("load_state_dict reports size mismatches", "[nn]") {
  Net N;
  std::map<std::string, Tensor> S = netState(2.0f);
  S["conv1.weight"] = filled({40, 1, 3, 3}, 1);
  std::string Expected =
      "error(s) in loading state_dict for Net: size mismatch for "
      "conv1.weight: copying a param with shape [40,1,3,3] from checkpoint, "
      "the shape in current model is [40,1,5,5]";
  CHECK(loadError(N, S) == Expected);
  // Strict only concerns the key sets.
  CHECK(loadError(N, S, /*Strict=*/false) == Expected);
  CHECK(allEqual(N.conv1->bias, 0.5));
  // A tensor without data has no shape that fits.
  S = netState(2.0f);
  S["fc.bias"] = Tensor();
  CHECK_THAT(loadError(N, S), Contains("size mismatch for fc.bias"));
}

TEST_CASE("load_state_dict reports every problem at once", "[nn]") {
  Net N;
  std::map<std::string, Tensor> S = netState(2.0f);
  S.erase("fc.bias");
  S["fc.b"] = filled({2}, 1);
  S["conv1.weight"] = filled({40, 1, 3, 3}, 1);
  S["fc.weight"] = filled({40, 2}, 1);
  CHECK(loadError(N, S) ==
        "error(s) in loading state_dict for Net: missing keys: 'fc.bias'; "
        "unexpected keys: 'fc.b'; size mismatch for conv1.weight: copying a "
        "param with shape [40,1,3,3] from checkpoint, the shape in current "
        "model is [40,1,5,5]; size mismatch for fc.weight: copying a param "
        "with shape [40,2] from checkpoint, the shape in current model is "
        "[2,40]");
  // Nothing was copied, not even the entries that fit.
  CHECK(allEqual(N.conv1->bias, 0.5));
}

TEST_CASE("load_state_dict with Strict=false ignores key set differences",
          "[nn]") {
  Net N;
  std::map<std::string, Tensor> S = netState(2.0f);
  S.erase("fc.bias");
  S["fc.b"] = filled({2}, 1);
  REQUIRE(loadError(N, S, /*Strict=*/false) == "");
  CHECK(allEqual(N.conv1->weight, 2.0));
  CHECK(allEqual(N.fc->bias, 0.5));
}

TEST_CASE("num_batches_tracked may be missing", "[nn]") {
  Module M("M");
  auto BN = M.register_module("bn", std::make_shared<BatchNorm2d>(2));
  BN->num_batches_tracked.setFromDouble(0, 4);
  std::map<std::string, Tensor> S = {{"bn.weight", filled({2}, 3)},
                                     {"bn.bias", filled({2}, 3)},
                                     {"bn.running_mean", filled({2}, 3)},
                                     {"bn.running_var", filled({2}, 3)}};
  REQUIRE(loadError(M, S) == "");
  CHECK(allEqual(BN->running_var, 3.0));
  CHECK(BN->num_batches_tracked.getAsDouble(0) == 4);
  // Other buffers may not.
  S.erase("bn.running_var");
  CHECK_THAT(loadError(M, S), Contains("missing keys: 'bn.running_var'"));
}

TEST_CASE("load_state_dict converts dtypes by value", "[nn]") {
  Module M("M");
  Tensor Count = M.register_buffer("count", Tensor(DType::S64, {}));
  Tensor W = M.register_parameter("w", filled({3}, 0));
  Tensor Small = M.register_buffer("small", Tensor(DType::S8, {2}));

  std::map<std::string, Tensor> S;
  S["count"] = Tensor::fromValues<int32_t>(DType::S32, {}, {7});
  S["w"] = Tensor::fromValues<int64_t>(DType::S64, {3}, {-1, 0, 5});
  // Floats truncate toward zero, as PyTorch's copy_.
  S["small"] = Tensor::fromFloats({2}, {-2.75f, 100.5f});
  REQUIRE(loadError(M, S) == "");
  CHECK(Count.getAsDouble(0) == 7);
  CHECK(W.getAsDouble(0) == -1);
  CHECK(W.getAsDouble(2) == 5);
  CHECK(Small.getAsDouble(0) == -2);
  CHECK(Small.getAsDouble(1) == 100);

  S["small"] = Tensor::fromFloats({2}, {1.0f, 128.0f});
  CHECK(loadError(M, S) ==
        "error(s) in loading state_dict for M: value out of range for "
        "small: element 1 of the f32 checkpoint tensor does not fit in s8");
  CHECK(Small.getAsDouble(0) == -2);
}

TEST_CASE("load_state_dict rejects quantization mismatches", "[nn]") {
  Module M("M");
  Tensor Q(DType::S8, {2});
  Q.setQuant(QuantParams::perTensor(0.5, 3));
  Tensor H = M.register_buffer("q", Q);

  Tensor Plain = Tensor::fromValues<int>(DType::S8, {2}, {1, 2});
  CHECK(loadError(M, {{"q", Plain}}) ==
        "error(s) in loading state_dict for M: quantization mismatch for q: "
        "copying a param of type s8 from checkpoint, the type in current "
        "model is s8 per-tensor (scale 0.5, zero_point 3)");

  // Same parameters but another dtype: the integers would change meaning.
  Tensor U(DType::U8, {2});
  U.setQuant(QuantParams::perTensor(0.5, 3));
  CHECK_THAT(loadError(M, {{"q", U}}), Contains("quantization mismatch"));

  Tensor Same = Plain.clone();
  Same.setQuant(QuantParams::perTensor(0.5, 3));
  REQUIRE(loadError(M, {{"q", Same}}) == "");
  CHECK(H.getAsDouble(1) == 2);
}

//===----------------------------------------------------------------------===//
// load_safetensors
//===----------------------------------------------------------------------===//

TEST_CASE("load_safetensors prefixes errors with the path", "[nn]") {
  llvm::SmallString<128> Path;
  REQUIRE_FALSE(
      llvm::sys::fs::createTemporaryFile("qfx-nn", "safetensors", Path));
  SafetensorsFile F;
  F.Tensors = netState(1.5f);
  F.Tensors.erase("fc.bias");
  requireOk(writeSafetensors(Path, F));

  Net N;
  CHECK(errorToString(N.load_safetensors(Path)) ==
        (Path + ": error(s) in loading state_dict for Net: missing keys: "
                "'fc.bias'")
            .str());
  requireOk(N.load_safetensors(Path, /*Strict=*/false));
  CHECK(allEqual(N.conv1->weight, 1.5));
  llvm::sys::fs::remove(Path);

  CHECK_THAT(errorToString(N.load_safetensors(Path)),
             StartsWith(Path.str().str() + ": "));
}

//===----------------------------------------------------------------------===//
// Modes, forward, calls, info
//===----------------------------------------------------------------------===//

TEST_CASE("train and eval apply to the whole tree", "[nn]") {
  ResNet R;
  auto AllTraining = [&](bool On) {
    for (const auto &KV : R.named_modules())
      if (KV.second->is_training() != On)
        return false;
    return true;
  };
  CHECK(AllTraining(true));
  R.eval();
  CHECK(AllTraining(false));
  R.train();
  CHECK(AllTraining(true));
  R.child("layer1")->train(false);
  CHECK(R.is_training());
  CHECK_FALSE(R.child("layer1")->child("0")->child("bn1")->is_training());
  CHECK(R.child("layer2")->child("0")->is_training());
}

namespace {
/// Returns its input.
class Pass : public Module {
public:
  Pass() : Module("Pass") {}
  Value forward(Value X) override { return X; }
};
/// Returns its second input.
class Second : public Module {
public:
  Second() : Module("Second") {}
  Value forwardMany(const std::vector<Value> &In) override { return In.at(1); }
};
} // namespace

TEST_CASE("calls reach forward or forwardMany", "[nn]") {
  Tensor A = filled({2}, 1), B = filled({3}, 2);
  Pass P;
  CHECK(P(A).tensor().rawData() == A.rawData());
  CHECK(P.call({B}).tensor().rawData() == B.rawData());
  CHECK_THROWS_WITH(P(A, B), "Pass: forward takes 1 input, got 2 (override "
                             "forwardMany to take several)");
  Second S;
  CHECK(S(A, B).tensor().rawData() == B.rawData());

  Module Plain("Custom");
  CHECK_THROWS_AS(Plain(A), nn::Error);
  CHECK_THROWS_WITH(Plain(A), "Custom: forward(x) is not implemented");
}

TEST_CASE("info describes the module with shared tensors", "[nn]") {
  Odd O;
  O.setAttr("scale", Argument::real(2.0));
  ModuleInfo I = O.info();
  CHECK(I.kind() == "Odd");
  REQUIRE(I.attr("scale"));
  CHECK(I.attr("scale")->getFloat() == 2.0);
  CHECK(I.children().empty());
  // Parameters first, as in state_dict.
  std::vector<std::string> Names;
  for (const NamedTensor &T : I.tensors())
    Names.push_back(T.Name + (T.IsBuffer ? "/buffer" : "/param"));
  CHECK(Names ==
        std::vector<std::string>{"a/param", "d/param", "b/buffer", "c/buffer"});
  REQUIRE(I.tensor("a"));
  CHECK(I.tensor("a")->rawData() == O.a.rawData());
}

TEST_CASE("manual_seed makes initialization deterministic", "[nn]") {
  manual_seed(42);
  Tensor A = uniformInit({1000}, 0.25);
  manual_seed(42);
  Tensor B = uniformInit({1000}, 0.25);
  Tensor C = uniformInit({1000}, 0.25);
  CHECK(A.identical(B));
  CHECK_FALSE(A.identical(C));
  double Lo = 1, Hi = -1;
  for (int64_t I = 0; I < A.numElements(); ++I) {
    Lo = std::min(Lo, A.getAsDouble(I));
    Hi = std::max(Hi, A.getAsDouble(I));
  }
  CHECK(Lo >= -0.25);
  CHECK(Hi <= 0.25);
  // The values spread over the range.
  CHECK(Lo < -0.2);
  CHECK(Hi > 0.2);

  manual_seed(7);
  Linear L1(4, 3);
  manual_seed(7);
  Linear L2(4, 3);
  CHECK(L1.weight.identical(L2.weight));
  CHECK(L1.bias.identical(L2.bias));
}
