//===- PrepareTest.cpp - prepare_fx, calibration, save and resume ---------===//
//
// Observer counts of the zoo models follow PyTorch 1.13's prepare_fx with
// get_default_qconfig_mapping("x86") (the seed Net: 7 observer calls of 4
// observers); calibration is checked against observers fed directly.
//
//===----------------------------------------------------------------------===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Serialization.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Models/Zoo.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/BackendConfig.h"
#include "qfx/Quant/Observer.h"
#include "qfx/Quant/ObserverModule.h"
#include "qfx/Quant/Quantize.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Runtime/ModuleRunner.h"
#include "qfx/Runtime/Op.h"
#include "qfx/Support/Error.h"
#include "qfx/Trace/SymbolicTrace.h"
#include "qfx/Transforms/Fuse.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace qfx;

namespace {

template <typename T> T takeOk(llvm::Expected<T> V) {
  if (!V)
    FAIL(errorToString(V.takeError()));
  return std::move(*V);
}

/// The message of \p E, failing the test if it is success.
std::string failure(llvm::Error E) {
  if (!E)
    FAIL("expected an error");
  return errorToString(std::move(E));
}

void requireSuccess(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

Tensor uniformTensor(std::mt19937 &Rng, llvm::ArrayRef<int64_t> S) {
  std::uniform_real_distribution<float> D(-1.0f, 1.0f);
  Tensor T(DType::F32, S);
  for (int64_t I = 0; I < T.numElements(); ++I)
    T.data<float>()[I] = D(Rng);
  return T;
}

QConfigMapping globalMapping(llvm::StringRef Preset) {
  QConfigMapping M;
  M.setGlobal(takeOk(QConfig::preset(Preset)));
  return M;
}

bool isActivationObserverName(llvm::StringRef Name) {
  return Name.startswith("activation_post_process_");
}

/// Names of the root's activation observer modules, in order.
std::vector<std::string> activationObservers(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const auto &[Name, Child] : GM.root().children())
    if (isActivationObserverName(Name))
      R.push_back(Name);
  return R;
}

/// call_module nodes that run an activation observer.
std::vector<const Node *> observerCalls(const GraphModule &GM) {
  std::vector<const Node *> R;
  for (const Node *N : GM.graph().nodes())
    if (N->op() == OpCode::CallModule && isActivationObserverName(N->target()))
      R.push_back(N);
  return R;
}

/// Weighted modules (by the backend table) and their weight observers.
std::vector<std::string> weightedModules(const GraphModule &GM) {
  std::vector<std::string> R;
  for (const Node *N : GM.graph().nodes())
    if (N->op() == OpCode::CallModule &&
        classify(*N, GM).Class == NodeClass::Weighted)
      R.push_back(N->target().str());
  return R;
}

bool sameTensors(const ModuleInfo &A, const ModuleInfo &B) {
  if (A.tensors().size() != B.tensors().size())
    return false;
  for (size_t I = 0; I < A.tensors().size(); ++I)
    if (A.tensors()[I].Name != B.tensors()[I].Name ||
        !A.tensors()[I].Value.identical(B.tensors()[I].Value))
      return false;
  return true;
}

/// A deep copy of every tensor of module \p Path.
std::vector<Tensor> snapshot(const GraphModule &GM, llvm::StringRef Path) {
  std::vector<Tensor> R;
  for (const NamedTensor &T : GM.lookupModule(Path)->tensors())
    R.push_back(T.Value.clone());
  return R;
}

bool unchanged(const GraphModule &GM, llvm::StringRef Path,
               const std::vector<Tensor> &Before) {
  const auto &Now = GM.lookupModule(Path)->tensors();
  if (Now.size() != Before.size())
    return false;
  for (size_t I = 0; I < Now.size(); ++I)
    if (!Now[I].Value.identical(Before[I]))
      return false;
  return true;
}

ObservedModule prepareNet(models::Net &Net, llvm::StringRef Preset = "x86",
                          PassContext *Ctx = nullptr) {
  return takeOk(
      prepare_fx(Net, globalMapping(Preset),
                 {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})}, Ctx));
}

/// The float graph prepare starts from: traced and fused.
std::unique_ptr<GraphModule> fusedFloat(nn::Module &M,
                                        llvm::ArrayRef<int64_t> Shape) {
  M.eval();
  auto GM =
      takeOk(symbolicTrace(M, {InputSpec::symbolic("x", DType::F32, Shape)}));
  PassContext Ctx;
  requireSuccess(Fuse().run(*GM, Ctx));
  return GM;
}

} // namespace

