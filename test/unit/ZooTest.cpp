//===- ZooTest.cpp - Net, ResNet-18, MobileNetV2 against PyTorch ----------===//
//
// Golden files come from test/data/make_zoo_golden.py. The real weights are
// too large to commit, so both sides fill every state_dict tensor from the
// same integer hash (hashFill here, hash_fill there).
//
//===----------------------------------------------------------------------===//

#include "qfx/Models/Zoo.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"
#include "qfx/Trace/SymbolicTrace.h"

#include "llvm/ADT/StringExtras.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

using namespace qfx;
using namespace qfx::models;

namespace {

const char *const ModelNames[] = {"net", "resnet18", "mobilenet_v2",
                                  "mobilenet_v3_small", "mobilenet_v3_cnn"};

std::string dataPath(const std::string &File) {
  return std::string(QFX_TEST_DATA_DIR) + "/zoo/" + File;
}

std::vector<std::string> readLines(const std::string &File) {
  std::ifstream In(dataPath(File));
  REQUIRE(In.good());
  std::vector<std::string> Lines;
  for (std::string L; std::getline(In, L);)
    Lines.push_back(L);
  return Lines;
}

Tensor readGolden(const std::string &File) {
  auto T = readNpy(dataPath(File));
  if (!T)
    FAIL(errorToString(T.takeError()));
  return std::move(*T);
}

std::shared_ptr<nn::Module> create(llvm::StringRef Name) {
  for (const ZooEntry &E : zoo())
    if (E.Name == Name)
      return E.Create();
  FAIL("no zoo entry " << Name.str());
  return nullptr;
}

/// The deterministic value set of the K-th state_dict entry; must stay in
/// step with make_zoo_golden.py's hash_fill (same float64 expressions).
Tensor hashFill(size_t K, llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape) {
  if (Name.endswith("num_batches_tracked"))
    return Tensor(DType::S64, Shape);
  Tensor T(DType::F32, Shape);
  int64_t N = T.numElements();
  double Scale = 0.1;
  if (Shape.size() >= 2)
    Scale = std::sqrt(6.0 / double(N / Shape[0]));
  bool Positive = Shape.size() < 2 &&
                  (Name.endswith("running_var") || Name.endswith("weight"));
  float *Data = T.data<float>();
  for (int64_t I = 0; I < N; ++I) {
    uint64_t H =
        (uint64_t(I) * 2654435761ull + uint64_t(K) * 40503ull + 12345ull) &
        0xFFFFFFFFull;
    double U = double(H) / 4294967296.0;
    Data[I] = static_cast<float>(Positive ? 0.5 + U : (2.0 * U - 1.0) * Scale);
  }
  return T;
}

/// Loads hash-filled values into every state_dict entry of \p M.
void loadHashWeights(nn::Module &M) {
  std::map<std::string, Tensor> State;
  size_t K = 0;
  for (const auto &KV : M.state_dict())
    State[KV.first] = hashFill(K++, KV.first, KV.second.shape());
  if (llvm::Error E = M.load_state_dict(State))
    FAIL(errorToString(std::move(E)));
}

/// Compares line lists, reporting the first difference rather than dumping
/// hundreds of lines.
void checkLines(const std::vector<std::string> &Actual,
                const std::vector<std::string> &Expected) {
  size_t N = std::min(Actual.size(), Expected.size()), I = 0;
  while (I < N && Actual[I] == Expected[I])
    ++I;
  INFO("first difference at line " << I + 1);
  CHECK((I < Actual.size() ? Actual[I] : "<end>") ==
        (I < Expected.size() ? Expected[I] : "<end>"));
}

std::string joinShape(llvm::ArrayRef<int64_t> Shape) {
  std::vector<std::string> Dims;
  for (int64_t D : Shape)
    Dims.push_back(std::to_string(D));
  return llvm::join(Dims, ",");
}

/// max |A - B| / max |B|: one number per output, robust to tiny elements.
double relError(const Tensor &A, const Tensor &B) {
  REQUIRE(A.shape() == B.shape());
  double MaxDiff = 0, MaxRef = 0;
  for (int64_t I = 0; I < B.numElements(); ++I) {
    MaxDiff = std::max(
        MaxDiff, std::fabs(A.data<float>()[I] - double(B.data<float>()[I])));
    MaxRef = std::max(MaxRef, std::fabs(double(B.data<float>()[I])));
  }
  return MaxDiff / MaxRef;
}

/// Restores the kernel mode even when a FAIL leaves the test case early.
struct KernelModeGuard {
  KernelMode Saved = kernelMode();
  ~KernelModeGuard() { setKernelMode(Saved); }
};

bool sameBits(const Tensor &A, const Tensor &B) {
  return A.shape() == B.shape() && A.dtype() == B.dtype() &&
         std::memcmp(A.rawData(), B.rawData(), A.byteSize()) == 0;
}

std::unique_ptr<GraphModule> traceOrFail(nn::Module &M,
                                         llvm::ArrayRef<int64_t> Shape) {
  auto GM = symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, Shape)});
  if (!GM)
    FAIL(errorToString(GM.takeError()));
  return std::move(*GM);
}

