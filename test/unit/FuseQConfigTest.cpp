//===- FuseQConfigTest.cpp - Fusion under a qconfig mapping vs PyTorch ----===//

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/FileIO.h"
#include "qfx/Transforms/Pass.h"

#include "llvm/ADT/StringRef.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>

using namespace qfx;

namespace {

/// The models of make_fuse_qconfig_golden.py, traced as PyTorch names them.
const char *const Residual = R"(graph_module M {
  module conv1 : Conv2d {in_channels = 2, kernel_size = [1, 1], out_channels = 2} {
    param weight : f32[2,2,1,1] = dense<[0.5, -0.25, 0.75, 1.0]>
    param bias : f32[2] = dense<[0.1, -0.2]>
  }
  module relu : ReLU
  module conv2 : Conv2d {in_channels = 2, kernel_size = [1, 1], out_channels = 2} {
    param weight : f32[2,2,1,1] = dense<[-0.5, 0.25, 1.0, 0.5]>
    param bias : f32[2] = dense<[0.0, 0.3]>
  }
  graph {
    %x : f32[1,2,4,4] = placeholder[x]
    %conv1 : f32[1,2,4,4] = call_module[conv1](%x)
    %add : f32[1,2,4,4] = call_function[add](%conv1, %x)
    %relu : f32[1,2,4,4] = call_module[relu](%add)
    %conv2 : f32[1,2,4,4] = call_module[conv2](%relu)
    %add_1 : f32[1,2,4,4] = call_function[add](%conv2, %relu)
    %output = output[output](%add_1)
  }
})";

const char *const LinearReLU = R"(graph_module M {
  module fc : Linear {in_features = 2, out_features = 2} {
    param weight : f32[2,2] = dense<[0.5, -0.25, 0.75, 1.0]>
    param bias : f32[2] = dense<[0.1, -0.2]>
  }
  module relu : ReLU
  graph {
    %x : f32[2,2] = placeholder[x]
    %fc : f32[2,2] = call_module[fc](%x)
    %relu : f32[2,2] = call_module[relu](%fc)
    %output = output[output](%relu)
  }
})";

const char *const ConvBnReLU = R"(graph_module M {
  module conv1 : Conv2d {dilation = [1, 1], groups = 1, in_channels = 2, kernel_size = [1, 1], out_channels = 2, padding = [0, 0], stride = [1, 1]} {
    param weight : f32[2,2,1,1] = dense<[0.5, -0.25, 0.75, 1.0]>
    param bias : f32[2] = dense<[0.1, -0.2]>
  }
  module bn : BatchNorm2d {eps = 1e-05, momentum = 0.1, num_features = 2} {
    param weight : f32[2] = dense<[2.0, 0.5]>
    param bias : f32[2] = dense<[0.25, 1.0]>
    buffer running_mean : f32[2] = dense<[1.0, -1.0]>
    buffer running_var : f32[2] = dense<[4.0, 0.25]>
  }
  module relu : ReLU
  graph {
    %x : f32[1,2,4,4] = placeholder[x]
    %conv1 : f32[1,2,4,4] = call_module[conv1](%x)
    %bn : f32[1,2,4,4] = call_module[bn](%conv1)
    %relu : f32[1,2,4,4] = call_module[relu](%bn)
    %output = output[output](%relu)
  }
})";

/// The text of golden model \p Name.
const char *modelText(const std::string &Name) {
  if (Name == "residual")
    return Residual;
  if (Name == "linear_relu")
    return LinearReLU;
  REQUIRE(Name == "conv_bn_relu");
  return ConvBnReLU;
}

/// Name in the first "<class 'a.b.Name'>" after \p After in \p Message.
std::string className(llvm::StringRef Message, llvm::StringRef After) {
  llvm::StringRef Rest = Message.substr(Message.find(After));
  llvm::StringRef Path = Rest.split("<class '").second.split("'>").first;
  return Path.rsplit('.').second.str();
}

nlohmann::json loadGolden() {
  std::string Path =
      std::string(QFX_TEST_DATA_DIR) + "/fuse_qconfig/golden.json";
  llvm::Expected<std::string> Text = readFile(Path);
  if (!Text)
    FAIL(errorToString(Text.takeError()));
  return nlohmann::json::parse(*Text);
}

