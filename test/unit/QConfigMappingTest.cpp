//===- QConfigMappingTest.cpp - QConfigMapping resolution and JSON --------===//

#include "qfx/Quant/QConfigMapping.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <string>

using namespace qfx;

namespace {

/// A qconfig told apart from others by its name only.
QConfig named(const std::string &Name) {
  QConfig QC;
  QC.Name = Name;
  return QC;
}

/// "<rule>|<key>|<qconfig name or none>", to compare decisions at a glance.
std::string show(const QConfigDecision &D) {
  return qconfigRuleName(D.Rule).str() + "|" + D.Key + "|" +
         (D.QC ? D.QC->Name : std::string("none"));
}

/// The value of \p E; fails the test with the error otherwise.
template <typename T> T unwrap(llvm::Expected<T> E) {
  if (!E)
    FAIL(errorToString(E.takeError()));
  return std::move(*E);
}

std::string errorOf(llvm::Expected<QConfigMapping> M) {
  if (M)
    return "";
  return errorToString(M.takeError());
}

/// The error fromJson gives for \p Text under the name "cfg.json".
std::string jsonError(const std::string &Text) {
  return errorOf(QConfigMapping::fromJson(Text, "cfg.json"));
}

/// A qconfig object in JSON with an activation observer body \p Act.
std::string qcJson(const std::string &Act) {
  return R"({"activation": )" + Act +
         R"(, "weight": {"observer": "PerChannelMinMaxObserver",
            "dtype": "qint8", "qscheme": "per_channel_symmetric"}})";
}

} // namespace

TEST_CASE("rule names", "[quant][qconfig]") {
  CHECK(qconfigRuleName(QConfigRule::Unset) == "unset");
  CHECK(qconfigRuleName(QConfigRule::Global) == "global");
  CHECK(qconfigRuleName(QConfigRule::ObjectType) == "object_type");
  CHECK(qconfigRuleName(QConfigRule::ModuleNameRegex) == "module_name_regex");
  CHECK(qconfigRuleName(QConfigRule::ModuleName) == "module_name");
  CHECK(qconfigRuleName(QConfigRule::ModuleNameObjectTypeOrder) ==
        "module_name_object_type_order");
}

TEST_CASE("each priority level overrides the lower ones", "[quant][qconfig]") {
  QConfigMapping M;
  auto Conv = [&] {
    return show(M.resolveModule("layer1.0.conv1", "Conv2d", 0));
  };
  CHECK(Conv() == "unset||none");
  M.setGlobal(named("G"));
  CHECK(Conv() == "global||G");
  M.setObjectType("Conv2d", named("T"));
  CHECK(Conv() == "object_type|Conv2d|T");
  M.setModuleNameRegex("layer1\\..*", named("R"));
  CHECK(Conv() == "module_name_regex|layer1\\..*|R");
  M.setModuleName("layer1.0.conv1", named("N"));
  CHECK(Conv() == "module_name|layer1.0.conv1|N");
  // The order rule names the parent, where the call is counted.
  M.setModuleNameObjectTypeOrder("layer1.0", "Conv2d", 0, named("O"));
  CHECK(Conv() == "module_name_object_type_order|layer1.0:Conv2d:0|O");
  // Another index, type or parent does not match the order rule.
  CHECK(show(M.resolveModule("layer1.0.conv1", "Conv2d", 1)) ==
        "module_name|layer1.0.conv1|N");
  CHECK(show(M.resolveModule("layer1.0.conv1", "Linear", 0)) ==
        "module_name|layer1.0.conv1|N");
}

TEST_CASE("lower levels apply where higher ones do not match",
          "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setObjectType("Linear", named("T"))
      .setModuleNameRegex("head.*", named("R"))
      .setModuleName("body", named("N"));
  CHECK(show(M.resolveModule("fc", "Linear", 0)) == "object_type|Linear|T");
  CHECK(show(M.resolveModule("head.fc", "Linear", 0)) ==
        "module_name_regex|head.*|R");
  CHECK(show(M.resolveModule("body.fc", "Linear", 0)) == "module_name|body|N");
  CHECK(show(M.resolveModule("stem.conv", "Conv2d", 0)) == "global||G");
}

TEST_CASE("setting a key again replaces its qconfig", "[quant][qconfig]") {
  QConfigMapping M;
  M.setObjectType("Conv2d", named("A")).setObjectType("Conv2d", named("B"));
  M.setModuleNameObjectTypeOrder("", "Conv2d", 0, named("C"));
  M.setModuleNameObjectTypeOrder("", "Conv2d", 0, named("D"));
  CHECK(show(M.resolveModule("conv", "Conv2d", 1)) == "object_type|Conv2d|B");
  CHECK(show(M.resolveModule("conv", "Conv2d", 0)) ==
        "module_name_object_type_order|:Conv2d:0|D");
}

