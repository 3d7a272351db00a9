//===- GraphModuleTest.cpp - Module tree, qualified names and cloning -----===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace qfx;

namespace {

using Names = std::vector<std::string>;

std::string errorText(llvm::Error E) {
  return E ? errorToString(std::move(E)) : std::string();
}

Names childNames(const ModuleInfo &M) {
  Names R;
  for (const auto &C : M.children())
    R.push_back(C.first);
  return R;
}

Names tensorNames(const ModuleInfo &M) {
  Names R;
  for (const NamedTensor &T : M.tensors())
    R.push_back(T.Name);
  return R;
}

Names qualifiedTensorNames(const GraphModule &GM) {
  Names R;
  for (const auto &NT : GM.namedTensors())
    R.push_back(NT.first);
  return R;
}

Names nodeNames(const Graph &G) {
  Names R;
  for (const Node &N : G)
    R.push_back(N.name().str());
  return R;
}

Names userNames(const Node &N) {
  Names R;
  for (const Node *U : N.users())
    R.push_back(U->name().str());
  return R;
}

Names inputNames(const Node &N) {
  Names R;
  for (const Node *In : N.inputs())
    R.push_back(In->name().str());
  return R;
}

} // namespace

TEST_CASE("splitQualifiedName", "[ir][module]") {
  using Split = std::pair<llvm::StringRef, llvm::StringRef>;
  CHECK(splitQualifiedName("a.b.c") == Split("a.b", "c"));
  CHECK(splitQualifiedName("layer1.0.conv1.weight") ==
        Split("layer1.0.conv1", "weight"));
  CHECK(splitQualifiedName("conv1.weight") == Split("conv1", "weight"));
  CHECK(splitQualifiedName("c") == Split("", "c"));
  CHECK(splitQualifiedName("") == Split("", ""));
  CHECK(splitQualifiedName("a.") == Split("a", ""));
}

TEST_CASE("ModuleInfo attributes, tensors and children", "[ir][module]") {
  ModuleInfo M("Conv2d");
  CHECK(M.kind() == "Conv2d");
  CHECK(ModuleInfo().kind() == "Module");
  M.setKind("ConvReLU2d");
  CHECK(M.kind() == "ConvReLU2d");

  SECTION("attributes are sorted by name") {
    M.setAttr("stride", Argument::ints({1, 1}));
    M.setAttr("padding", Argument::ints({0, 0}));
    M.setAttr("bias", Argument::boolean(true));
    REQUIRE(M.attr("stride") != nullptr);
    CHECK(*M.attr("stride") == Argument::ints({1, 1}));
    CHECK(M.attr("dilation") == nullptr);
    Names Keys;
    for (const auto &KV : M.attrs())
      Keys.push_back(KV.first);
    CHECK(Keys == Names{"bias", "padding", "stride"});
    M.setAttr("stride", Argument::ints({2, 2}));
    CHECK(*M.attr("stride") == Argument::ints({2, 2}));
    CHECK(M.attrs().size() == 3);
    CHECK(M.eraseAttr("bias"));
    CHECK_FALSE(M.eraseAttr("bias"));
    CHECK(M.attr("bias") == nullptr);
  }

  SECTION("tensors keep insertion order and role") {
    M.setTensor("weight", Tensor(DType::F32, {4, 1, 3, 3}));
    M.setTensor("bias", Tensor(DType::F32, {4}));
    M.setTensor("running_mean", Tensor(DType::F32, {4}), /*IsBuffer=*/true);
    CHECK(tensorNames(M) == Names{"weight", "bias", "running_mean"});
    CHECK_FALSE(M.tensors()[0].IsBuffer);
    CHECK(M.tensors()[2].IsBuffer);

    // Replacing keeps the position and the parameter/buffer role.
    M.setTensor("weight", Tensor(DType::S8, {4, 1, 3, 3}), /*IsBuffer=*/true);
    CHECK(tensorNames(M) == Names{"weight", "bias", "running_mean"});
    CHECK_FALSE(M.tensors()[0].IsBuffer);
    REQUIRE(M.tensor("weight") != nullptr);
    CHECK(M.tensor("weight")->dtype() == DType::S8);
    M.setTensor("running_mean", Tensor(DType::F32, {4}));
    CHECK(M.tensors()[2].IsBuffer);

    const ModuleInfo &CM = M;
    REQUIRE(CM.tensor("bias") != nullptr);
    CHECK(CM.tensor("bias")->shape() == llvm::ArrayRef<int64_t>({4}));
    CHECK(CM.tensor("nope") == nullptr);

    CHECK(M.eraseTensor("bias"));
    CHECK_FALSE(M.eraseTensor("bias"));
    CHECK(tensorNames(M) == Names{"weight", "running_mean"});
  }

  SECTION("children") {
    ModuleInfo &A = M.addChild("a", "Linear");
    M.addChild("b", "ReLU");
    CHECK(childNames(M) == Names{"a", "b"});
    CHECK(M.child("a") == &A);
    CHECK(M.child("a")->kind() == "Linear");
    CHECK(M.child("c") == nullptr);
    CHECK(M.eraseChild("a"));
    CHECK_FALSE(M.eraseChild("a"));
    CHECK(childNames(M) == Names{"b"});
  }
}

