// Unit tests for the textual IR: exact printer output, round trips and
// parse errors with their locations.

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/IR/Printer.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using namespace qfx;

namespace {

TensorType f32(Shape S) { return TensorType{DType::F32, std::move(S), {}}; }

/// Parses \p Text, failing the test with the parser's message on error.
std::unique_ptr<GraphModule> parseOk(llvm::StringRef Text) {
  auto GM = parseGraphModule(Text, "test.qir");
  if (!GM)
    FAIL("unexpected parse error: " << errorToString(GM.takeError()));
  return std::move(*GM);
}

/// Parses \p Text, which must fail, and returns the message.
std::string parseError(llvm::StringRef Text) {
  auto GM = parseGraphModule(Text, "test.qir");
  if (GM)
    FAIL("expected a parse error for:\n" << Text.str());
  return errorToString(GM.takeError());
}

/// printNode into a string.
std::string nodeText(const Node &N) {
  std::string S;
  llvm::raw_string_ostream OS(S);
  printNode(N, OS);
  return OS.str();
}

/// Wraps graph nodes in a minimal module.
std::string inGraph(const std::string &Nodes) {
  return "graph_module M {\n  graph {\n" + Nodes + "  }\n}\n";
}

/// The Net example of docs/ir.md, built through the API.
std::unique_ptr<GraphModule> buildNet() {
  auto GM = std::make_unique<GraphModule>("Net");
  ModuleInfo &Conv = GM->addModule("conv1", "Conv2d");
  Conv.setAttr("out_channels", Argument::integer(40));
  Conv.setAttr("in_channels", Argument::integer(1));
  Conv.setAttr("kernel_size", Argument::ints({3, 3}));
  Conv.setTensor("weight", Tensor::declared(DType::F32, {40, 1, 3, 3}));
  Conv.setTensor("bias", Tensor::declared(DType::F32, {40}));
  ModuleInfo &Fc = GM->addModule("fc", "Linear");
  Fc.setAttr("in_features", Argument::integer(1000));
  Fc.setAttr("out_features", Argument::integer(10));
  Fc.setTensor("weight", Tensor::declared(DType::F32, {10, 1000}));
  Fc.setTensor(
      "bias", Tensor::fromFloats({10}, {0.5f, -0.25f, 0, 0, 0, 0, 0, 0, 0, 1}));

  Graph &G = GM->graph();
  Node *X = G.placeholder("x", f32({1, 1, 28, 28}));
  Node *C = G.callModule("conv1", {X});
  C->setType(f32({1, 40, 26, 26}));
  Node *R = G.callFunction("relu", {C});
  R->setType(f32({1, 40, 26, 26}));
  Node *P = G.callFunction("max_pool2d", {R},
                           {{"kernel_size", Argument::integer(2)},
                            {"stride", Argument::integer(2)}});
  P->setType(f32({1, 40, 13, 13}));
  Node *Rs = G.callMethod("reshape", {P, Argument::ints({-1, 1000})});
  Rs->setType(f32({1, 1000}));
  Node *F = G.callModule("fc", {Rs});
  F->setType(f32({1, 10}));
  G.output(F);
  return GM;
}

const char *NetText = R"(graph_module Net {
  module conv1 : Conv2d {in_channels = 1, kernel_size = [3, 3], out_channels = 40} {
    param weight : f32[40,1,3,3]
    param bias : f32[40]
  }
  module fc : Linear {in_features = 1000, out_features = 10} {
    param weight : f32[10,1000]
    param bias : f32[10] = dense<[0.5, -0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]>
  }

  graph {
    %x : f32[1,1,28,28] = placeholder[x]
    %conv1 : f32[1,40,26,26] = call_module[conv1](%x)
    %relu : f32[1,40,26,26] = call_function[relu](%conv1)
    %max_pool2d : f32[1,40,13,13] = call_function[max_pool2d](%relu, kernel_size=2, stride=2)
    %reshape : f32[1,1000] = call_method[reshape](%max_pool2d, [-1, 1000])
    %fc : f32[1,10] = call_module[fc](%reshape)
    %output = output[output](%fc)
  }
}
)";