TEST_CASE("module_name rules are inherited by submodules", "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleName("layer1", named("L1"))
      .setModuleName("layer1.0.conv2", named("C2"));
  CHECK(show(M.resolveModule("layer1.0.conv1", "Conv2d", 0)) ==
        "module_name|layer1|L1");
  CHECK(show(M.resolveModule("layer1.0", "BasicBlock", 0)) ==
        "module_name|layer1|L1");
  CHECK(show(M.resolveModule("layer1.0.conv2", "Conv2d", 0)) ==
        "module_name|layer1.0.conv2|C2");
  // A name sharing a prefix is not a submodule.
  CHECK(show(M.resolveModule("layer10.conv", "Conv2d", 0)) == "global||G");
  CHECK(show(M.resolveModule("layer2", "Sequential", 0)) == "global||G");
}

TEST_CASE("module_name \"\" is never looked up, as in PyTorch",
          "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G")).setModuleName("", named("Root"));
  CHECK(show(M.resolveModule("conv", "Conv2d", 0)) == "global||G");
  CHECK(show(M.resolveFunction("add", "", "", 0)) == "global||G");
}

TEST_CASE("the first matching regex wins, in insertion order",
          "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleNameRegex("foo.*bar.*conv[0-9]+", named("R1"))
      .setModuleNameRegex("foo.*bar.*", named("R2"))
      .setModuleNameRegex("foo.*", named("R3"));
  CHECK(show(M.resolveModule("foo.bar.conv0", "Conv2d", 0)).find("|R1") !=
        std::string::npos);
  CHECK(show(M.resolveModule("foo.bar.linear", "Linear", 0)).find("|R2") !=
        std::string::npos);
  CHECK(show(M.resolveModule("foo.baz.relu", "ReLU", 0)).find("|R3") !=
        std::string::npos);
  // Re-setting a regex keeps its original position.
  M.setModuleNameRegex("foo.*", named("R3b"));
  CHECK(show(M.resolveModule("foo.bar.conv0", "Conv2d", 0)).find("|R1") !=
        std::string::npos);
  QConfigMapping Later;
  Later.setModuleNameRegex("foo.*", named("Broad"))
      .setModuleNameRegex("foo.*bar.*", named("Narrow"));
  CHECK(show(Later.resolveModule("foo.bar.x", "Conv2d", 0)) ==
        "module_name_regex|foo.*|Broad");
}

TEST_CASE("regexes match at the start of the name, like re.match",
          "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleNameRegex("conv", named("Mid"))
      .setModuleNameRegex("layer1", named("Prefix"));
  // "conv" occurs inside the name but not at its start.
  CHECK(show(M.resolveModule("layer1.0.conv1", "Conv2d", 0)) ==
        "module_name_regex|layer1|Prefix");
  // A prefix match is enough: the pattern need not reach the end.
  CHECK(show(M.resolveModule("layer10", "Conv2d", 0)) ==
        "module_name_regex|layer1|Prefix");
  CHECK(show(M.resolveModule("conv1", "Conv2d", 0)) ==
        "module_name_regex|conv|Mid");
  CHECK(show(M.resolveModule("layer2.conv", "Conv2d", 0)) == "global||G");
}

TEST_CASE("a regex that does not compile never matches", "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G")).setModuleNameRegex("layer(", named("Bad"));
  CHECK(show(M.resolveModule("layer(1", "Conv2d", 0)) == "global||G");
}

TEST_CASE("functions inherit the enclosing module's qconfig",
          "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G"));
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 0)) ==
        "global||G");
  M.setObjectType("add", named("Add"));
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 0)) ==
        "object_type|add|Add");
  CHECK(show(M.resolveFunction("mul", "layer1", "BasicBlock", 0)) ==
        "global||G");
  // The enclosing module's rules win over the function's own rule.
  M.setModuleNameRegex("layer.*", named("R"));
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 0)) ==
        "module_name_regex|layer.*|R");
  M.setModuleName("layer1", named("L1"));
  CHECK(show(M.resolveFunction("add", "layer1.0", "BasicBlock", 0)) ==
        "module_name|layer1|L1");
  CHECK(show(M.resolveFunction("add", "", "", 0)) == "object_type|add|Add");
}

TEST_CASE("the scope module's kind wins over a function's own type",
          "[quant][qconfig]") {
  // generate_qconfig_map passes the function's qconfig as the fallback of
  // the module-type lookup, so object_type[BasicBlock] beats object_type[add].
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setObjectType("add", named("Add"))
      .setObjectType("BasicBlock", named("Block"));
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 0)) ==
        "object_type|BasicBlock|Block");
  CHECK(show(M.resolveFunction("add", "layer2", "Bottleneck", 0)) ==
        "object_type|add|Add");
  M.setModuleNameObjectTypeOrder("layer1", "add", 0, named("O"));
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 0)) ==
        "module_name_object_type_order|layer1:add:0|O");
  CHECK(show(M.resolveFunction("add", "layer1", "BasicBlock", 1)) ==
        "object_type|BasicBlock|Block");
}