TEST_CASE("the backend table names kinds and ops the runtime knows",
          "[prepare]") {
  for (const BackendOpEntry &E : backendOpTable()) {
    INFO(E.Op);
    if (E.IsModule)
      CHECK((lookupModuleKind(E.Op) || lookupFusedKind(E.Op)));
    else
      CHECK(lookupOp(E.Op));
  }
  CHECK(lookupBackendOp("Conv2d", true)->Class == NodeClass::Weighted);
  CHECK(lookupBackendOp("Conv2d", false) == nullptr);
  CHECK(lookupBackendOp("tanh", false)->FixedZeroPoint == 128);
  CHECK(lookupBackendOp("softplus", false) == nullptr);
}

TEST_CASE("prepare_fx observes the seed Net as PyTorch does", "[prepare]") {
  models::Net Net;
  PassContext Ctx;
  ObservedModule OM = prepareNet(Net, "x86", &Ctx);
  const GraphModule &GM = OM.graphModule();
  requireSuccess(verify(GM));

  // PyTorch: activation_post_process_0..6, of which 2 and 3-5 alias 1 and 4
  // (max_pool2d and reshape share their input's observer).
  CHECK(activationObservers(GM).size() == 4);
  std::vector<const Node *> Calls = observerCalls(GM);
  REQUIRE(Calls.size() == 7);
  std::map<std::string, int> CallsPerModule;
  for (const Node *N : Calls)
    ++CallsPerModule[N->target().str()];
  CHECK(CallsPerModule ==
        std::map<std::string, int>{{"activation_post_process_0", 1},
                                   {"activation_post_process_1", 2},
                                   {"activation_post_process_2", 3},
                                   {"activation_post_process_3", 1}});
  // The input is observed right after the placeholder.
  const Node *X = GM.graph().placeholders()[0];
  REQUIRE(X->getNextNode());
  CHECK(X->getNextNode()->target() == "activation_post_process_0");
  CHECK(GM.lookupModule("activation_post_process_0")->kind() ==
        "HistogramObserver");

  std::vector<std::string> Weighted = weightedModules(GM);
  CHECK(Weighted == std::vector<std::string>{"conv1", "conv2", "fc"});
  for (const std::string &W : Weighted) {
    const ModuleInfo *Obs = GM.lookupModule(W + ".weight_post_process");
    REQUIRE(Obs);
    CHECK(Obs->kind() == "PerChannelMinMaxObserver");
    // Weights are constant, so prepare observes them right away.
    auto O = takeOk(loadObserver(*Obs));
    CHECK(O->hasObserved());
  }
}

TEST_CASE("prepare_fx on resnet18 gives a verified observed graph",
          "[prepare]") {
  std::shared_ptr<nn::Module> RN = models::resnet18();
  ObservedModule OM = takeOk(
      prepare_fx(*RN, globalMapping("x86"),
                 {InputSpec::symbolic("x", DType::F32, {1, 3, 32, 32})}));
  GraphModule &GM = OM.graphModule();
  requireSuccess(verify(GM));

  // Every observer module is called, every call has a module, and shared
  // observers are exactly the shares-qparams ops' (maxpool, avgpool,
  // flatten): one call more than modules for each.
  std::vector<std::string> Modules = activationObservers(GM);
  std::vector<const Node *> Calls = observerCalls(GM);
  std::set<std::string> Called;
  for (const Node *N : Calls)
    Called.insert(N->target().str());
  CHECK(Called == std::set<std::string>(Modules.begin(), Modules.end()));
  CHECK(Calls.size() == Modules.size() + 3);
  // 20 weighted modules (stem, 16 block convs, 3 downsamples) plus fc, one
  // output observer each, and the input's.
  std::vector<std::string> Weighted = weightedModules(GM);
  CHECK(Weighted.size() == 21);
  CHECK(Modules.size() == Weighted.size() + 1);
  for (const std::string &W : Weighted)
    CHECK(GM.lookupModule(W + ".weight_post_process"));

  // Observers pass values through: the observed model computes the float
  // model's outputs.
  std::mt19937 Rng(7);
  Tensor In = uniformTensor(Rng, {2, 3, 32, 32});
  auto Float = fusedFloat(*RN, {1, 3, 32, 32});
  Tensor Want = takeOk(interpret(*Float, {In}));
  std::vector<Tensor> Got = takeOk(OM({In}));
  REQUIRE(Got.size() == 1);
  CHECK(Got[0].identical(Want));
}