TEST_CASE("addModule and lookupModule", "[ir][module]") {
  GraphModule GM("Net");
  CHECK(GM.root().kind() == "Net");
  CHECK(GraphModule().root().kind() == "GraphModule");
  CHECK(GM.lookupModule("") == &GM.root());

  ModuleInfo &Conv = GM.addModule("layer1.0.conv1", "Conv2d");
  CHECK(Conv.kind() == "Conv2d");
  REQUIRE(GM.lookupModule("layer1") != nullptr);
  REQUIRE(GM.lookupModule("layer1.0") != nullptr);
  // Missing parents are created as plain modules.
  CHECK(GM.lookupModule("layer1")->kind() == "Module");
  CHECK(GM.lookupModule("layer1.0")->kind() == "Module");
  CHECK(GM.lookupModule("layer1.0.conv1") == &Conv);
  CHECK(GM.root().child("layer1") == GM.lookupModule("layer1"));

  CHECK(GM.lookupModule("layer2") == nullptr);
  CHECK(GM.lookupModule("layer1.1") == nullptr);
  CHECK(GM.lookupModule("layer1.0.conv1.weight") == nullptr);
  CHECK(GM.lookupModule("conv1") == nullptr);

  // An existing module: its kind changes, its children stay.
  ModuleInfo &Layer1 = GM.addModule("layer1", "Sequential");
  CHECK(&Layer1 == GM.lookupModule("layer1"));
  CHECK(Layer1.kind() == "Sequential");
  CHECK(GM.lookupModule("layer1.0.conv1") == &Conv);
  // Adding under an existing parent keeps the parent's kind.
  GM.addModule("layer1.0.bn1", "BatchNorm2d");
  CHECK(GM.lookupModule("layer1")->kind() == "Sequential");
  CHECK(childNames(*GM.lookupModule("layer1.0")) == Names{"conv1", "bn1"});
}