TEST_CASE("methods and get_attr resolve by their scope", "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G")).setObjectType("reshape", named("Reshape"));
  CHECK(show(M.resolveScope("layer1", "BasicBlock")) == "global||G");
  CHECK(show(M.resolveMethod("reshape", "layer1", "BasicBlock")) ==
        "object_type|reshape|Reshape");
  CHECK(show(M.resolveMethod("view", "layer1", "BasicBlock")) == "global||G");
  M.setObjectType("BasicBlock", named("Block"));
  CHECK(show(M.resolveScope("layer1", "BasicBlock")) ==
        "object_type|BasicBlock|Block");
  CHECK(show(M.resolveMethod("reshape", "layer1", "BasicBlock")) ==
        "object_type|BasicBlock|Block");
  M.setModuleName("layer1", named("L1"));
  CHECK(show(M.resolveMethod("reshape", "layer1", "BasicBlock")) ==
        "module_name|layer1|L1");
}

TEST_CASE("none keeps float and says which rule chose it", "[quant][qconfig]") {
  QConfigMapping M;
  M.setGlobal(named("G")).setObjectType("Conv2d", std::nullopt);
  QConfigDecision D = M.resolveModule("conv", "Conv2d", 0);
  CHECK_FALSE(D.QC.has_value());
  CHECK(D.Rule == QConfigRule::ObjectType);
  CHECK(D.Key == "Conv2d");
  M.setModuleName("head", std::nullopt);
  CHECK(show(M.resolveModule("head.fc", "Linear", 0)) ==
        "module_name|head|none");
  QConfigMapping NoGlobal;
  NoGlobal.setGlobal(std::nullopt);
  CHECK(show(NoGlobal.resolveModule("fc", "Linear", 0)) == "global||none");
  // A rule can also turn quantization back on under a none.
  M.setModuleName("head.fc", named("Back"));
  CHECK(show(M.resolveModule("head.fc", "Linear", 0)) ==
        "module_name|head.fc|Back");
}

namespace {

/// Net (root) with layer1 (BasicBlock: conv1, conv2, relu) and fc; the
/// graph calls conv1, add, conv2, add inside layer1, then an add and fc in
/// the root, and reads layer1.conv1.weight.
void buildNet(GraphModule &GM) {
  GM.addModule("layer1", "BasicBlock");
  GM.addModule("layer1.conv1", "Conv2d");
  GM.addModule("layer1.conv2", "Conv2d");
  GM.addModule("layer1.relu", "ReLU");
  GM.addModule("fc", "Linear");
  GM.addModule("activation_post_process_0", "HistogramObserver");
  GM.addModule("fq", "FusedMovingAvgObsFakeQuantize");
  Graph &G = GM.graph();
  auto InScope = [](Node *N, const char *S) {
    N->setScope(S);
    return N;
  };
  Node *X = G.placeholder("x");
  Node *Obs = G.callModule("activation_post_process_0", {X});
  Node *C1 = InScope(G.callModule("layer1.conv1", {Obs}), "layer1");
  Node *A0 = InScope(G.callFunction("add", {C1, X}), "layer1");
  Node *C2 = InScope(G.callModule("layer1.conv2", {A0}), "layer1");
  Node *A1 = InScope(G.callFunction("add", {C2, X}), "layer1");
  Node *R = InScope(G.callMethod("reshape", {A1}), "layer1");
  Node *W = InScope(G.getAttr("layer1.conv1.weight"), "layer1");
  Node *A2 = G.callFunction("add", {R, W});
  Node *F = G.callModule("fc", {A2});
  Node *Q = G.callModule("fq", {F});
  G.output(Argument(Q));
}

} // namespace

TEST_CASE("assign counts calls per scope like PyTorch", "[quant][qconfig]") {
  GraphModule GM("Net");
  buildNet(GM);
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleNameObjectTypeOrder("layer1", "add", 1, named("Add1"))
      .setModuleNameObjectTypeOrder("layer1", "Conv2d", 1, named("Conv1"))
      .setModuleNameObjectTypeOrder("", "add", 0, named("RootAdd0"));
  auto Map = M.assign(GM);
  REQUIRE(Map.count("add"));
  REQUIRE(Map.count("add_1"));
  REQUIRE(Map.count("add_2"));
  CHECK(show(Map["add"]) == "global||G");
  CHECK(show(Map["add_1"]) ==
        "module_name_object_type_order|layer1:add:1|Add1");
  // The root's first add is index 0 of the root scope, not 2.
  CHECK(show(Map["add_2"]) == "module_name_object_type_order|:add:0|RootAdd0");
  CHECK(show(Map["layer1_conv1"]) == "global||G");
  CHECK(show(Map["layer1_conv2"]) ==
        "module_name_object_type_order|layer1:Conv2d:1|Conv1");
}