TEST_CASE("calibration updates observers as feeding them directly does",
          "[prepare]") {
  models::Net Net;
  ObservedModule OM = prepareNet(Net);
  GraphModule &GM = OM.graphModule();
  std::mt19937 Rng(1);
  Tensor Data = uniformTensor(Rng, {6, 1, 28, 28});

  std::vector<std::vector<Tensor>> Before;
  for (const std::string &Name : activationObservers(GM))
    Before.push_back(snapshot(GM, Name));
  requireSuccess(OM.calibrate(Data, 2));
  std::vector<std::string> Names = activationObservers(GM);
  for (size_t I = 0; I < Names.size(); ++I) {
    INFO(Names[I]);
    CHECK_FALSE(unchanged(GM, Names[I], Before[I]));
  }

  // Replay: run the fused float graph batch by batch and feed each observed
  // value to a fresh observer; the states must be identical.
  auto Float = fusedFloat(Net, {1, 1, 28, 28});
  // (observed node, observer module) in call order; prepare keeps the
  // names of the nodes it observes.
  std::vector<std::pair<std::string, std::string>> Feeds;
  for (const Node *N : observerCalls(GM))
    Feeds.emplace_back(N->arg(0).getNode()->name().str(), N->target().str());
  std::map<std::string, std::unique_ptr<Observer>> Direct;
  for (const std::string &Name : Names)
    Direct[Name] = Observer::create(
        takeOk(ObserverSpec::fromModule(*GM.lookupModule(Name))));
  Interpreter I(*Float);
  I.setAfterNodeHook([&](const Node &N, const Tensor &T) {
    for (const auto &[Value, Module] : Feeds)
      if (Value == N.name())
        Direct[Module]->observe(T);
  });
  // The input observer sees the placeholder, which the hook does not.
  for (int64_t B = 0; B < 3; ++B) {
    Tensor Batch(DType::F32, {2, 1, 28, 28});
    std::memcpy(Batch.rawData(),
                static_cast<const char *>(Data.rawData()) +
                    B * Batch.byteSize(),
                Batch.byteSize());
    Direct["activation_post_process_0"]->observe(Batch);
    takeOk(I.run({Batch}));
  }
  for (const std::string &Name : Names) {
    INFO(Name);
    ModuleInfo Want(GM.lookupModule(Name)->kind().str());
    Direct[Name]->toModule(Want);
    CHECK(sameTensors(*GM.lookupModule(Name), Want));
    auto Got = takeOk(
        takeOk(loadObserver(*GM.lookupModule(Name)))->calculateQParams());
    CHECK(Got == takeOk(Direct[Name]->calculateQParams()));
  }
}

TEST_CASE("an observed graph saves, reloads and resumes calibration",
          "[prepare]") {
  models::Net Net;
  ObservedModule OM = prepareNet(Net);
  std::mt19937 Rng(3);
  Tensor A = uniformTensor(Rng, {2, 1, 28, 28});
  Tensor B = uniformTensor(Rng, {3, 1, 28, 28});
  requireSuccess(OM.calibrate(A, 2));

  llvm::SmallString<128> Path;
  REQUIRE_FALSE(llvm::sys::fs::createTemporaryFile("observed", "json", Path));
  requireSuccess(saveGraphModule(OM.graphModule(), Path));
  auto Loaded = takeOk(loadGraphModule(Path));
  llvm::sys::fs::remove(Path);
  ObservedModule Resumed(std::move(Loaded));

  std::vector<std::string> Names = activationObservers(OM.graphModule());
  REQUIRE(Names == activationObservers(Resumed.graphModule()));
  auto SameState = [&] {
    for (const std::string &Name : Names) {
      INFO(Name);
      CHECK(sameTensors(*OM.graphModule().lookupModule(Name),
                        *Resumed.graphModule().lookupModule(Name)));
    }
    CHECK(sameTensors(
        *OM.graphModule().lookupModule("fc.weight_post_process"),
        *Resumed.graphModule().lookupModule("fc.weight_post_process")));
  };
  SameState();
  std::vector<Tensor> Before =
      snapshot(Resumed.graphModule(), "activation_post_process_3");
  requireSuccess(OM.calibrate(B, 2));
  requireSuccess(Resumed.calibrate(B, 2));
  CHECK_FALSE(
      unchanged(Resumed.graphModule(), "activation_post_process_3", Before));
  SameState();
}