TEST_CASE("tensors by qualified name", "[ir][module]") {
  GraphModule GM;
  GM.addModule("layer1.0.conv1", "Conv2d");

  REQUIRE(errorText(GM.setTensor("layer1.0.conv1.weight",
                                 Tensor(DType::F32, {4, 1, 3, 3})))
              .empty());
  REQUIRE(errorText(GM.setTensor("layer1.0.conv1.num_batches",
                                 Tensor(DType::S64, {}), /*IsBuffer=*/true))
              .empty());
  REQUIRE(errorText(GM.setTensor("scale", Tensor(DType::F32, {1}))).empty());

  Tensor *W = GM.lookupTensor("layer1.0.conv1.weight");
  REQUIRE(W != nullptr);
  CHECK(W->dtype() == DType::F32);
  CHECK(W->shape() == llvm::ArrayRef<int64_t>({4, 1, 3, 3}));
  CHECK(W == GM.lookupModule("layer1.0.conv1")->tensor("weight"));
  CHECK(GM.lookupModule("layer1.0.conv1")->tensors()[1].IsBuffer);

  // Root tensors have no prefix.
  REQUIRE(GM.lookupTensor("scale") != nullptr);
  CHECK(GM.lookupTensor("scale") == GM.root().tensor("scale"));
  const GraphModule &CGM = GM;
  CHECK(CGM.lookupTensor("scale") == GM.root().tensor("scale"));

  CHECK(GM.lookupTensor("layer1.0.conv1.bias") == nullptr);
  CHECK(GM.lookupTensor("layer1.0.conv2.weight") == nullptr);
  CHECK(GM.lookupTensor("weight") == nullptr);
  CHECK(GM.lookupTensor("layer1.0.conv1") == nullptr);
  CHECK(GM.lookupTensor("") == nullptr);

  // setTensor writes through: the lookup sees new storage.
  W->setFromDouble(0, 3.5);
  CHECK(GM.lookupTensor("layer1.0.conv1.weight")->getAsDouble(0) == 3.5);
  REQUIRE(errorText(GM.setTensor("layer1.0.conv1.weight",
                                 Tensor(DType::S8, {4, 1, 3, 3})))
              .empty());
  CHECK(GM.lookupTensor("layer1.0.conv1.weight")->dtype() == DType::S8);
  CHECK(tensorNames(*GM.lookupModule("layer1.0.conv1")) ==
        Names{"weight", "num_batches"});

  // A missing owner is an error naming it.
  CHECK(errorText(GM.setTensor("conv2.weight", Tensor(DType::F32, {1}))) ==
        "cannot set tensor 'conv2.weight': no module 'conv2'");
  CHECK(errorText(
            GM.setTensor("layer1.1.conv1.weight", Tensor(DType::F32, {1}))) ==
        "cannot set tensor 'layer1.1.conv1.weight': no module "
        "'layer1.1.conv1'");
  CHECK_THAT(errorText(GM.setTensor("layer1.", Tensor(DType::F32, {1}))),
             Catch::Contains("empty name"));
  CHECK(GM.lookupModule("conv2") == nullptr);
}

TEST_CASE("moduleNames and namedTensors", "[ir][module]") {
  GraphModule GM;
  GM.addModule("a", "A");
  GM.addModule("b", "B");
  GM.addModule("a.c.d", "D");
  GM.addModule("b.e", "E");
  GM.addModule("a.f", "F");
  CHECK(GM.moduleNames() == Names{"a", "a.c", "a.c.d", "a.f", "b", "b.e"});

  auto Set = [&](llvm::StringRef Path, bool IsBuffer = false) {
    REQUIRE(errorText(GM.setTensor(Path, Tensor(DType::F32, {2}), IsBuffer))
                .empty());
  };
  Set("a.c.d.w");
  Set("b.running_mean", /*IsBuffer=*/true);
  Set("a.weight");
  Set("root_param");
  Set("a.bias");
  Set("a.c.x");
  Set("b.e.y");
  // state_dict order: a module's own tensors, then its children's, children
  // in insertion order.
  CHECK(qualifiedTensorNames(GM) == Names{"root_param", "a.weight", "a.bias",
                                          "a.c.x", "a.c.d.w", "b.running_mean",
                                          "b.e.y"});
  for (const auto &NT : GM.namedTensors())
    CHECK(NT.second == GM.lookupTensor(NT.first));

  CHECK(GraphModule().moduleNames().empty());
  CHECK(GraphModule().namedTensors().empty());
}