TEST_CASE("call_module indices are counted in the module's parent",
          "[quant][qconfig]") {
  // The root's forward calls conv0, then layer1.conv1 directly: conv0 is
  // the first Conv2d call of the root, layer1.conv1 the first of "layer1"
  // (PyTorch counts in the parent of the module path), although both calls
  // are made from the root's forward.
  GraphModule GM("Net");
  GM.addModule("conv0", "Conv2d");
  GM.addModule("layer1.conv1", "Conv2d");
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  Node *A = G.callModule("conv0", {X});
  Node *B = G.callModule("layer1.conv1", {A});
  G.output(Argument(B));
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleNameObjectTypeOrder("", "Conv2d", 0, named("RootFirst"))
      .setModuleNameObjectTypeOrder("layer1", "Conv2d", 0, named("First"))
      .setModuleNameObjectTypeOrder("", "Conv2d", 1, named("RootSecond"));
  auto Map = M.assign(GM);
  CHECK(show(Map["conv0"]) ==
        "module_name_object_type_order|:Conv2d:0|RootFirst");
  CHECK(show(Map["layer1_conv1"]) ==
        "module_name_object_type_order|layer1:Conv2d:0|First");
}

TEST_CASE("assign skips observers, placeholders and the output",
          "[quant][qconfig]") {
  GraphModule GM("Net");
  buildNet(GM);
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setObjectType("HistogramObserver", named("Obs"))
      .setObjectType("Linear", named("Lin"));
  auto Map = M.assign(GM);
  CHECK(Map.count("x") == 0);
  CHECK(Map.count("output") == 0);
  CHECK(Map.count("activation_post_process_0") == 0);
  CHECK(Map.count("fq") == 0);
  CHECK(Map.size() == 8);
  CHECK(show(Map["fc"]) == "object_type|Linear|Lin");
  CHECK(show(Map["reshape"]) == "global||G");
}

TEST_CASE("assign resolves scopes by module kind", "[quant][qconfig]") {
  GraphModule GM("Net");
  buildNet(GM);
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setObjectType("BasicBlock", named("Block"))
      .setObjectType("Conv2d", named("Conv"))
      .setObjectType("Net", named("Root"));
  auto Map = M.assign(GM);
  CHECK(show(Map["add"]) == "object_type|BasicBlock|Block");
  CHECK(show(Map["reshape"]) == "object_type|BasicBlock|Block");
  // get_attr goes by the module owning the tensor.
  CHECK(show(Map["layer1_conv1_weight"]) == "object_type|Conv2d|Conv");
  // The root scope has no type (None in PyTorch's tracer).
  CHECK(show(Map["add_2"]) == "global||G");
}

TEST_CASE("qconfig display names", "[quant][qconfig]") {
  CHECK(qconfigDisplayName(std::nullopt) == "none");
  QConfig X86 = unwrap(QConfig::preset("x86"));
  CHECK(qconfigDisplayName(X86) == "x86");
  QConfig Renamed = X86;
  Renamed.Name = "custom";
  CHECK(qconfigDisplayName(Renamed) == "x86");
  QConfig Changed = X86;
  Changed.Activation.Bins = 17;
  CHECK(qconfigDisplayName(Changed) == "custom");
}

namespace {

QConfig customQConfig() {
  QConfig QC;
  QC.Activation = ObserverSpec::make(ObserverKind::MovingAverageMinMax,
                                     DType::U8, QScheme::PerTensorAffine,
                                     /*ReduceRange=*/true);
  QC.Activation.AveragingConstant = 0.125;
  QC.Activation.QuantMin = 0;
  QC.Activation.QuantMax = 31;
  QC.Weight = ObserverSpec::make(ObserverKind::PerChannelMinMax, DType::S8,
                                 QScheme::PerChannelSymmetric,
                                 /*ReduceRange=*/true);
  QC.Weight.QuantMin = -32;
  QC.Weight.QuantMax = 31;
  QC.Weight.ChAxis = 1;
  return QC;
}

} // namespace

TEST_CASE("JSON round trip", "[quant][qconfig]") {
  QConfig X86 = unwrap(QConfig::preset("x86"));
  QConfigMapping M;
  M.setGlobal(X86)
      .setObjectType("Conv2d", customQConfig())
      .setObjectType("add", std::nullopt)
      .setModuleNameRegex("layer1\\..*", X86)
      .setModuleName("fc", std::nullopt)
      .setModuleNameObjectTypeOrder("layer1", "add", 1, customQConfig());
  std::string Text = M.toJson();
  QConfigMapping Back = unwrap(QConfigMapping::fromJson(Text, "mapping.json"));
  CHECK(Back.toJson() == Text);
  // Presets are written by name, none as null, in priority order.
  CHECK(Text.find(R"("": "x86")") != std::string::npos);
  CHECK(Text.find(R"("add",)") != std::string::npos);
  CHECK(Text.find("null") != std::string::npos);
  CHECK(Text.find("\"object_type\"") < Text.find("\"module_name_regex\""));
  QConfigDecision D = Back.resolveModule("conv", "Conv2d", 0);
  REQUIRE(D.QC);
  CHECK(*D.QC == customQConfig());
  CHECK(D.QC->Activation.QuantMax == 31);
  CHECK(D.QC->Weight.QuantMin == -32);
  CHECK(show(Back.resolveFunction("add", "layer1", "BasicBlock", 1)) ==
        "module_name_object_type_order|layer1:add:1|custom");
  CHECK(show(Back.resolveModule("fc", "Linear", 0)) == "module_name|fc|none");
}