/// A quantized graph: per-tensor activations, a per-channel weight, root
/// constants, nested container modules, scopes, annotations and every kind
/// of argument.
const char *QuantText =
    R"(graph_module QuantNet {a = none, b = [true, false], c = "s"} {
  param w_q : s8[2,1,1,1]<axis=0, scales=[0.1, 0.025], zero_points=[0, 0]> = dense<[-128, 127]>
  buffer idx : s64[3] = dense<[-9223372036854775808, 9223372036854775807, 0]>
  module layer1 : Sequential
  module layer1.0 : BasicBlock
  module layer1.0.conv1 : QuantizedConv2d {padding = [1, 1], scale = 0.05, zero_point = 128} {
    param weight : s8[2,1,1,1]<axis=0, scales=[0.1, 0.2], zero_points=[0, 0]> = dense<[1, -1]>
    param bias : f32[2] = dense<[0.1, -1e-07]>
    buffer act : u8[2]<scale=0.05, zero_point=128> = dense<[0, 255]>
    buffer count : s32[] = dense<[-2147483648]>
  }
  module "odd name" : Module
  module "odd name.x" : "Weird Kind"
  module 0 : Identity
  module 0.1 : Identity {big = 1e+20, f = [inf, -inf, nan], small = 5e-324}

  graph {
    %x : f32[1,1,4,4] = placeholder[x]
    %scale = get_attr[layer1.0.conv1.scale]
    %x_q : u8[1,1,4,4]<scale=0.05, zero_point=128> = call_function[quantize_per_tensor](%x, 0.05, 128, "quint8")
    %conv : u8[1,2,4,4]<scale=0.2, zero_point=0> = call_module[layer1.0.conv1](%x_q) scope("layer1.0") meta{qconfig = "per_channel", "rule id" = [1, -2.5, none, [true]]}
    %w : s8[2,1,1,1]<axis=0, scales=[0.1, 0.025], zero_points=[0, 0]> = get_attr[w_q]
    %deq : f32[1,2,4,4] = call_method[dequantize](%conv) scope("layer1.0")
    %cat = call_function["torch.cat[0]"]([%deq, [%deq, [none, -3]]], dim=-1, eps=1e-05, flag=false, "odd key"=[])
    %s = call_function[f]("tab\t newline\n quote\" backslash\\ nul\x00 high\xff")
    %e = call_function[g] meta{"" = nan, x = "s\n"}
    %output : f32[1,2,4,4] = output[output]([%cat, %deq])
  }
}
)";

} // namespace

//===----------------------------------------------------------------------===//
// formatFloat
//===----------------------------------------------------------------------===//