TEST_CASE("eraseModule", "[ir][module]") {
  GraphModule GM;
  GM.addModule("a.c.d", "D");
  GM.addModule("a.e", "E");
  REQUIRE(errorText(GM.setTensor("a.c.d.w", Tensor(DType::F32, {1}))).empty());
  REQUIRE(errorText(GM.setTensor("a.e.w", Tensor(DType::F32, {1}))).empty());

  CHECK(GM.eraseModule("a.c"));
  CHECK(GM.lookupModule("a.c") == nullptr);
  CHECK(GM.lookupModule("a.c.d") == nullptr);
  CHECK(GM.lookupTensor("a.c.d.w") == nullptr);
  CHECK(GM.moduleNames() == Names{"a", "a.e"});
  CHECK(qualifiedTensorNames(GM) == Names{"a.e.w"});

  CHECK_FALSE(GM.eraseModule("a.c"));
  CHECK_FALSE(GM.eraseModule("nope"));
  CHECK_FALSE(GM.eraseModule("nope.x"));
  CHECK_FALSE(GM.eraseModule(""));
  CHECK(GM.eraseModule("a"));
  CHECK(GM.moduleNames().empty());
  CHECK(GM.namedTensors().empty());
}

namespace {

/// A small model with every kind of content clone() has to copy.
void buildCloneSource(GraphModule &GM) {
  ModuleInfo &Conv = GM.addModule("features.0", "Conv2d");
  Conv.setAttr("stride", Argument::ints({1, 1}));
  Conv.setAttr("padding_mode", Argument::string("zeros"));
  Tensor W = Tensor::fromFloats({2, 1, 1, 1}, {0.5f, -1.0f});
  Conv.setTensor("weight", W);
  Conv.setTensor("bias", Tensor::declared(DType::F32, {2}));
  GM.addModule("features", "Sequential");
  ModuleInfo &Q = GM.addModule("quant", "Quantize");
  Tensor S(DType::S8, {2});
  S.setQuant(QuantParams::perChannel({0.1, 0.2}, {0, 1}, 0));
  S.setFromDouble(1, -3);
  Q.setTensor("packed", S);
  Q.setTensor("count", Tensor(DType::S64, {1}), /*IsBuffer=*/true);
  GM.root().setTensor("offset", Tensor::fromFloats({1}, {2.0f}));

  Graph &G = GM.graph();
  Node *X = G.placeholder("x", TensorType{DType::F32, {1, 1, 4, 4}, {}});
  Node *Off = G.getAttr("offset", TensorType{DType::F32, {1}, {}});
  Node *C = G.callModule("features.0", {X});
  C->setType(TensorType{DType::F32, {1, 2, 4, 4}, {}});
  C->setScope("features");
  C->setMeta("qconfig", Argument::string("default"));
  C->setMeta("ranges",
             Argument::list({Argument::real(-1.0),
                             Argument::list({Argument::integer(3)})}));
  Node *Add = G.callFunction("add", {C, Off}, {{"alpha", Argument::real(1.5)}});
  Add->setScope("features.0");
  Node *R = G.callMethod(
      "reshape", {Add, Argument::list({Argument::integer(-1),
                                       Argument::list({Argument(X)})})});
  Node *Cat = G.callFunction("cat", {Argument::list({R, C})},
                             {{"dim", Argument::integer(1)},
                              {"extra", Argument::list({Argument(Off)})}});
  G.output(Argument::list({Cat, Argument::none()}));
}

} // namespace