TEST_CASE("JSON without a global key stays unset", "[quant][qconfig]") {
  QConfigMapping M = unwrap(
      QConfigMapping::fromJson(R"({"module_name": [["fc", "x86"]]})", "m"));
  CHECK(show(M.resolveModule("conv", "Conv2d", 0)) == "unset||none");
  CHECK(show(M.resolveModule("fc", "Linear", 0)) == "module_name|fc|x86");
  CHECK(M.toJson().find("\"\":") == std::string::npos);
  CHECK(QConfigMapping().toJson() ==
        "{\n  \"object_type\": [],\n  \"module_name_regex\": [],\n"
        "  \"module_name\": [],\n  \"module_name_object_type_order\": []\n}\n");
}

TEST_CASE("JSON accepts module_type for object_type", "[quant][qconfig]") {
  QConfigMapping M = unwrap(QConfigMapping::fromJson(
      R"({"": null, "module_type": [["Linear", "x86"]]})", "m"));
  CHECK(show(M.resolveModule("fc", "Linear", 0)) == "object_type|Linear|x86");
  CHECK(show(M.resolveModule("c", "Conv2d", 0)) == "global||none");
  CHECK(M.toJson().find("\"object_type\": [\n    [\n      \"Linear\"") !=
        std::string::npos);
}

TEST_CASE("JSON observer fields and defaults", "[quant][qconfig]") {
  std::string Doc = R"({"": )" + qcJson(R"({"observer": "HistogramObserver",
                        "dtype": "quint8", "reduce_range": true,
                        "quant_min": 0, "quant_max": 127, "bins": 512,
                        "upsample_rate": 16})") +
                    "}";
  QConfigMapping M = unwrap(QConfigMapping::fromJson(Doc, "m"));
  QConfigDecision D = M.resolveScope("", "");
  REQUIRE(D.QC);
  CHECK(D.QC->Name == "custom");
  // Like PyTorch's calculate_qmin_qmax, reduce_range halves a custom range.
  CHECK(D.QC->Activation.QuantMin == 0);
  CHECK(D.QC->Activation.QuantMax == 63);
  CHECK(D.QC->Activation.Bins == 512);
  CHECK(D.QC->Activation.UpsampleRate == 16);
  // Floor division: -127 // 2 == -64.
  QConfigMapping Signed = unwrap(QConfigMapping::fromJson(
      R"({"": )" + qcJson(R"({"observer": "MinMaxObserver", "dtype": "qint8",
                              "reduce_range": true, "quant_min": -127,
                              "quant_max": 127})") +
          "}",
      "m"));
  QConfigDecision S = Signed.resolveScope("", "");
  REQUIRE(S.QC);
  CHECK(S.QC->Activation.QuantMin == -64);
  CHECK(S.QC->Activation.QuantMax == 63);
  CHECK(D.QC->Weight.Kind == ObserverKind::PerChannelMinMax);
  CHECK(D.QC->Weight.Dtype == DType::S8);
  CHECK(D.QC->Weight.Scheme == QScheme::PerChannelSymmetric);
  // Absent dtype/qscheme take the observer class's defaults.
  QConfigMapping Defaults = unwrap(QConfigMapping::fromJson(
      R"({"": {"activation": {"observer": "MinMaxObserver"},
               "weight": {"observer": "PerChannelMinMaxObserver",
                          "dtype": "qint8"}}})",
      "m"));
  QConfigDecision E = Defaults.resolveScope("", "");
  REQUIRE(E.QC);
  CHECK(E.QC->Activation.Dtype == DType::U8);
  CHECK(E.QC->Activation.Scheme == QScheme::PerTensorAffine);
  CHECK(E.QC->Weight.Scheme == QScheme::PerChannelAffine);
}

TEST_CASE("JSON fixed-qparams observers keep scale and zero point",
          "[quant][qconfig]") {
  std::string Doc =
      R"({"object_type": [["tanh", )" +
      qcJson(R"({"observer": "FixedQParamsObserver", "scale": 0.0078125,
                 "zero_point": 128})") +
      "]]}";
  QConfigMapping M = unwrap(QConfigMapping::fromJson(Doc, "m"));
  QConfigDecision D = M.resolveFunction("tanh", "", "", 0);
  REQUIRE(D.QC);
  CHECK(D.QC->Activation.Kind == ObserverKind::FixedQParams);
  CHECK(D.QC->Activation.FixedScale == 0.0078125);
  CHECK(D.QC->Activation.FixedZeroPoint == 128);
  std::string Text = M.toJson();
  CHECK(Text.find(R"("scale": 0.0078125)") != std::string::npos);
  CHECK(unwrap(QConfigMapping::fromJson(Text, "m")).toJson() == Text);
}