/// The node a fuse remark ("fused conv1 + add + relu into ...") says
/// absorbed each op, keyed by the op's name.
std::map<std::string, std::string> absorbedInto(const PassContext &Ctx) {
  std::map<std::string, std::string> Out;
  for (const Remark &R : Ctx.Remarks) {
    llvm::StringRef Msg = R.Message;
    if (R.Pass != "fuse" || !Msg.consume_front("fused "))
      continue;
    llvm::StringRef Names = Msg.split(" into ").first;
    llvm::SmallVector<llvm::StringRef, 4> Parts;
    Names.split(Parts, " + ");
    for (llvm::StringRef P : Parts)
      Out[P.str()] = R.Node;
  }
  return Out;
}

/// Fails the test on an error.
void requireOk(llvm::Error E) {
  if (E)
    FAIL(errorToString(std::move(E)));
}

/// "quantized" when convert gave \p N an int8 result, else "float".
std::string convertedKind(const Node &N) {
  bool Int8 = N.type() &&
              (N.type()->Dtype == DType::U8 || N.type()->Dtype == DType::S8);
  return Int8 ? "quantized" : "float";
}

/// Ops whose converted form differs from PyTorch's for a reason outside
/// fusion. PyTorch 1.13 gives a relu that reads a float add the output
/// dtype quint8 of its qconfig, yet observes nothing there (relu shares its
/// input's observer, and the add has none); a conv reading that relu then
/// finds its input "already quint8", gets no input observer and converts to
/// a reference (float) conv, and so does an add downstream. qfx observes the
/// conv's input and quantizes it.
const std::set<std::string> &knownDifferences(const std::string &Case) {
  static const std::map<std::string, std::set<std::string>> Known = {
      {"residual_add_none_by_object_type", {"conv2"}},
      {"residual_add0_none_by_order", {"conv2", "add_1"}}};
  static const std::set<std::string> None;
  auto It = Known.find(Case);
  return It == Known.end() ? None : It->second;
}

std::string metaString(const Node &N, llvm::StringRef Key) {
  const Argument *A = N.meta(Key);
  return A && A->isString() ? A->getString() : std::string("<unset>");
}

} // namespace

TEST_CASE("fusion under a qconfig mapping decides as PyTorch 1.13",
          "[fuse][qconfig]") {
  nlohmann::json Golden = loadGolden();
  REQUIRE(Golden.size() >= 12);
  for (const auto &[Name, Case] : Golden.items()) {
    DYNAMIC_SECTION(Name) {
      std::string Model = Case["model"];
      auto GM = parseGraphModule(modelText(Model), Name);
      if (!GM)
        FAIL(errorToString(GM.takeError()));
      auto Mapping = QConfigMapping::fromJson(Case["mapping"].dump(), Name);
      if (!Mapping)
        FAIL(errorToString(Mapping.takeError()));
      PassContext Ctx;
      llvm::Error E =
          prepareGraph(**GM, *Mapping, Case["qat"].get<bool>(), &Ctx);
      if (Case.contains("error")) {
        // PyTorch raises LookupError naming the fused type and the part
        // whose rule differs; qfx's error names both as well.
        REQUIRE(static_cast<bool>(E));
        std::string Msg = errorToString(std::move(E));
        std::string Want = Case["error"];
        INFO("PyTorch: " << Want << "\nqfx: " << Msg);
        REQUIRE(llvm::StringRef(Want).startswith("LookupError: "));
        std::string Fused = className(Want, "module types in");
        std::string Part = className(Want, "offending type");
        CHECK(Msg.find("(" + Fused + ", node '") != std::string::npos);
        CHECK(Msg.find(" but " + Part + " has ") != std::string::npos);
        CHECK(Msg.find("LookupError") != std::string::npos);
        continue;
      }
      if (E)
        FAIL(errorToString(std::move(E)));
      const Graph &G = (*GM)->graph();
      std::map<std::string, std::string> Absorbed = absorbedInto(Ctx);
      // Every PyTorch fusion happens in qfx too.
      for (const auto &[Path, Kind] : Case["fused"].items()) {
        const ModuleInfo *M = (*GM)->lookupModule(Path);
        REQUIRE(M);
        CHECK(M->kind() == Kind.get<std::string>());
      }
      // Each op gets PyTorch's qconfig: on its own node, or on the node of
      // the qfx-only fusion (conv + add) that absorbed it, which qfx makes
      // only when that changes no op's qconfig.
      std::map<std::string, std::string> QfxQConfig;
      for (const auto &[Op, QC] : Case["qconfig"].items()) {
        const Node *N = G.lookup(Op);
        if (!N) {
          auto It = Absorbed.find(Op);
          REQUIRE(It != Absorbed.end());
          N = G.lookup(It->second);
        }
        REQUIRE(N);
        INFO("op " << Op << " (node " << N->name().str() << ")");
        CHECK(metaString(*N, "qconfig") == QC.get<std::string>());
        QfxQConfig[Op] = metaString(*N, "qconfig");
      }
      // What convert makes of each op: quantized (an int8 result) or float.
      Tensor In(DType::F32,
                Model == "linear_relu" ? Shape{2, 2} : Shape{1, 2, 4, 4});
      for (int64_t I = 0; I < In.numElements(); ++I)
        In.data<float>()[I] = static_cast<float>(I % 7) * 0.3f - 0.9f;
      if (auto Out = runObserved(**GM, {In}); !Out)
        FAIL(errorToString(Out.takeError()));
      auto Ref = convert_to_reference_fx(**GM);
      if (!Ref)
        FAIL(errorToString(Ref.takeError()));
      const std::set<std::string> &Known = knownDifferences(Name);
      for (const auto &[Op, Kind] : Case["converted"].items()) {
        if (!Case["qconfig"].contains(Op) || Known.count(Op))
          continue; // A PyTorch-only name (add_relu), or a known difference.
        auto It = Absorbed.find(Op);
        const Node *N = (*Ref)->graph().lookup(
            (*Ref)->graph().lookup(Op) || It == Absorbed.end() ? Op
                                                               : It->second);
        REQUIRE(N);
        INFO("op " << Op << " (node " << N->name().str() << ")");
        CHECK(convertedKind(*N) == Kind.get<std::string>());
      }
    }
  }
}