TEST_CASE("clone copies modules and graph deeply", "[ir][module]") {
  GraphModule GM("Net");
  buildCloneSource(GM);
  REQUIRE(errorText(verify(GM)).empty());

  std::unique_ptr<GraphModule> C = GM.clone();
  REQUIRE(C != nullptr);
  CHECK(errorText(verify(*C)).empty());

  SECTION("modules") {
    CHECK(C->root().kind() == "Net");
    CHECK(C->moduleNames() == GM.moduleNames());
    for (const std::string &Path : GM.moduleNames()) {
      const ModuleInfo *From = GM.lookupModule(Path);
      const ModuleInfo *To = C->lookupModule(Path);
      REQUIRE(To != nullptr);
      CHECK(To != From);
      CHECK(To->kind() == From->kind());
      CHECK(To->attrs() == From->attrs());
      REQUIRE(To->tensors().size() == From->tensors().size());
      for (size_t I = 0; I < To->tensors().size(); ++I) {
        CHECK(To->tensors()[I].Name == From->tensors()[I].Name);
        CHECK(To->tensors()[I].IsBuffer == From->tensors()[I].IsBuffer);
      }
    }
    CHECK(C->lookupModule("features")->kind() == "Sequential");
    CHECK(qualifiedTensorNames(*C) == qualifiedTensorNames(GM));
    for (const auto &NT : GM.namedTensors()) {
      const Tensor *T = C->lookupTensor(NT.first);
      REQUIRE(T != nullptr);
      CHECK(T != NT.second);
      CHECK(T->dtype() == NT.second->dtype());
      CHECK(T->shape() == NT.second->shape());
      CHECK(T->quant() == NT.second->quant());
      CHECK(T->hasData() == NT.second->hasData());
      if (T->hasData())
        CHECK(T->identical(*NT.second));
    }
    // A tensor declared without storage stays that way.
    CHECK_FALSE(C->lookupTensor("features.0.bias")->hasData());
    CHECK(C->lookupTensor("features.0.bias")->shape() ==
          llvm::ArrayRef<int64_t>({2}));
    CHECK(C->lookupTensor("quant.packed")->quant().isPerChannel());
  }

  SECTION("tensor storage is not shared") {
    C->lookupTensor("features.0.weight")->setFromDouble(0, 42.0);
    C->lookupTensor("quant.packed")->setFromDouble(1, 7);
    C->lookupTensor("offset")->setFromDouble(0, -1.0);
    CHECK(GM.lookupTensor("features.0.weight")->getAsDouble(0) == 0.5);
    CHECK(GM.lookupTensor("quant.packed")->getAsDouble(1) == -3);
    CHECK(GM.lookupTensor("offset")->getAsDouble(0) == 2.0);
    // And the other way round.
    GM.lookupTensor("features.0.weight")->setFromDouble(1, 9.0);
    CHECK(C->lookupTensor("features.0.weight")->getAsDouble(1) == -1.0);
    // Module edits stay local too.
    C->lookupModule("features.0")->setAttr("stride", Argument::ints({2, 2}));
    C->eraseModule("quant");
    CHECK(*GM.lookupModule("features.0")->attr("stride") ==
          Argument::ints({1, 1}));
    CHECK(GM.lookupModule("quant") != nullptr);
  }

  SECTION("nodes") {
    const Graph &From = GM.graph();
    const Graph &To = C->graph();
    REQUIRE(nodeNames(To) == nodeNames(From));
    auto FI = From.begin();
    for (const Node &N : To) {
      const Node &O = *FI++;
      INFO("node " << N.name().str());
      CHECK(&N != &O);
      CHECK(N.getParent() == &To);
      CHECK(N.op() == O.op());
      CHECK(N.target() == O.target());
      CHECK(N.type() == O.type());
      CHECK(N.scope() == O.scope());
      CHECK(N.meta() == O.meta());
      CHECK(To.lookup(N.name()) == &N);
      CHECK(inputNames(N) == inputNames(O));
      CHECK(userNames(N) == userNames(O));
      // Inputs and users are the clone's own nodes.
      for (const Node *In : N.inputs())
        CHECK(In->getParent() == &To);
      for (const Node *U : N.users())
        CHECK(U->getParent() == &To);
      REQUIRE(N.numArgs() == O.numArgs());
      REQUIRE(N.kwargs().size() == O.kwargs().size());
      for (size_t I = 0; I < N.kwargs().size(); ++I)
        CHECK(N.kwargs()[I].first == O.kwargs()[I].first);
    }

    // Arguments have the same structure with references remapped.
    const Node *Add = To.lookup("add");
    REQUIRE(Add != nullptr);
    CHECK(Add->arg(0).getNode() == To.lookup("features_0"));
    CHECK(Add->arg(1).getNode() == To.lookup("offset"));
    CHECK(*Add->kwarg("alpha") == Argument::real(1.5));
    const Node *R = To.lookup("reshape");
    REQUIRE(R != nullptr);
    CHECK(R->arg(1) ==
          Argument::list({Argument::integer(-1),
                          Argument::list({Argument(To.lookup("x"))})}));
    Node *Cat = To.lookup("cat");
    CHECK(*Cat->kwarg("dim") == Argument::integer(1));
    CHECK(*Cat->kwarg("extra") ==
          Argument::list({Argument(To.lookup("offset"))}));
    CHECK(To.outputNode()->arg(0) ==
          Argument::list({Argument(Cat), Argument()}));
    CHECK(userNames(*To.lookup("x")) == Names{"features_0", "reshape"});
    CHECK(userNames(*To.lookup("offset")) == Names{"add", "cat"});
    const Node *Conv = To.lookup("features_0");
    REQUIRE(Conv->meta().size() == 2);
    CHECK(*Conv->meta("qconfig") == Argument::string("default"));
    CHECK(To.lookup("add")->meta().empty());
  }

  SECTION("annotations are copied, not shared") {
    Node *Conv = C->graph().lookup("features_0");
    Conv->setMeta("qconfig", Argument::string("none"));
    Conv->eraseMeta("ranges");
    C->graph().lookup("add")->setMeta("k", Argument::integer(1));
    const Graph &O = GM.graph();
    CHECK(*O.lookup("features_0")->meta("qconfig") ==
          Argument::string("default"));
    CHECK(O.lookup("features_0")->meta("ranges") != nullptr);
    CHECK(O.lookup("add")->meta().empty());
  }

  SECTION("editing the cloned graph leaves the original alone") {
    Graph &G = C->graph();
    Node *X = G.lookup("x");
    Node *Relu = G.callFunction("relu", {X});
    G.lookup("add")->setArg(0, Argument(Relu));
    REQUIRE(errorText(G.rename(Relu, "act")).empty());
    G.lookup("x")->setType(TensorType{DType::S8, {1, 1, 4, 4}, {}});
    CHECK(G.size() == GM.graph().size() + 1);

    const Graph &O = GM.graph();
    CHECK(O.lookup("act") == nullptr);
    CHECK(O.lookup("relu") == nullptr);
    CHECK(O.lookup("add")->arg(0).getNode() == O.lookup("features_0"));
    CHECK(userNames(*O.lookup("x")) == Names{"features_0", "reshape"});
    CHECK(userNames(*O.lookup("features_0")) == Names{"add", "cat"});
    CHECK(O.lookup("x")->type()->Dtype == DType::F32);
    CHECK(errorText(verify(GM)).empty());
  }

  SECTION("the clone outlives the original") {
    std::unique_ptr<GraphModule> Src = std::make_unique<GraphModule>();
    buildCloneSource(*Src);
    std::unique_ptr<GraphModule> Copy = Src->clone();
    Src.reset();
    CHECK(errorText(verify(*Copy)).empty());
    CHECK(Copy->lookupTensor("features.0.weight")->getAsDouble(1) == -1.0);
    CHECK(Copy->graph().size() == 7);
  }
}