TEST_CASE("JSON errors: document shape", "[quant][qconfig]") {
  CHECK(jsonError("{\"\": ").rfind("cfg.json: not valid JSON (byte ", 0) == 0);
  CHECK(jsonError("[]") == "cfg.json: expected a JSON object");
  CHECK(jsonError(R"({"modul_name": []})")
            .rfind("cfg.json: unknown key 'modul_name'", 0) == 0);
  CHECK(jsonError(R"({"module_name": [], "module_name": []})") ==
        "cfg.json: key 'module_name' appears twice in one object");
  CHECK(jsonError(R"({"object_type": [], "module_type": []})")
            .rfind("cfg.json: 'object_type' and 'module_type' are synonyms",
                   0) == 0);
  CHECK(jsonError(R"({"object_type": {}})") ==
        "cfg.json: object_type: expected a list of [object_type, qconfig] "
        "pairs");
  CHECK(jsonError(R"({"module_name": [["a", null], ["b"]]})") ==
        "cfg.json: module_name[1]: expected [module_name, qconfig]");
  CHECK(jsonError(R"({"module_type": [[3, null]]})") ==
        "cfg.json: module_type[0]: expected [object_type, qconfig]");
  CHECK(
      jsonError(R"({"module_name_object_type_order": [["a", "add", null]]})") ==
      "cfg.json: module_name_object_type_order[0]: expected [module_name, "
      "object_type, index, qconfig]");
  CHECK(
      jsonError(
          R"({"module_name_object_type_order": [["a", "add", 1.5, null]]})") ==
      "cfg.json: module_name_object_type_order[0]: expected [module_name, "
      "object_type, index, qconfig]");
  CHECK(jsonError(
            R"({"module_name_object_type_order": [["a", "add", -1, null]]})") ==
        "cfg.json: module_name_object_type_order[0][2]: expected a "
        "non-negative call index");
  CHECK(
      jsonError(R"({"module_name_object_type_order": [["a", "", 0, null]]})") ==
      "cfg.json: module_name_object_type_order[0][1]: empty object type");
  CHECK(jsonError(R"({"object_type": [["", null]]})") ==
        "cfg.json: object_type[0][0]: empty object type");
  CHECK(jsonError(R"({"module_name": [["", null]]})")
            .rfind("cfg.json: module_name[0][0]: empty module name", 0) == 0);
  CHECK(jsonError(
            R"({"module_name_regex": [["ok.*", null], ["layer(", null]]})") ==
        "cfg.json: module_name_regex[1][0]: invalid regex 'layer(': "
        "missing ')' for the group opened at offset 5");
}

TEST_CASE("JSON errors: regexes name the rule and the offset",
          "[quant][qconfig]") {
  auto RegexError = [](const std::string &Pattern) {
    return jsonError(R"({"module_name_regex": [["a", null], ["b", null], [")" +
                     Pattern + R"(", null]]})");
  };
  CHECK(RegexError("(?<=x)y") ==
        "cfg.json: module_name_regex[2][0]: invalid regex '(?<=x)y': "
        "unsupported regex syntax '(?<=' at offset 0");
  CHECK(RegexError("x(?P<name>y)") ==
        "cfg.json: module_name_regex[2][0]: invalid regex 'x(?P<name>y)': "
        "unsupported regex syntax '(?P<' at offset 1");
  CHECK(RegexError("(a)\\\\1") ==
        "cfg.json: module_name_regex[2][0]: invalid regex '(a)\\1': "
        "unsupported regex syntax '\\1' at offset 3");
  // Long patterns are cut in the message.
  std::string Deep(100, '(');
  CHECK(RegexError(Deep) ==
        "cfg.json: module_name_regex[2][0]: invalid regex '" +
            std::string(40, '(') +
            "...': nesting deeper than 64 groups at offset 64");
  std::string Huge = std::string(20000, '(') + std::string(20000, ')');
  CHECK(RegexError(Huge) ==
        "cfg.json: module_name_regex[2][0]: invalid regex '" +
            std::string(40, '(') +
            "...': pattern is 40000 characters long, more than 4096");
}

TEST_CASE("regex rules resolve long module names in linear time",
          "[quant][qconfig]") {
  // std::regex overflowed the stack on the first and ran for minutes on the
  // second; finishing is the point.
  QConfigMapping M;
  M.setGlobal(named("G"))
      .setModuleNameRegex("(a|aa)*b", named("Slow"))
      .setModuleNameRegex("(a|b)*$", named("Deep"));
  CHECK(show(M.resolveModule(std::string(20000, 'a'), "Conv2d", 0)) ==
        "module_name_regex|(a|b)*$|Deep");
  CHECK(show(M.resolveModule(std::string(39, 'a') + "c", "Conv2d", 0)) ==
        "global||G");
}