/// One "name op target inputs" line per node, as make_zoo_golden.py writes
/// torch.fx's graph.
std::vector<std::string> graphLines(const GraphModule &GM) {
  std::vector<std::string> Lines;
  for (const Node &N : GM.graph()) {
    std::vector<std::string> Inputs;
    for (const Argument &A : N.args())
      A.forEachNode([&](Node *In) { Inputs.push_back(In->name().str()); });
    Lines.push_back(N.name().str() + " " + opcodeName(N.op()).str() + " " +
                    N.target().str() + " " +
                    (Inputs.empty() ? "-" : llvm::join(Inputs, ",")));
  }
  return Lines;
}

} // namespace

TEST_CASE("the zoo lists its models with example input shapes", "[zoo]") {
  const std::vector<ZooEntry> &Z = zoo();
  REQUIRE(Z.size() == 6);
  for (size_t I = 0; I < std::size(ModelNames); ++I)
    CHECK(Z[I].Name == ModelNames[I]);
  CHECK(Z[0].InputShape == std::vector<int64_t>{1, 1, 28, 28});
  CHECK(Z[1].InputShape == std::vector<int64_t>{1, 3, 224, 224});
  CHECK(Z[2].InputShape == std::vector<int64_t>{1, 3, 224, 224});
  CHECK(Z[3].InputShape == std::vector<int64_t>{1, 3, 224, 224});
  CHECK(Z[4].InputShape == std::vector<int64_t>{1, 1, 28, 28});
  // The ViT's goldens are TransformerTest's (make_transformer_golden.py).
  CHECK(Z[5].Name == "vit_fashion");
  CHECK(Z[5].InputShape == std::vector<int64_t>{1, 1, 28, 28});
  auto V3 = mobilenet_v3_small(5);
  CHECK(V3->kind() == "MobileNetV3");
  CHECK(V3->child("classifier")->child("3")->tensor("weight")->shape() ==
        llvm::ArrayRef<int64_t>{5, 1024});
  CHECK(create("net")->kind() == "Net");
  auto ResNet = resnet18(10);
  CHECK(ResNet->kind() == "ResNet");
  CHECK(ResNet->child("fc")->tensor("weight")->shape() ==
        llvm::ArrayRef<int64_t>{10, 512});
  auto MobileNet = mobilenet_v2(7);
  CHECK(MobileNet->kind() == "MobileNetV2");
  nn::Module *Classifier = MobileNet->child("classifier");
  CHECK(Classifier->child("1")->tensor("bias")->shape() ==
        llvm::ArrayRef<int64_t>{7});
  // Eval-mode outputs cannot see the dropout rate; torchvision uses 0.2.
  CHECK(Classifier->child("0")->kind() == "Dropout");
  CHECK(Classifier->child("0")->attrs().at("p").getFloat() == 0.2);
}

TEST_CASE("state_dicts and module trees equal PyTorch's", "[zoo]") {
  for (const char *Name : ModelNames) {
    INFO(Name);
    auto M = create(Name);
    std::vector<std::string> Keys;
    for (const auto &KV : M->state_dict())
      // Scalars (num_batches_tracked) have no shape after the name.
      Keys.push_back(
          llvm::StringRef(KV.first + " " + joinShape(KV.second.shape()))
              .rtrim()
              .str());
    checkLines(Keys, readLines(std::string(Name) + ".state_dict.txt"));

    std::vector<std::string> Mods;
    for (const auto &KV : M->named_modules())
      Mods.push_back((KV.first.empty() ? "-" : KV.first) + " " +
                     KV.second->kind().str());
    checkLines(Mods, readLines(std::string(Name) + ".modules.txt"));
  }
}