TEST_CASE("prepare explains every op node", "[prepare]") {
  models::Net Net;
  PassContext Ctx;
  ObservedModule OM = prepareNet(Net, "x86", &Ctx);
  std::map<std::string, std::set<std::string>> ByPass;
  for (const Remark &R : Ctx.Remarks)
    ByPass[R.Pass].insert(R.Node);
  for (const Node *N : OM.graphModule().graph().nodes()) {
    if (N->op() != OpCode::CallModule && N->op() != OpCode::CallFunction &&
        N->op() != OpCode::CallMethod)
      continue;
    if (isActivationObserverName(N->target()))
      continue;
    INFO(N->name().str());
    CHECK(ByPass["qconfig-propagation"].count(N->name().str()));
    CHECK(ByPass["prepare"].count(N->name().str()));
  }
  // The Net's input observer is explained on its consumer.
  bool Found = false;
  for (const Remark &R : Ctx.Remarks)
    Found |= R.Pass == "prepare" && R.Node == "conv1" &&
             R.Message == "observed input x with activation_post_process_0 "
                          "(HistogramObserver)";
  CHECK(Found);
}

TEST_CASE("prepare_qat_fx fake-quantizes activations and weights",
          "[prepare]") {
  models::Net Net;
  ObservedModule OM = takeOk(
      prepare_qat_fx(Net, globalMapping("qat_x86"),
                     {InputSpec::symbolic("x", DType::F32, {1, 1, 28, 28})}));
  GraphModule &GM = OM.graphModule();
  requireSuccess(verify(GM));
  for (const std::string &Name : activationObservers(GM))
    CHECK(GM.lookupModule(Name)->kind() == "FakeQuantize");
  for (const std::string &W : weightedModules(GM)) {
    CHECK(GM.lookupModule(W + ".weight_fake_quant"));
    CHECK_FALSE(GM.lookupModule(W + ".weight_post_process"));
  }

  std::mt19937 Rng(5);
  Tensor In = uniformTensor(Rng, {2, 1, 28, 28});
  auto Float = fusedFloat(Net, {1, 1, 28, 28});
  Tensor Want = takeOk(interpret(*Float, {In}));
  Tensor Got = takeOk(OM({In}))[0];
  // Close to float, but quantized.
  CHECK_FALSE(Got.identical(Want));
  double MaxDiff = 0;
  for (int64_t I = 0; I < Want.numElements(); ++I)
    MaxDiff =
        std::max(MaxDiff, std::fabs(Got.getAsDouble(I) - Want.getAsDouble(I)));
  CHECK(MaxDiff < 0.1);

  // The input's FakeQuantize took its qparams from a moving-average observer
  // that saw the batch.
  const ModuleInfo &FQ = *GM.lookupModule("activation_post_process_0");
  auto Obs = Observer::create(takeOk(ObserverSpec::fromModule(FQ)));
  Obs->observe(In);
  QuantParams QP = takeOk(Obs->calculateQParams());
  CHECK(FQ.tensor("scale")->getAsDouble(0) == static_cast<float>(QP.Scale));
  CHECK(FQ.tensor("zero_point")->getAsDouble(0) == QP.ZeroPoint);

  // With every switch off, the model is the float one.
  for (const std::string &Name : activationObservers(GM))
    for (const char *Switch : {"fake_quant_enabled", "observer_enabled"})
      GM.lookupModule(Name)->tensor(Switch)->setFromDouble(0, 0);
  for (const std::string &W : weightedModules(GM))
    for (const char *Switch : {"fake_quant_enabled", "observer_enabled"})
      GM.lookupModule(W + ".weight_fake_quant")
          ->tensor(Switch)
          ->setFromDouble(0, 0);
  std::vector<Tensor> Before = snapshot(GM, "activation_post_process_1");
  CHECK(takeOk(OM({In}))[0].identical(Want));
  CHECK(unchanged(GM, "activation_post_process_1", Before));
}