TEST_CASE("formatFloat spells floats that cannot read back as ints",
          "[ir][text]") {
  CHECK(formatFloat(1.0) == "1.0");
  CHECK(formatFloat(0.0) == "0.0");
  CHECK(formatFloat(-0.0) == "-0.0");
  CHECK(formatFloat(-2.0) == "-2.0");
  CHECK(formatFloat(0.05) == "0.05");
  CHECK(formatFloat(0.1) == "0.1");
  CHECK(formatFloat(1e-07) == "1e-07");
  CHECK(formatFloat(1e20) == "1e+20");
  CHECK(formatFloat(123456789.0) == "123456789.0");
  CHECK(formatFloat(5e-324) == "5e-324");
  CHECK(formatFloat(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(formatFloat(-std::numeric_limits<double>::infinity()) == "-inf");
  CHECK(formatFloat(std::numeric_limits<double>::quiet_NaN()) == "nan");
}

//===----------------------------------------------------------------------===//
// Printer
//===----------------------------------------------------------------------===//

TEST_CASE("the printer writes the documented Net example exactly",
          "[ir][text]") {
  auto GM = buildNet();
  CHECK(printToString(*GM) == NetText);
}

TEST_CASE("types print dtype, shape and quantization", "[ir][text]") {
  CHECK(formatType(f32({1, 40, 26, 26})) == "f32[1,40,26,26]");
  CHECK(formatType(TensorType{DType::S64, {}, {}}) == "s64[]");
  CHECK(formatType(
            TensorType{DType::U8, {2}, QuantParams::perTensor(0.05, 128)}) ==
        "u8[2]<scale=0.05, zero_point=128>");
  CHECK(
      formatType(TensorType{DType::S8,
                            {2, 3},
                            QuantParams::perChannel({0.1, 0.2}, {0, -1}, 0)}) ==
      "s8[2,3]<axis=0, scales=[0.1, 0.2], zero_points=[0, -1]>");
  CHECK(formatType(TensorType{DType::S32, {0}, {}}) == "s32[0]");
}

TEST_CASE("arguments print as values", "[ir][text]") {
  CHECK(formatArgument(Argument::none()) == "none");
  CHECK(formatArgument(Argument::integer(-7)) == "-7");
  CHECK(formatArgument(Argument::real(2)) == "2.0");
  CHECK(formatArgument(Argument::boolean(true)) == "true");
  CHECK(formatArgument(Argument::boolean(false)) == "false");
  CHECK(formatArgument(Argument::string("a\"b\\c\nd\te\x01\x80")) ==
        R"("a\"b\\c\nd\te\x01\x80")");
  CHECK(formatArgument(Argument::list({})) == "[]");
  CHECK(formatArgument(Argument::list(
            {Argument::ints({1, 2}), Argument::list({}), Argument::none()})) ==
        "[[1, 2], [], none]");
}

TEST_CASE("nodes print type, target, arguments and scope", "[ir][text]") {
  GraphModule GM;
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  CHECK(nodeText(*X) == "%x = placeholder[x]");
  X->setType(TensorType{DType::F32, {}, {}});
  CHECK(nodeText(*X) == "%x : f32[] = placeholder[x]");

  Node *W = G.getAttr("layer1.0.conv1.weight");
  CHECK(nodeText(*W) ==
        "%layer1_0_conv1_weight = get_attr[layer1.0.conv1.weight]");

  Node *Add = G.callFunction("add", {X, W}, {{"alpha", Argument::real(0.5)}});
  Add->setScope("layer1.0");
  CHECK(
      nodeText(*Add) ==
      R"(%add = call_function[add](%x, %layer1_0_conv1_weight, alpha=0.5) scope("layer1.0"))");

  // Empty argument lists are omitted whatever the opcode.
  Node *E = G.callFunction("empty", {});
  CHECK(nodeText(*E) == "%empty = call_function[empty]");
  Node *K = G.callMethod("view", {}, {{"size", Argument::ints({-1})}});
  CHECK(nodeText(*K) == "%view = call_method[view](size=[-1])");

  // Targets that are not qualified names are quoted.
  for (const char *T : {"a b", "", "a..b", ".a", "a.", "x[0]"}) {
    Node *Q = G.callFunction(T, {});
    INFO("target " << T);
    CHECK(llvm::StringRef(nodeText(*Q))
              .endswith("call_function[" + formatArgument(Argument::string(T)) +
                        "]"));
  }
  Node *Digits = G.callModule("0.1", {});
  CHECK(llvm::StringRef(nodeText(*Digits)).endswith("call_module[0.1]"));

  // Keyword names that are not identifiers are quoted too.
  Node *Kw = G.callFunction("f", {}, {{"a b", Argument::integer(1)}});
  CHECK(
      llvm::StringRef(nodeText(*Kw)).endswith(R"(call_function[f]("a b"=1))"));
}

TEST_CASE("nodes print annotations sorted, after the scope", "[ir][text]") {
  GraphModule GM;
  Graph &G = GM.graph();
  Node *X = G.placeholder("x");
  X->setMeta("qconfig", Argument::string("default"));
  CHECK(nodeText(*X) == R"(%x = placeholder[x] meta{qconfig = "default"})");

  Node *R = G.callFunction("relu", {X});
  R->setScope("m");
  R->setMeta("rule id",
             Argument::list({Argument::integer(1), Argument::real(0.5)}));
  R->setMeta("a", Argument::none());
  R->setMeta("", Argument::boolean(true));
  // Keys that are not identifiers are quoted, like attribute names.
  CHECK(
      nodeText(*R) ==
      R"(%relu = call_function[relu](%x) scope("m") meta{"" = true, a = none, "rule id" = [1, 0.5]})");

  // Without annotations there is no meta clause.
  X->eraseMeta("qconfig");
  CHECK(nodeText(*X) == "%x = placeholder[x]");
}

TEST_CASE("a module without declarations has no blank line", "[ir][text]") {
  GraphModule GM("M");
  CHECK(printToString(GM) == "graph_module M {\n  graph {\n  }\n}\n");

  GM.graph().output(Argument::none());
  CHECK(printToString(GM) ==
        "graph_module M {\n  graph {\n    %output = output[output](none)\n"
        "  }\n}\n");

  // A container module alone still gets the blank line.
  GM.addModule("seq", "Sequential");
  CHECK(printToString(GM) ==
        "graph_module M {\n  module seq : Sequential\n\n  graph {\n"
        "    %output = output[output](none)\n  }\n}\n");
}

TEST_CASE("root tensors print before modules, indented like modules",
          "[ir][text]") {
  GraphModule GM("M");
  GM.addModule("m", "Linear").setAttr("bias", Argument::boolean(false));
  GM.root().setTensor("c", Tensor::fromValues<int>(DType::S32, {2}, {{3, -4}}),
                      /*IsBuffer=*/true);
  CHECK(printToString(GM) == "graph_module M {\n"
                             "  buffer c : s32[2] = dense<[3, -4]>\n"
                             "  module m : Linear {bias = false}\n"
                             "\n"
                             "  graph {\n"
                             "  }\n"
                             "}\n");
}

TEST_CASE("tensor values are elided above the limit", "[ir][text]") {
  GraphModule GM("M");
  std::vector<float> V17(17, 1.5f);
  ModuleInfo &M = GM.addModule("m", "Linear");
  M.setTensor("big", Tensor::fromFloats({17}, V17));
  M.setTensor("small", Tensor::fromFloats({2}, {0.1f, 3.0f}));
  M.setTensor("none", Tensor::declared(DType::U8, {2}));

  std::string Default = printToString(GM);
  CHECK(llvm::StringRef(Default).contains("    param big : f32[17]\n"));
  CHECK(llvm::StringRef(Default).contains(
      "    param small : f32[2] = dense<[0.1, 3.0]>\n"));
  CHECK(llvm::StringRef(Default).contains("    param none : u8[2]\n"));

  PrintOptions All;
  All.ElideTensorsAbove = -1;
  std::string Full = printToString(GM, All);
  CHECK(llvm::StringRef(Full).contains(
      "param big : f32[17] = dense<[1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, "
      "1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5]>\n"));
  CHECK(llvm::StringRef(Full).contains("    param none : u8[2]\n"));

  PrintOptions NoValues;
  NoValues.ElideTensorsAbove = 0;
  CHECK(llvm::StringRef(printToString(GM, NoValues))
            .contains("    param small : f32[2]\n"));
}

TEST_CASE("f32 values print the shortest float spelling", "[ir][text]") {
  GraphModule GM("M");
  GM.root().setTensor("t", Tensor::fromFloats({3}, {0.1f, 1e-7f, 16777216.0f}));
  // Widened to double, 0.1f would print as 0.10000000149011612.
  CHECK(llvm::StringRef(printToString(GM))
            .contains("param t : f32[3] = dense<[0.1, 1e-07, 16777216.0]>"));
}

//===----------------------------------------------------------------------===//
// Parser and round trips
//===----------------------------------------------------------------------===//

TEST_CASE("the Net example parses into the graph it prints from",
          "[ir][text]") {
  auto GM = parseOk(NetText);
  CHECK(printToString(*GM) == NetText);

  CHECK(GM->root().kind() == "Net");
  ModuleInfo *Conv = GM->lookupModule("conv1");
  REQUIRE(Conv);
  CHECK(Conv->kind() == "Conv2d");
  REQUIRE(Conv->attr("kernel_size"));
  CHECK(*Conv->attr("kernel_size") == Argument::ints({3, 3}));
  const Tensor *W = GM->lookupTensor("conv1.weight");
  REQUIRE(W);
  CHECK_FALSE(W->hasData());
  CHECK(W->shape() == llvm::ArrayRef<int64_t>({40, 1, 3, 3}));
  const Tensor *B = GM->lookupTensor("fc.bias");
  REQUIRE(B);
  REQUIRE(B->hasData());
  CHECK(B->data<float>()[1] == -0.25f);
  CHECK(B->data<float>()[9] == 1.0f);

  Graph &G = GM->graph();
  REQUIRE(G.size() == 7);
  Node *X = G.lookup("x");
  Node *Pool = G.lookup("max_pool2d");
  REQUIRE(X);
  REQUIRE(Pool);
  CHECK(X->op() == OpCode::Placeholder);
  CHECK(X->users().size() == 1);
  CHECK(X->users()[0] == G.lookup("conv1"));
  CHECK(Pool->arg(0).getNode() == G.lookup("relu"));
  REQUIRE(Pool->kwarg("stride"));
  CHECK(*Pool->kwarg("stride") == Argument::integer(2));
  CHECK(G.lookup("reshape")->arg(1) == Argument::ints({-1, 1000}));
  CHECK(G.outputNode() == G.lookup("output"));
  CHECK_FALSE(G.outputNode()->type());
}

TEST_CASE("a quantized graph with every construct round-trips", "[ir][text]") {
  auto GM = parseOk(QuantText);
  CHECK(printToString(*GM) == QuantText);

  CHECK(GM->root().kind() == "QuantNet");
  REQUIRE(GM->root().attr("c"));
  CHECK(*GM->root().attr("c") == Argument::string("s"));
  REQUIRE(GM->lookupModule("0.1"));
  CHECK(GM->lookupModule("0.1")->kind() == "Identity");

  const Tensor *W = GM->lookupTensor("layer1.0.conv1.weight");
  REQUIRE(W);
  CHECK(W->dtype() == DType::S8);
  CHECK(W->quant() == QuantParams::perChannel({0.1, 0.2}, {0, 0}, 0));
  CHECK(W->data<int8_t>()[1] == -1);
  const Tensor *Idx = GM->lookupTensor("idx");
  REQUIRE(Idx);
  CHECK(Idx->data<int64_t>()[0] == std::numeric_limits<int64_t>::min());
  CHECK(Idx->data<int64_t>()[1] == std::numeric_limits<int64_t>::max());
  REQUIRE(GM->root().tensors().size() == 2);
  CHECK(GM->root().tensors()[1].IsBuffer);
  const Tensor *Act = GM->lookupTensor("layer1.0.conv1.act");
  REQUIRE(Act);
  CHECK(Act->data<uint8_t>()[1] == 255);
  CHECK(Act->quant() == QuantParams::perTensor(0.05, 128));

  Graph &G = GM->graph();
  Node *Conv = G.lookup("conv");
  REQUIRE(Conv);
  CHECK(Conv->scope() == "layer1.0");
  CHECK(Conv->target() == "layer1.0.conv1");
  REQUIRE(Conv->type());
  CHECK(Conv->type()->Quant == QuantParams::perTensor(0.2, 0));
  REQUIRE(Conv->meta("rule id"));
  CHECK(*Conv->meta("rule id") ==
        Argument::list({Argument::integer(1), Argument::real(-2.5),
                        Argument::none(),
                        Argument::list({Argument::boolean(true)})}));
  REQUIRE(G.lookup("e")->meta(""));
  CHECK(std::isnan(G.lookup("e")->meta("")->getFloat()));
  CHECK(G.lookup("deq")->meta().empty());
  Node *Cat = G.lookup("cat");
  REQUIRE(Cat);
  CHECK(Cat->target() == "torch.cat[0]");
  // %deq is used twice by %cat but appears once among its users.
  CHECK(G.lookup("deq")->users().size() == 2);
  CHECK(G.lookup("deq")->users()[0] == Cat);
  CHECK(G.lookup("s")->arg(0).getString() ==
        std::string("tab\t newline\n quote\" backslash\\ nul") + '\0' +
            " high\xff");
}

TEST_CASE("quoted module names and kinds round-trip", "[ir][text]") {
  auto GM = parseOk(QuantText);
  const auto &Children = GM->root().children();
  REQUIRE(Children.size() == 3);
  CHECK(Children[1].first == "odd name");
  CHECK(Children[1].second->kind() == "Module");
  ModuleInfo *X = GM->lookupModule("odd name.x");
  REQUIRE(X);
  CHECK(X->kind() == "Weird Kind");
}

TEST_CASE("tensors of every dtype round-trip exactly", "[ir][text]") {
  const float Inf = std::numeric_limits<float>::infinity();
  GraphModule GM("M");
  ModuleInfo &Root = GM.root();
  Root.setTensor("f", Tensor::fromFloats(
                          {2, 3}, {0.1f, -0.0f, 1e-7f, Inf, -Inf, 1.4e-45f}));
  Root.setTensor("n", Tensor::fromFloats({1}, {std::nanf("")}));
  Root.setTensor("s8",
                 Tensor::fromValues<int>(DType::S8, {3}, {{-128, 0, 127}}));
  Root.setTensor("u8", Tensor::fromValues<int>(DType::U8, {2}, {{0, 255}}));
  Root.setTensor("s32", Tensor::fromValues<int64_t>(DType::S32, {2},
                                                    {{INT32_MIN, INT32_MAX}}));
  Tensor S64(DType::S64, {2});
  S64.data<int64_t>()[0] = (int64_t(1) << 53) + 1; // not exact as a double
  S64.data<int64_t>()[1] = -5;
  Root.setTensor("s64", S64, /*IsBuffer=*/true);
  Root.setTensor("empty", Tensor(DType::F32, {0}));
  Root.setTensor("declared", Tensor::declared(DType::S32, {4, 5}));
  Tensor Q = Tensor::fromValues<int>(DType::U8, {}, std::vector<int>{7});
  Q.setQuant(QuantParams::perTensor(0.5, 3));
  Root.setTensor("q", Q);

  std::string Text = printToString(GM);
  CHECK(llvm::StringRef(Text).contains(
      "param f : f32[2,3] = dense<[0.1, -0.0, 1e-07, inf, -inf, 1e-45]>"));
  CHECK(llvm::StringRef(Text).contains(
      "buffer s64 : s64[2] = dense<[9007199254740993, -5]>"));
  CHECK(llvm::StringRef(Text).contains("param empty : f32[0] = dense<[]>"));
  CHECK(llvm::StringRef(Text).contains(
      "param q : u8[]<scale=0.5, zero_point=3> = dense<[7]>"));

  auto Back = parseOk(Text);
  CHECK(printToString(*Back) == Text);
  for (const NamedTensor &NT : Root.tensors()) {
    INFO("tensor " << NT.Name);
    const Tensor *T = Back->lookupTensor(NT.Name);
    REQUIRE(T);
    CHECK(T->hasData() == NT.Value.hasData());
    if (NT.Name == "n")
      CHECK(std::isnan(T->data<float>()[0]));
    else if (NT.Value.hasData())
      CHECK(T->identical(NT.Value));
  }
  CHECK(std::signbit(Back->lookupTensor("f")->data<float>()[1]));
  CHECK(Back->lookupTensor("declared")->shape() ==
        llvm::ArrayRef<int64_t>({4, 5}));
}

TEST_CASE("node annotations parse in any order and print canonically",
          "[ir][text]") {
  std::string Text =
      inGraph("    %x = placeholder[x] meta{qconfig = \"default\"}\n"
              "    %y = call_function[relu](%x) scope(\"m\") meta{\"\" = "
              "-0.0, a = [1, [none]], b = false}\n"
              "    %output = output[output](%y)\n");
  auto GM = parseOk(Text);
  CHECK(printToString(*GM) == Text);
  Node *Y = GM->graph().lookup("y");
  REQUIRE(Y);
  CHECK(Y->scope() == "m");
  REQUIRE(Y->meta().size() == 3);
  CHECK(std::signbit(Y->meta("")->getFloat()));
  CHECK(*Y->meta("b") == Argument::boolean(false));
  CHECK(GM->graph().lookup("output")->meta().empty());

  // Keys need not be sorted and `meta{}` is allowed: the printer sorts the
  // keys and leaves out empty annotations.
  auto Loose = parseOk(inGraph("    %x = placeholder[x] meta{b = 1, a = 2}\n"
                               "    %y = placeholder[y] meta{}\n"));
  CHECK(printToString(*Loose) ==
        inGraph("    %x = placeholder[x] meta{a = 2, b = 1}\n"
                "    %y = placeholder[y]\n"));
}

TEST_CASE("references may point forward and form cycles", "[ir][text]") {
  auto GM = parseOk(inGraph("    %a = call_function[f](%b, %a)\n"
                            "    %b = call_function[g]([%a])\n"));
  Graph &G = GM->graph();
  Node *A = G.lookup("a");
  Node *B = G.lookup("b");
  REQUIRE(A);
  REQUIRE(B);
  CHECK(A->arg(0).getNode() == B);
  CHECK(A->arg(1).getNode() == A);
  REQUIRE(B->users().size() == 1);
  CHECK(B->users()[0] == A);
  // Users are in node order: %a's own use comes before %b's.
  REQUIRE(A->users().size() == 2);
  CHECK(A->users()[0] == A);
  CHECK(A->users()[1] == B);
}

TEST_CASE("comments and free layout parse to the canonical form",
          "[ir][text]") {
  const char *Messy = "// leading comment\n"
                      "graph_module   M{module m:K{}   // empty attrs\n"
                      "module n : K {param = 1}\n"
                      "module o : K {param w: f32[ 2 ,3 ]}\n"
                      "graph{%x=placeholder[x]%y:f32[]=call_function[f](\n"
                      "%x,k = 2)scope ( \"m\" )\n"
                      "%e = call_function[g]()\n"
                      "%output=output[output](%y)}}";
  auto GM = parseOk(Messy);
  CHECK(printToString(*GM) == "graph_module M {\n"
                              "  module m : K\n"
                              "  module n : K {param = 1}\n"
                              "  module o : K {\n"
                              "    param w : f32[2,3]\n"
                              "  }\n"
                              "\n"
                              "  graph {\n"
                              "    %x = placeholder[x]\n"
                              "    %y : f32[] = call_function[f](%x, k=2) "
                              "scope(\"m\")\n"
                              "    %e = call_function[g]\n"
                              "    %output = output[output](%y)\n"
                              "  }\n"
                              "}\n");
}

TEST_CASE("lists nest up to the limit", "[ir][text]") {
  auto Nested = [](int Depth) {
    return inGraph("    %x = call_function[f](" + std::string(Depth, '[') +
                   std::string(Depth, ']') + ")\n");
  };
  auto GM = parseOk(Nested(64));
  CHECK(printToString(*GM) == Nested(64));
  CHECK(parseError(Nested(65)) ==
        "test.qir:3:91: lists are nested too deeply (more than 64 levels)");
  // Far deeper input must fail the same way instead of exhausting the stack.
  CHECK(llvm::StringRef(parseError(Nested(100000)))
            .contains("nested too deeply"));
}

//===----------------------------------------------------------------------===//
// Parse errors
//===----------------------------------------------------------------------===//

namespace {

const std::string RootOpen = "graph_module M {\n";
const std::string EmptyGraph = "  graph {\n  }\n}\n";

struct ErrorCase {
  std::string Text;
  const char *Message;
};

/// Each text must fail to parse with exactly its message.
void checkErrors(const std::vector<ErrorCase> &Cases) {
  for (const ErrorCase &C : Cases) {
    INFO("input:\n" << C.Text);
    CHECK(parseError(C.Text) == C.Message);
  }
}

} // namespace

TEST_CASE("parse errors in the file structure", "[ir][text]") {
  checkErrors({
      {"", "test.qir:1:1: expected 'graph_module', found end of input"},
      {"  // only a comment\n",
       "test.qir:2:1: expected 'graph_module', found end of input"},
      {"graph_modul M {", "test.qir:1:1: expected 'graph_module', found "
                          "'graph_modul'"},
      {"graph_module {", "test.qir:1:14: expected module kind after "
                         "'graph_module', found '{'"},
      {"graph_module M\n", "test.qir:2:1: expected '{' after module kind, "
                           "found end of input"},
      {RootOpen + "}\n",
       "test.qir:2:1: expected 'param', 'buffer', 'module' or "
       "'graph', found '}'"},
      {RootOpen + "  graph {\n  }\n",
       "test.qir:4:1: expected '}' after the graph "
       "block, found end of input"},
      {RootOpen + EmptyGraph + "}",
       "test.qir:5:1: expected end of input after the "
       "final '}', found '}'"},
      {RootOpen + EmptyGraph + "trailing",
       "test.qir:5:1: expected end of input after "
       "the final '}', found 'trailing'"},
      {RootOpen + "  graph {\n    x = placeholder[x]\n  }\n}\n",
       "test.qir:3:5: expected a node ('%name = ...') or '}', found 'x'"},
  });
}

TEST_CASE("parse errors in modules and tensors", "[ir][text]") {
  checkErrors({
      {RootOpen + "  module a.b : K\n" + EmptyGraph,
       "test.qir:2:10: module 'a.b' declared before its parent 'a'"},
      {RootOpen + "  module a : K\n  module a : L\n" + EmptyGraph,
       "test.qir:3:10: module 'a' is already declared"},
      {RootOpen + "  module a. : K\n" + EmptyGraph,
       "test.qir:2:10: expected a name segment after '.' in 'a.'"},
      {RootOpen + "  module a K\n" + EmptyGraph,
       "test.qir:2:12: expected ':' after module name, found 'K'"},
      {RootOpen + "  module a : K {p = %x}\n" + EmptyGraph,
       "test.qir:2:21: node reference '%x' is not allowed in a module "
       "attribute"},
      {RootOpen + "  module a : K {p = 1, p = 2}\n" + EmptyGraph,
       "test.qir:2:24: duplicate attribute 'p'"},
      {RootOpen + "  module a : K {p = 1 q = 2}\n" + EmptyGraph,
       "test.qir:2:23: expected ',' or '}' in attribute dictionary, found "
       "'q'"},
      {RootOpen + "  module a : K {\n    weight : f32[1]\n  }\n" + EmptyGraph,
       "test.qir:3:5: expected 'param', 'buffer' or '}' in module 'a', found "
       "'weight'"},
      {RootOpen + "  param w : f32[1]\n  param w : f32[2]\n" + EmptyGraph,
       "test.qir:3:9: tensor 'w' is already declared in the root module"},
      {RootOpen + "  param w : f32[2,2] = dense<[1.0, 2.0, 3.0]>\n" +
           EmptyGraph,
       "test.qir:2:24: expected 4 values for f32[2,2], found 3"},
      {RootOpen + "  param w : u8[2] = dense<[1, 256]>\n" + EmptyGraph,
       "test.qir:2:31: value 256 is out of range for u8"},
      {RootOpen + "  param w : s8[1] = dense<[-129]>\n" + EmptyGraph,
       "test.qir:2:28: value -129 is out of range for s8"},
      {RootOpen + "  param w : s8[1] = dense<[1.5]>\n" + EmptyGraph,
       "test.qir:2:28: expected an integer value for dtype s8, found '1.5'"},
      {RootOpen + "  param w : f32[1] = dense<[1e39]>\n" + EmptyGraph,
       "test.qir:2:29: float '1e39' is out of range for f32"},
      {RootOpen + "  param w : f32[1] = 1.0\n" + EmptyGraph,
       "test.qir:2:22: expected 'dense' after '=', found '1.0'"},
      {RootOpen + "  param w : f32[1] = dense<[1.0]\n" + EmptyGraph,
       "test.qir:3:3: expected '>' after tensor values, found 'graph'"},
      {RootOpen + "  param w : f32[-1]\n" + EmptyGraph,
       "test.qir:2:9: tensor 'w': negative extent -1 in shape [-1]"},
      {RootOpen + "  param w : f32[0,4611686018427387904,4] = dense<[]>\n" +
           EmptyGraph,
       "test.qir:2:9: tensor 'w': shape [0,4611686018427387904,4] has too "
       "many elements (limit 1099511627776)"},
  });
}

TEST_CASE("parse errors in types", "[ir][text]") {
  checkErrors({
      {RootOpen + "  graph {\n    %x : f16[1] = placeholder[x]\n  }\n}\n",
       "test.qir:3:10: unknown dtype 'f16'"},
      // The JSON loader's bound: what parses can be saved and loaded again.
      {RootOpen + "  graph {\n    %x : f32[1000000000000,1000000000000] = "
                  "placeholder[x]\n  }\n}\n",
       "test.qir:3:10: value '%x': shape [1000000000000,1000000000000] has "
       "too many elements (limit 1099511627776)"},
      {RootOpen + "  graph {\n    %x : f32[0,4611686018427387904,4] = "
                  "placeholder[x]\n  }\n}\n",
       "test.qir:3:10: value '%x': shape [0,4611686018427387904,4] has too "
       "many elements (limit 1099511627776)"},
      {RootOpen + "  graph {\n    %x : f32[2,-1] = placeholder[x]\n  }\n}\n",
       "test.qir:3:10: value '%x': negative extent -1 in shape [2,-1]"},
      {RootOpen + "  graph {\n    %x : f32[1 2] = placeholder[x]\n  }\n}\n",
       "test.qir:3:16: expected ',' or ']' in shape, found '2'"},
      {RootOpen + "  graph {\n    %x : f32[1,] = placeholder[x]\n  }\n}\n",
       "test.qir:3:16: expected an integer extent in shape, found ']'"},
      {RootOpen + "  graph {\n    %x : u8[1]<scale=0.1> = placeholder[x]\n"
                  "  }\n}\n",
       "test.qir:3:25: expected ',' after scale, found '>'"},
      {RootOpen + "  graph {\n    %x : u8[1]<zero_point=1> = placeholder[x]\n"
                  "  }\n}\n",
       "test.qir:3:16: expected 'scale' or 'axis' in quantization parameters, "
       "found 'zero_point'"},
  });
}

TEST_CASE("parse errors in nodes and references", "[ir][text]") {
  checkErrors({
      {RootOpen + "  graph {\n    %x = call_modul[m]\n  }\n}\n",
       "test.qir:3:10: unknown opcode 'call_modul'"},
      {RootOpen + "  graph {\n    %x = placeholder[]\n  }\n}\n",
       "test.qir:3:22: expected a target name, found ']'"},
      {RootOpen + "  graph {\n    %x placeholder[x]\n  }\n}\n",
       "test.qir:3:8: expected ':' or '=' after value name, found "
       "'placeholder'"},
      {RootOpen + "  graph {\n    %y = call_function[relu](%z)\n  }\n}\n",
       "test.qir:3:30: use of undefined value '%z'"},
      {RootOpen + "  graph {\n    %y = call_function[f]([1, [%z]])\n  }\n}\n",
       "test.qir:3:32: use of undefined value '%z'"},
      {RootOpen +
           "  graph {\n    %x = placeholder[x]\n    %x = placeholder[y]\n"
           "  }\n}\n",
       "test.qir:4:5: redefinition of value '%x' (first defined at line 3)"},
      {RootOpen + "  graph {\n    %y = call_function[f](a=1, 2)\n  }\n}\n",
       "test.qir:3:32: positional argument after keyword argument"},
      {RootOpen + "  graph {\n    %y = call_function[f](a=1, a=2)\n  }\n}\n",
       "test.qir:3:32: duplicate keyword argument 'a'"},
      {RootOpen + "  graph {\n    %y = call_function[f](1 2)\n  }\n}\n",
       "test.qir:3:29: expected ',' or ')' in argument list, found '2'"},
      {RootOpen + "  graph {\n    %y = call_function[f](1,)\n  }\n}\n",
       "test.qir:3:29: expected a value, found ')'"},
      {RootOpen + "  graph {\n    %y = call_function[f](foo)\n  }\n}\n",
       "test.qir:3:27: expected a value, found 'foo'"},
      {RootOpen + "  graph {\n    %y = call_function[f] scope(m)\n  }\n}\n",
       "test.qir:3:33: expected a string scope, found 'm'"},
  });
}

TEST_CASE("parse errors in node annotations", "[ir][text]") {
  auto WithNode = [](const std::string &Line) {
    return RootOpen + "  graph {\n    " + Line + "\n  }\n}\n";
  };
  checkErrors({
      {WithNode("%y = placeholder[y] meta{a = %y}"),
       "test.qir:3:34: node annotations cannot refer to nodes"},
      {WithNode("%y = placeholder[y] meta{a = [1, [%y]]}"),
       "test.qir:3:39: node annotations cannot refer to nodes"},
      {WithNode("%y = placeholder[y] meta{a = 1, a = 2}"),
       "test.qir:3:37: duplicate annotation 'a'"},
      {WithNode("%y = placeholder[y] meta(a = 1)"),
       "test.qir:3:29: expected '{' after 'meta', found '('"},
      {WithNode("%y = placeholder[y] meta{a = 1 b = 2}"),
       "test.qir:3:36: expected ',' or '}' in node annotations, found 'b'"},
      {WithNode("%y = placeholder[y] meta{a 1}"),
       "test.qir:3:32: expected '=' after annotation name, found '1'"},
      {WithNode("%y = placeholder[y] meta{1 = 2}"),
       "test.qir:3:30: expected annotation name, found '1'"},
      {WithNode("%y = placeholder[y] meta{a = 1} scope(\"m\")"),
       "test.qir:3:37: expected a node ('%name = ...') or '}', found "
       "'scope'"},
  });
}

TEST_CASE("parse errors in literals and characters", "[ir][text]") {
  checkErrors({
      {RootOpen + "  graph {\n    %y = call_function[f](9223372036854775808)\n"
                  "  }\n}\n",
       "test.qir:3:27: integer '9223372036854775808' is out of range"},
      {RootOpen + "  graph {\n    %y = call_function[f](-9223372036854775809)\n"
                  "  }\n}\n",
       "test.qir:3:27: integer '-9223372036854775809' is out of range"},
      {RootOpen + "  graph {\n    %y = call_function[f](1e999)\n  }\n}\n",
       "test.qir:3:27: float '1e999' is out of range"},
      {RootOpen + "  graph {\n    %y = call_function[f](1abc)\n  }\n}\n",
       "test.qir:3:27: invalid number '1abc'"},
      {RootOpen + "  graph {\n    %y = call_function[f](1.)\n  }\n}\n",
       "test.qir:3:27: invalid number '1.'"},
      {RootOpen + "  graph {\n    %y = call_function[f](-x)\n  }\n}\n",
       "test.qir:3:27: expected a number after '-'"},
      {RootOpen + "  graph {\n    %y = call_function[f](\"abc)\n  }\n}\n",
       "test.qir:3:27: unterminated string"},
      {RootOpen + "  graph {\n    %y = call_function[f](\"abc",
       "test.qir:3:27: unterminated string"},
      {RootOpen + "  graph {\n    %y = call_function[f](\"a\\q\")\n  }\n}\n",
       "test.qir:3:29: invalid escape sequence '\\q'"},
      {RootOpen + "  graph {\n    %y = call_function[f](\"a\\x4\")\n  }\n}\n",
       "test.qir:3:29: expected two hex digits after '\\x'"},
      {RootOpen + "  graph {\n    %y = call_function[f](%)\n  }\n}\n",
       "test.qir:3:27: expected a value name after '%'"},
      {RootOpen + "  graph {\n    %y = placeholder[y] $\n  }\n}\n",
       "test.qir:3:25: unexpected character '$'"},
      {RootOpen + "  graph {\n    %y = placeholder[y] \x01\n  }\n}\n",
       "test.qir:3:25: unexpected character byte 0x01"},
      {RootOpen + "  graph {\n    %y = placeholder[y] /\n  }\n}\n",
       "test.qir:3:25: unexpected character '/'"},
  });
}

TEST_CASE("the parser reports every truncation and survives corruption",
          "[ir][text]") {
  for (const char *Source : {NetText, QuantText}) {
    std::string Text = Source;
    // Every prefix that stops before the final '}' is incomplete.
    size_t Last = Text.rfind('}');
    for (size_t N = 0; N <= Last; ++N) {
      INFO("prefix of " << N << " bytes");
      CHECK(llvm::StringRef(parseError(Text.substr(0, N)))
                .startswith("test.qir:"));
    }
    // Corrupting any byte either fails with a located error or yields a
    // module whose printed form is stable.
    for (size_t I = 0; I < Text.size(); ++I) {
      for (char C : {'"', '[', '%', '\\', '\0', '}', 'x', '.', '-'}) {
        std::string Bad = Text;
        Bad[I] = C;
        auto GM = parseGraphModule(Bad, "test.qir");
        if (!GM) {
          std::string Msg = errorToString(GM.takeError());
          INFO(Msg);
          CHECK(llvm::StringRef(Msg).startswith("test.qir:"));
          continue;
        }
        std::string Once = printToString(**GM);
        CHECK(printToString(*parseOk(Once)) == Once);
      }
    }
  }
}