TEST_CASE("eager forward with hash weights matches PyTorch", "[zoo]") {
  KernelModeGuard Guard;
  for (const char *Name : ModelNames) {
    auto M = create(Name);
    M->eval();
    loadHashWeights(*M);
    Tensor X = readGolden(std::string(Name) + "_input.npy");
    Tensor Expected = readGolden(std::string(Name) + "_output.npy");
    for (KernelMode Mode : {KernelMode::Reference, KernelMode::OneDNN}) {
      setKernelMode(Mode);
      double Err = relError((*M)(X).tensor(), Expected);
      INFO(Name << (Mode == KernelMode::OneDNN ? " onednn" : " reference")
                << ": max relative error " << Err);
      CHECK(Err < 1e-4);
    }
  }
}

TEST_CASE("the Net loads a state_dict PyTorch saved", "[zoo]") {
  Net M;
  M.eval();
  if (llvm::Error E = M.load_safetensors(dataPath("net.safetensors")))
    FAIL(errorToString(std::move(E)));
  Tensor X = readGolden("net_input.npy");
  double Err = relError(M(X).tensor(), readGolden("net_trained_output.npy"));
  INFO("max relative error " << Err);
  CHECK(Err < 1e-5);
}

TEST_CASE("traced graphs equal torch.fx's node for node", "[zoo][trace]") {
  for (const ZooEntry &E : zoo()) {
    INFO(E.Name);
    // torch.fx records the ViT's x.shape[0] as getattr / getitem nodes;
    // qfx's expand reads the batch from x (batch_like) instead.
    if (E.Name == "vit_fashion")
      continue;
    auto M = E.Create();
    M->eval();
    std::vector<int64_t> Shape = E.InputShape;
    if (Shape[2] > 64)
      Shape = {1, 3, 64, 64};
    auto GM = traceOrFail(*M, Shape);
    if (llvm::Error Err = verify(*GM))
      FAIL(errorToString(std::move(Err)));
    checkLines(graphLines(*GM), readLines(E.Name + ".fx.txt"));
    CHECK(GM->root().kind() == M->kind());
  }
}

TEST_CASE("ResNet-18's trace reads like torch.fx's", "[zoo][trace]") {
  auto M = resnet18();
  M->eval();
  auto GM = traceOrFail(*M, {1, 3, 64, 64});
  std::string Text = printToString(*GM);
  CHECK(Text.find("%layer1_0_conv1 : f32[1,64,16,16] = "
                  "call_module[layer1.0.conv1](%maxpool)") !=
        std::string::npos);
  CHECK(Text.find("%add : f32[1,64,16,16] = "
                  "call_function[add](%layer1_0_bn2, %maxpool)") !=
        std::string::npos);
  CHECK(Text.find("%flatten : f32[1,512] = call_function[flatten](%avgpool, "
                  "1)") != std::string::npos);
  std::map<std::string, int> Calls;
  for (const Node &N : GM->graph())
    if (N.op() == OpCode::CallModule)
      ++Calls[N.target().str()];
  // The stem's relu runs once; each block calls its own relu twice.
  CHECK(Calls["relu"] == 1);
  CHECK(Calls["layer1.0.relu"] == 2);
  CHECK(Calls["layer4.1.relu"] == 2);
  CHECK(GM->lookupModule("layer2.0")->kind() == "BasicBlock");
  CHECK(GM->lookupModule("layer2.0.downsample")->kind() == "Sequential");
}

TEST_CASE("interpreting the traced zoo equals eager forward bitwise",
          "[zoo][runtime]") {
  KernelModeGuard Guard;
  for (KernelMode Mode : {KernelMode::Reference, KernelMode::OneDNN}) {
    setKernelMode(Mode);
    for (const ZooEntry &E : zoo()) {
      INFO(E.Name << (Mode == KernelMode::OneDNN ? " onednn" : " reference"));
      auto M = E.Create();
      M->eval();
      loadHashWeights(*M);
      Tensor X = readGolden(E.Name + "_input.npy");
      auto GM = traceOrFail(*M, X.shape());
      Tensor Eager = (*M)(X).tensor();
      auto Out = interpret(*GM, {X});
      if (!Out)
        FAIL(errorToString(Out.takeError()));
      CHECK(sameBits(*Out, Eager));
    }
  }
}