TEST_CASE("calibrate rejects unusable arguments", "[prepare]") {
  models::Net Net;
  ObservedModule OM = prepareNet(Net);
  Tensor Data(DType::F32, {2, 1, 28, 28});
  CHECK(failure(OM.calibrate(Data, 0)) ==
        "calibration batch size must be positive, got 0");
  Tensor Wrong(DType::F32, {2, 3, 28, 28});
  CHECK(llvm::StringRef(failure(OM.calibrate(Wrong, 2)))
            .startswith("calibration batch at row 0: input 'x'"));
}

namespace {

/// A graph `x -> Path -> output` over module \p Path of \p GM.
void singleCallGraph(GraphModule &GM, llvm::StringRef Path,
                     llvm::ArrayRef<int64_t> InShape) {
  Graph &G = GM.graph();
  Node *X = G.placeholder(
      "x", TensorType{DType::F32, Shape(InShape.begin(), InShape.end()), {}});
  G.output(G.callModule(Path, {X}));
}

/// PyTorch's weight fake quantization: observe \p W, then fake-quantize it
/// per channel with the float32 qparams FakeQuantize stores.
Tensor fakeQuantizedWeight(const ObserverSpec &Spec, const Tensor &W) {
  auto O = Observer::create(Spec);
  O->observe(W);
  QuantParams QP = takeOk(O->calculateQParams());
  std::vector<double> Scales;
  for (double S : QP.Scales)
    Scales.push_back(static_cast<float>(S));
  return fakeQuantizePerChannel(W, Scales, QP.ZeroPoints, 0, Spec.QuantMin,
                                Spec.QuantMax);
}

ObserverSpec qatWeightSpec() {
  ObserverSpec S = takeOk(QConfig::preset("qat_x86")).Weight;
  REQUIRE(S.FakeQuant);
  return S;
}

} // namespace

TEST_CASE("QAT forward runs weighted modules on fake-quantized weights",
          "[prepare]") {
  std::mt19937 Rng(11);
  GraphModule GM;
  ModuleInfo &FC = GM.addModule("fc", "Linear");
  FC.setAttr("in_features", Argument::integer(3));
  FC.setAttr("out_features", Argument::integer(2));
  Tensor W = uniformTensor(Rng, {2, 3}), B = uniformTensor(Rng, {2});
  FC.setTensor("weight", W);
  FC.setTensor("bias", B);
  initFakeQuantizeModule(FC.addChild("weight_fake_quant", "Module"),
                         qatWeightSpec());
  singleCallGraph(GM, "fc", {1, 3});
  requireSuccess(verify(GM));

  Tensor X = uniformTensor(Rng, {4, 3});
  Tensor Got = takeOk(runObserved(GM, {X}))[0];
  Tensor Want =
      takeOk(runOp("linear", {X, fakeQuantizedWeight(qatWeightSpec(), W), B}));
  CHECK(Got.identical(Want));
  // The float weight is back in place; the fake-quant state was updated.
  CHECK(GM.lookupTensor("fc.weight")->identical(W));
  CHECK(GM.lookupTensor("fc.weight_fake_quant.scale")->numElements() == 2);
}