TEST_CASE("the explain remarks say why a conv -> add did not fuse",
          "[fuse][qconfig]") {
  auto GM = parseGraphModule(Residual, "residual");
  REQUIRE(static_cast<bool>(GM));
  auto Mapping = QConfigMapping::fromJson(
      R"({"": "x86", "object_type": [["add", null]]})", "mapping");
  REQUIRE(static_cast<bool>(Mapping));
  PassContext Ctx;
  requireOk(prepareGraph(**GM, *Mapping, /*QAT=*/false, &Ctx));
  std::vector<std::string> Fuse, Propagation;
  for (const Remark &R : Ctx.Remarks) {
    if (R.Pass == "fuse")
      Fuse.push_back(R.Node + ": " + R.Message);
    if (R.Pass == "qconfig-propagation")
      Propagation.push_back(R.Node + ": " + R.Message);
  }
  CHECK(Fuse == std::vector<std::string>{
                    "conv1: not fused (conv-add-relu): add has qconfig none "
                    "(object_type:add) but conv1 has x86 (global)",
                    "conv2: not fused (conv-add): add_1 has qconfig none "
                    "(object_type:add) but conv2 has x86 (global)"});
  CHECK(Propagation ==
        std::vector<std::string>{"conv1: qconfig x86 by global",
                                 "add: qconfig none by object_type:add",
                                 "relu: qconfig x86 by global",
                                 "conv2: qconfig x86 by global",
                                 "add_1: qconfig none by object_type:add"});
}

TEST_CASE("a fused LinearReLU takes the Linear rule when the parts agree",
          "[fuse][qconfig]") {
  auto GM = parseGraphModule(LinearReLU, "linear_relu");
  REQUIRE(static_cast<bool>(GM));
  auto Mapping = QConfigMapping::fromJson(
      R"({"": "x86", "object_type": [["Linear", "onednn"], ["ReLU", "onednn"]]})",
      "mapping");
  REQUIRE(static_cast<bool>(Mapping));
  PassContext Ctx;
  requireOk(prepareGraph(**GM, *Mapping, /*QAT=*/false, &Ctx));
  std::vector<std::string> Messages;
  for (const Remark &R : Ctx.Remarks)
    if (R.Pass == "qconfig-propagation")
      Messages.push_back(R.Node + ": " + R.Message);
  CHECK(Messages ==
        std::vector<std::string>{
            "fc: qconfig onednn by object_type:Linear (the rule for its "
            "first part applies to the fused LinearReLU)"});
}