TEST_CASE("JSON errors: qconfigs", "[quant][qconfig]") {
  std::string Unknown = jsonError(R"({"": "fbgem"})");
  CHECK(Unknown.rfind("cfg.json: \"\": unknown qconfig preset 'fbgem' "
                      "(known: ",
                      0) == 0);
  CHECK(Unknown.find("x86") != std::string::npos);
  CHECK(jsonError(R"({"": 3})") ==
        "cfg.json: \"\": expected null, a preset name or a qconfig object");
  CHECK(
      jsonError(
          R"({"object_type": [["Conv2d", {"activation": {}, "wieght": {}}]]})") ==
      "cfg.json: object_type[0][1]: unknown key 'wieght'");
  CHECK(jsonError(R"({"": {"weight": {"observer": "MinMaxObserver"}}})") ==
        "cfg.json: \"\": missing 'activation'");
  std::string Both =
      R"({"": )" + qcJson(R"({"observer": "MinMaxObserver"})") + "}";
  Both.insert(Both.size() - 2,
              R"(, "is_dynamic": true, "is_weight_only": true)");
  CHECK(jsonError(Both) ==
        "cfg.json: \"\": is_dynamic and is_weight_only exclude each other");
  std::string NotBool =
      R"({"": )" + qcJson(R"({"observer": "MinMaxObserver"})") + "}";
  NotBool.insert(NotBool.size() - 2, R"(, "is_dynamic": 1)");
  CHECK(jsonError(NotBool) ==
        "cfg.json: \"\".is_dynamic: expected true or false");
}

TEST_CASE("JSON errors: observers", "[quant][qconfig]") {
  auto At2 = [](const std::string &Act) {
    return jsonError(R"({"object_type": [["a", null], ["b", null], ["c", )" +
                     qcJson(Act) + "]]}");
  };
  CHECK(At2(R"({"observer": "MinMaxObserver", "qscheme": "per_tensor"})")
            .rfind("cfg.json: object_type[2][1].activation.qscheme: unknown "
                   "qscheme 'per_tensor'",
                   0) == 0);
  CHECK(At2(R"({"observer": "MinMaxObserver", "dtype": "uint8"})")
            .rfind("cfg.json: object_type[2][1].activation.dtype: unknown "
                   "dtype 'uint8'",
                   0) == 0);
  std::string BadKind = At2(R"({"observer": "MinMax"})");
  CHECK(BadKind.rfind("cfg.json: object_type[2][1].activation.observer: "
                      "unknown observer 'MinMax' (known: ",
                      0) == 0);
  CHECK(BadKind.find("HistogramObserver") != std::string::npos);
  CHECK(At2(R"({"dtype": "quint8"})") ==
        "cfg.json: object_type[2][1].activation: missing 'observer'");
  CHECK(At2(R"({"observer": 1})") ==
        "cfg.json: object_type[2][1].activation.observer: expected a string");
  CHECK(At2(R"({"observer": "MinMaxObserver", "reduce": true})") ==
        "cfg.json: object_type[2][1].activation: unknown key 'reduce'");
  CHECK(At2(R"({"observer": "MinMaxObserver", "reduce_range": "yes"})") ==
        "cfg.json: object_type[2][1].activation.reduce_range: expected true "
        "or false");
  CHECK(At2(R"({"observer": "HistogramObserver", "bins": 2.5})") ==
        "cfg.json: object_type[2][1].activation.bins: expected an integer");
  CHECK(
      At2(R"({"observer": "HistogramObserver", "bins": 18446744073709551615})") ==
      "cfg.json: object_type[2][1].activation.bins: integer out of range");
  CHECK(At2(R"({"observer": "MovingAverageMinMaxObserver",
                "averaging_constant": "0.1"})") ==
        "cfg.json: object_type[2][1].activation.averaging_constant: expected "
        "a number");
  CHECK(At2(R"({"observer": "MinMaxObserver", "quant_min": 0})") ==
        "cfg.json: object_type[2][1].activation: quant_min and quant_max "
        "must be given together");
  CHECK(
      At2(R"({"observer": "MinMaxObserver", "quant_min": 10, "quant_max": 5})")
          .rfind("cfg.json: object_type[2][1].activation: ", 0) == 0);
  CHECK(At2(R"([])") ==
        "cfg.json: object_type[2][1].activation: expected an observer object");
}

TEST_CASE("loadFile names the missing file", "[quant][qconfig]") {
  std::string Err =
      errorOf(QConfigMapping::loadFile("no-such-dir/qconfig.json"));
  CHECK(Err.find("no-such-dir/qconfig.json") != std::string::npos);
}