TEST_CASE("clone of an empty module", "[ir][module]") {
  GraphModule GM("Empty");
  std::unique_ptr<GraphModule> C = GM.clone();
  CHECK(C->root().kind() == "Empty");
  CHECK(C->graph().empty());
  CHECK(C->moduleNames().empty());
}

TEST_CASE("clone keeps a reference into another graph", "[ir][module]") {
  // Malformed (the verifier rejects it), but clone must not crash on it.
  Graph Other;
  Node *Y = Other.placeholder("y");
  GraphModule GM;
  Node *X = GM.graph().placeholder("x");
  Node *Add = GM.graph().callFunction("add", {X, Y});
  GM.graph().output(Add);

  std::unique_ptr<GraphModule> C = GM.clone();
  Node *CAdd = C->graph().lookup("add");
  REQUIRE(CAdd != nullptr);
  CHECK(CAdd->arg(0).getNode() == C->graph().lookup("x"));
  CHECK(CAdd->arg(1).getNode() == Y);
  CHECK(Y->users().size() == 2);
  CHECK_THAT(errorText(verify(*C)),
             Catch::Contains("node 'add': uses 'y', which is not in this "
                             "graph"));

  // Drop the cross-graph uses before the graphs go away.
  CAdd->setArg(1, Argument(C->graph().lookup("x")));
  Add->setArg(1, Argument(X));
  CHECK_FALSE(Y->hasUsers());
}