TEST_CASE("QAT ConvBn2d folds BatchNorm around weight fake quantization",
          "[prepare]") {
  std::mt19937 Rng(13);
  GraphModule GM;
  GM.addModule("cb", "ConvBn2d");
  ModuleInfo &Conv = GM.addModule("cb.0", "Conv2d");
  for (auto [Name, V] :
       {std::make_pair("in_channels", 2), std::make_pair("out_channels", 3)})
    Conv.setAttr(Name, Argument::integer(V));
  Conv.setAttr("kernel_size", Argument::ints({1, 1}));
  Tensor W = uniformTensor(Rng, {3, 2, 1, 1}), Bias = uniformTensor(Rng, {3});
  Conv.setTensor("weight", W);
  Conv.setTensor("bias", Bias);
  ModuleInfo &BN = GM.addModule("cb.1", "BatchNorm2d");
  BN.setAttr("eps", Argument::real(1e-5));
  Tensor Gamma = Tensor::fromFloats({3}, {0.5f, 2.0f, -1.5f});
  Tensor Beta = uniformTensor(Rng, {3}), Mean = uniformTensor(Rng, {3});
  Tensor Var = Tensor::fromFloats({3}, {0.25f, 4.0f, 1.0f});
  BN.setTensor("weight", Gamma);
  BN.setTensor("bias", Beta);
  BN.setTensor("running_mean", Mean, true);
  BN.setTensor("running_var", Var, true);
  initFakeQuantizeModule(
      GM.lookupModule("cb")->addChild("weight_fake_quant", "Module"),
      qatWeightSpec());
  singleCallGraph(GM, "cb", {1, 2, 3, 3});
  requireSuccess(verify(GM));

  Tensor X = uniformTensor(Rng, {1, 2, 3, 3});
  Tensor Got = takeOk(runObserved(GM, {X}))[0];

  // torch.ao.nn.intrinsic.qat.ConvBn2d._forward_approximate (BN in eval):
  // conv with fake_quant(w * sf) and no bias, / sf, + bias, then BN.
  std::vector<float> SF(3);
  for (int C = 0; C < 3; ++C)
    SF[C] = Gamma.data<float>()[C] / std::sqrt(Var.data<float>()[C] + 1e-5f);
  Tensor Scaled = W.clone();
  for (int64_t I = 0; I < Scaled.numElements(); ++I)
    Scaled.data<float>()[I] *= SF[I / 2];
  Tensor Conv0 = takeOk(runOp(
      "conv2d", {X, fakeQuantizedWeight(qatWeightSpec(), Scaled), Operand()}));
  for (int64_t I = 0; I < Conv0.numElements(); ++I) {
    int64_t C = (I / 9) % 3;
    Conv0.data<float>()[I] =
        Conv0.data<float>()[I] / SF[C] + Bias.data<float>()[C];
  }
  Tensor Want = takeOk(runOp("batch_norm", {Conv0, Mean, Var, Gamma, Beta}));
  REQUIRE(Got.numElements() == Want.numElements());
  for (int64_t I = 0; I < Want.numElements(); ++I)
    CHECK(Got.getAsDouble(I) == Approx(Want.getAsDouble(I)).margin(1e-5));
  CHECK(GM.lookupTensor("cb.0.weight")->identical(W));
}

TEST_CASE("prepare remarks say why a node stays float", "[prepare]") {
  auto GM = takeOk(parseGraphModule(R"(graph_module M {
  module fc : Linear {in_features = 4, out_features = 4} {
    param weight : f32[4,4]
  }
  graph {
    %x : f32[1,4] = placeholder[x]
    %softplus : f32[1,4] = call_function[softplus](%x)
    %relu : f32[1,4] = call_function[relu](%softplus)
    %fc : f32[1,4] = call_module[fc](%relu)
    %sigmoid : f32[1,4] = call_function[sigmoid](%fc)
    %output = output[output](%sigmoid)
  }
})",
                                    "remarks.qir"));
  QConfigMapping Mapping = globalMapping("x86");
  Mapping.setModuleName("fc", std::nullopt);
  PassContext Ctx;
  Ctx.QConfigs = std::make_shared<const QConfigMapping>(Mapping);
  PassManager PM;
  requireSuccess(PM.addPipeline("qconfig-propagation,prepare"));
  requireSuccess(PM.run(*GM, Ctx));
  std::vector<std::string> Got;
  for (const Remark &R : Ctx.Remarks)
    if (R.Pass == "prepare")
      Got.push_back(R.Node + ": " + R.Message);
  CHECK(Got == std::vector<std::string>{
                   "softplus: kept float: no int8 implementation for "
                   "'softplus'",
                   "relu: kept float: input softplus is not quantized",
                   "fc: kept float: qconfig none by module_name:fc",
                   "sigmoid: kept float: input fc is not quantized"});
}

TEST_CASE("calibration without images is an error at calibrate", "[prepare]") {
  models::Net Net;
  ObservedModule OM = prepareNet(Net);
  // Zero images: nothing would be observed and only convert would notice.
  CHECK(errorToString(OM.calibrate(Tensor(DType::F32, {0, 1, 28, 28}), 8)) ==
        "no calibration data: the tensor has 0 images along dimension 0");
  std::mt19937 Rng(1);
  Tensor Data = uniformTensor(Rng, {2, 1, 28, 28});
  for (int64_t Batch : {0, -3}) {
    CHECK(errorToString(OM.calibrate(Data, Batch)) ==
          "calibration batch size must be positive, got " +
              std::to_string(Batch));
  }
}