namespace {

/// fc (a LinearReLU made by fusion) then fc2 (a Linear), both in the root.
void buildFusedNet(GraphModule &GM) {
  ModuleInfo &F = GM.addModule("fc", "LinearReLU");
  F.addChild("0", "Linear");
  F.addChild("1", "ReLU");
  GM.addModule("fc2", "Linear");
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  Node *A = G.callModule("fc", {X});
  Node *B = G.callModule("fc2", {A});
  G.output(Argument(B));
}

QConfig preset(const char *Name) { return unwrap(QConfig::preset(Name)); }

/// Fails the test on an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

} // namespace

TEST_CASE("a fused module counts as its first part and takes its rule",
          "[quant][qconfig]") {
  GraphModule GM("Net");
  buildFusedNet(GM);
  QConfigMapping M;
  M.setGlobal(preset("x86"))
      .setObjectType("Linear", preset("onednn"))
      .setObjectType("ReLU", preset("onednn"))
      .setModuleNameObjectTypeOrder("", "Linear", 1, std::nullopt);
  requireOk(M.checkFusedModules(GM));
  auto Map = M.assign(GM);
  // PyTorch's update_qconfig_for_fusion: the Linear rule reaches the
  // LinearReLU because the ReLU rule agrees.
  CHECK(Map["fc"].Rule == QConfigRule::ObjectType);
  CHECK(Map["fc"].Key == "Linear");
  CHECK(qconfigDisplayName(Map["fc"].QC) == "onednn");
  // fc was Linear call 0 (its traced kind), so fc2 is call 1.
  CHECK(Map["fc2"].Rule == QConfigRule::ModuleNameObjectTypeOrder);
  CHECK(!Map["fc2"].QC);
}

TEST_CASE("a none rule for every part leaves the fused kind to other rules",
          "[quant][qconfig]") {
  // dict.get reads a missing rule as None, so Linear: None with no ReLU
  // rule agrees, and the LinearReLU is not kept float by it (PyTorch 1.13).
  GraphModule GM("Net");
  buildFusedNet(GM);
  QConfigMapping M;
  M.setGlobal(preset("x86")).setObjectType("Linear", std::nullopt);
  requireOk(M.checkFusedModules(GM));
  auto Map = M.assign(GM);
  CHECK(Map["fc"].Rule == QConfigRule::Global);
  CHECK(qconfigDisplayName(Map["fc"].QC) == "x86");
  CHECK(!Map["fc2"].QC);
}

TEST_CASE("parts of a fused module with different object_type rules",
          "[quant][qconfig]") {
  GraphModule GM("Net");
  buildFusedNet(GM);
  QConfigMapping M;
  M.setGlobal(preset("x86")).setObjectType("Linear", preset("onednn"));
  llvm::Error E = M.checkFusedModules(GM);
  REQUIRE(static_cast<bool>(E));
  CHECK(errorToString(std::move(E)) ==
        "fused module 'fc' (LinearReLU, node 'fc'): the object_type rules of "
        "its parts differ: Linear has onednn (object_type:Linear) but ReLU "
        "has none (no object_type rule); PyTorch 1.13 raises LookupError for "
        "this mapping: give Linear and ReLU the same object_type qconfig");
}

TEST_CASE("a ConvAdd2d resolves as its conv and its add still counts",
          "[quant][qconfig]") {
  GraphModule GM("Net");
  ModuleInfo &C = GM.addModule("conv1", "ConvAdd2d");
  C.addChild("0", "Conv2d");
  GM.addModule("conv2", "Conv2d");
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  Node *A = G.callModule("conv1", {X, X});
  A->setMeta("fused_calls", Argument::string("function::add"));
  Node *B = G.callModule("conv2", {A});
  Node *S = G.callFunction("add", {B, A});
  G.output(Argument(S));

  QConfigMapping Second;
  Second.setGlobal(preset("x86"))
      .setModuleNameObjectTypeOrder("", "add", 1, std::nullopt);
  requireOk(Second.checkFusedModules(GM));
  auto Map = Second.assign(GM);
  CHECK(qconfigDisplayName(Map["conv1"].QC) == "x86");
  CHECK(Map["add"].Rule == QConfigRule::ModuleNameObjectTypeOrder);
  CHECK(!Map["add"].QC);

  // A mapping that keeps the absorbed add float cannot apply to this graph.
  QConfigMapping First;
  First.setGlobal(preset("x86"))
      .setModuleNameObjectTypeOrder("", "add", 0, std::nullopt);
  llvm::Error E = First.checkFusedModules(GM);
  REQUIRE(static_cast<bool>(E));
  CHECK(errorToString(std::move(E)) ==
        "fused module 'conv1' (ConvAdd2d, node 'conv1') absorbed 'add' whose "
        "qconfig none (module_name_object_type_order::add:0) differs from its "
        "conv's x86 (global); fuse with this qconfig mapping to keep them "
        "apart");
}
