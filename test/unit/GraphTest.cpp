//===- GraphTest.cpp - Arguments, nodes, use lists and graph editing ------===//

#include "qfx/IR/Graph.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace qfx;

namespace {

std::vector<std::string> nodeNames(const Graph &G) {
  std::vector<std::string> R;
  for (const Node &N : G)
    R.push_back(N.name().str());
  return R;
}

std::vector<std::string> namesOf(llvm::ArrayRef<Node *> Nodes) {
  std::vector<std::string> R;
  for (const Node *N : Nodes)
    R.push_back(N->name().str());
  return R;
}

std::vector<std::string> userNames(const Node *N) {
  return namesOf(N->users());
}

using Names = std::vector<std::string>;

/// The message of \p E, or "" for success (consumes \p E either way).
std::string errorText(llvm::Error E) {
  return E ? errorToString(std::move(E)) : std::string();
}

} // namespace

//===----------------------------------------------------------------------===//
// Opcodes and arguments
//===----------------------------------------------------------------------===//

TEST_CASE("opcode names round-trip", "[ir][graph]") {
  const OpCode All[] = {OpCode::Placeholder, OpCode::GetAttr,
                        OpCode::CallModule,  OpCode::CallFunction,
                        OpCode::CallMethod,  OpCode::Output};
  const char *Expected[] = {"placeholder",   "get_attr",    "call_module",
                            "call_function", "call_method", "output"};
  for (size_t I = 0; I < 6; ++I) {
    CHECK(opcodeName(All[I]) == Expected[I]);
    REQUIRE(parseOpCode(Expected[I]).has_value());
    CHECK(*parseOpCode(Expected[I]) == All[I]);
  }
  CHECK_FALSE(parseOpCode("call").has_value());
  CHECK_FALSE(parseOpCode("").has_value());
  CHECK_FALSE(parseOpCode("Output").has_value());
}

TEST_CASE("argument kinds and accessors", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");

  Argument None;
  CHECK(None.isNone());
  CHECK(None.kind() == Argument::Kind::None);
  CHECK(Argument::none().isNone());

  Argument Ref(X);
  CHECK(Ref.isNode());
  CHECK(Ref.kind() == Argument::Kind::NodeRef);
  CHECK(Ref.getNode() == X);
  CHECK_FALSE(Ref.isNone());

  Argument I = Argument::integer(-7);
  CHECK(I.isInt());
  CHECK(I.kind() == Argument::Kind::Int);
  CHECK(I.getInt() == -7);
  CHECK_FALSE(I.isFloat());
  CHECK_FALSE(I.isBool());

  Argument F = Argument::real(2.5);
  CHECK(F.isFloat());
  CHECK(F.kind() == Argument::Kind::Float);
  CHECK(F.getFloat() == 2.5);
  CHECK_FALSE(F.isInt());

  Argument B = Argument::boolean(true);
  CHECK(B.isBool());
  CHECK(B.kind() == Argument::Kind::Bool);
  CHECK(B.getBool());
  CHECK_FALSE(B.isInt());
  CHECK_FALSE(Argument::boolean(false).getBool());

  Argument S = Argument::string("relu");
  CHECK(S.isString());
  CHECK(S.kind() == Argument::Kind::String);
  CHECK(S.getString() == "relu");

  Argument L = Argument::list({Argument::integer(1), Argument(X)});
  CHECK(L.isList());
  CHECK(L.kind() == Argument::Kind::List);
  REQUIRE(L.getList().size() == 2);
  CHECK(L.getList()[0].getInt() == 1);
  CHECK(L.getList()[1].getNode() == X);

  Argument Ints = Argument::ints({3, -1, 0});
  REQUIRE(Ints.isList());
  REQUIRE(Ints.getList().size() == 3);
  CHECK(Ints.getList()[1].isInt());
  CHECK(Ints.getList()[1].getInt() == -1);
  CHECK(Argument::ints({}).isList());
  CHECK(Argument::ints({}).getList().empty());
}

TEST_CASE("argument equality", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");

  CHECK(Argument() == Argument::none());
  CHECK(Argument::integer(3) == Argument::integer(3));
  CHECK(Argument::integer(3) != Argument::integer(4));
  // Different kinds never compare equal, even with the same value.
  CHECK(Argument::integer(1) != Argument::boolean(true));
  CHECK(Argument::integer(0) != Argument::boolean(false));
  CHECK(Argument::integer(1) != Argument::real(1.0));
  CHECK(Argument::integer(0) != Argument::none());
  CHECK(Argument::string("") != Argument::none());
  CHECK(Argument::list({}) != Argument::none());
  CHECK(Argument::boolean(true) == Argument::boolean(true));
  CHECK(Argument::boolean(true) != Argument::boolean(false));
  CHECK(Argument::string("a") == Argument::string("a"));
  CHECK(Argument::string("a") != Argument::string("b"));

  // Floats compare bitwise: NaN equals NaN, 0.0 differs from -0.0.
  double NaN = std::numeric_limits<double>::quiet_NaN();
  CHECK(Argument::real(NaN) == Argument::real(NaN));
  CHECK(Argument::real(0.0) != Argument::real(-0.0));
  CHECK(Argument::real(0.1) == Argument::real(0.1));
  CHECK(Argument::real(0.1) != Argument::real(0.2));
  CHECK(Argument::real(INFINITY) == Argument::real(INFINITY));

  // Nodes compare by identity.
  CHECK(Argument(X) == Argument(X));
  CHECK(Argument(X) != Argument(Y));

  // Lists compare structurally, recursively.
  auto Nested = [&](int64_t V, Node *N) {
    return Argument::list({Argument::integer(1),
                           Argument::list({Argument::real(NaN), Argument(N),
                                           Argument::ints({V, 2})}),
                           Argument::string("s")});
  };
  CHECK(Nested(5, X) == Nested(5, X));
  CHECK(Nested(5, X) != Nested(6, X));
  CHECK(Nested(5, X) != Nested(5, Y));
  CHECK(Argument::ints({1, 2}) != Argument::ints({1, 2, 3}));
  CHECK(Argument::ints({1, 2}) != Argument::ints({2, 1}));
  CHECK(Argument::ints({}) == Argument::list({}));
}

TEST_CASE("getIntList", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  auto Ints = Argument::ints({4, -2, 0}).getIntList();
  REQUIRE(Ints.has_value());
  CHECK(*Ints == std::vector<int64_t>{4, -2, 0});

  auto Empty = Argument::list({}).getIntList();
  REQUIRE(Empty.has_value());
  CHECK(Empty->empty());

  CHECK_FALSE(Argument::integer(3).getIntList().has_value());
  CHECK_FALSE(Argument::none().getIntList().has_value());
  CHECK_FALSE(Argument::list({Argument::integer(1), Argument::real(2.0)})
                  .getIntList()
                  .has_value());
  CHECK_FALSE(Argument::list({Argument::integer(1), Argument::boolean(true)})
                  .getIntList()
                  .has_value());
  CHECK_FALSE(Argument::list({Argument::integer(1), Argument(X)})
                  .getIntList()
                  .has_value());
  CHECK_FALSE(Argument::list({Argument::ints({1})}).getIntList().has_value());
}

TEST_CASE("forEachNode and replaceNode walk nested lists", "[ir][graph]") {
  Graph G;
  Node *A = G.placeholder("a");
  Node *B = G.placeholder("b");
  Node *C = G.placeholder("c");

  Argument Arg = Argument::list(
      {Argument(A), Argument::integer(3),
       Argument::list({Argument(B), Argument::list({Argument(A)})}),
       Argument::none()});
  std::vector<Node *> Seen;
  Arg.forEachNode([&](Node *N) { Seen.push_back(N); });
  CHECK(Seen == std::vector<Node *>{A, B, A});

  std::vector<Node *> Single;
  Argument(C).forEachNode([&](Node *N) { Single.push_back(N); });
  CHECK(Single == std::vector<Node *>{C});
  size_t Calls = 0;
  Argument::integer(1).forEachNode([&](Node *) { ++Calls; });
  CHECK(Calls == 0);

  CHECK(Arg.replaceNode(A, C));
  Seen.clear();
  Arg.forEachNode([&](Node *N) { Seen.push_back(N); });
  CHECK(Seen == std::vector<Node *>{C, B, C});
  // Non-node elements stay as they were.
  CHECK(Arg.getList()[1] == Argument::integer(3));
  CHECK(Arg.getList()[3].isNone());
  // Nothing left to replace.
  CHECK_FALSE(Arg.replaceNode(A, B));

  Argument Ref(B);
  CHECK(Ref.replaceNode(B, A));
  CHECK(Ref.getNode() == A);
  CHECK_FALSE(Argument::integer(1).replaceNode(A, B));
}

//===----------------------------------------------------------------------===//
// Nodes and use lists
//===----------------------------------------------------------------------===//

TEST_CASE("builders set opcode, target, type and arguments", "[ir][graph]") {
  Graph G;
  TensorType T{DType::F32, {1, 4}, {}};
  Node *X = G.placeholder("x", T);
  Node *W = G.getAttr("fc.weight", TensorType{DType::F32, {4, 4}, {}});
  Node *M = G.callModule("layer1.0.fc", {X});
  Node *F = G.callFunction("add", {M, W}, {{"alpha", Argument::integer(2)}});
  Node *Me = G.callMethod("reshape", {F, Argument::ints({-1})});
  Node *Out = G.output(Me);

  CHECK(X->op() == OpCode::Placeholder);
  CHECK(X->target() == "x");
  REQUIRE(X->type().has_value());
  CHECK(*X->type() == T);
  CHECK(X->numArgs() == 0);

  CHECK(W->op() == OpCode::GetAttr);
  CHECK(W->name() == "fc_weight");
  CHECK(W->target() == "fc.weight");
  REQUIRE(W->type().has_value());
  CHECK(W->type()->Dims == Shape{4, 4});

  CHECK(M->op() == OpCode::CallModule);
  CHECK(M->name() == "layer1_0_fc");
  CHECK(M->target() == "layer1.0.fc");
  CHECK_FALSE(M->type().has_value());

  CHECK(F->op() == OpCode::CallFunction);
  CHECK(F->target() == "add");
  REQUIRE(F->numArgs() == 2);
  CHECK(F->arg(0).getNode() == M);
  CHECK(F->args()[1].getNode() == W);
  REQUIRE(F->kwargs().size() == 1);
  REQUIRE(F->kwarg("alpha") != nullptr);
  CHECK(F->kwarg("alpha")->getInt() == 2);
  CHECK(F->kwarg("beta") == nullptr);

  CHECK(Me->op() == OpCode::CallMethod);
  CHECK(Me->target() == "reshape");

  CHECK(Out->op() == OpCode::Output);
  CHECK(Out->name() == "output");
  CHECK(Out->target() == "output");
  REQUIRE(Out->numArgs() == 1);
  CHECK(Out->arg(0).getNode() == Me);

  CHECK(G.size() == 6);
  CHECK_FALSE(G.empty());
  CHECK(G.outputNode() == Out);
  CHECK(G.placeholders() == std::vector<Node *>{X});
  CHECK(G.nodes() == std::vector<Node *>{X, W, M, F, Me, Out});
  const Graph &CG = G;
  CHECK(CG.nodes().size() == 6);
  CHECK(CG.nodes().front() == X);
  for (Node *N : G.nodes())
    CHECK(N->getParent() == &G);

  X->setTarget("input");
  CHECK(X->target() == "input");
  X->setScope("layer1.0");
  CHECK(X->scope() == "layer1.0");
  X->setType(std::nullopt);
  CHECK_FALSE(X->type().has_value());
}

TEST_CASE("node annotations: set, replace, look up and erase", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *R = G.callFunction("relu", {X});
  CHECK(R->meta().empty());
  CHECK(R->meta("qconfig") == nullptr);

  R->setMeta("qconfig", Argument::string("default"));
  R->setMeta("bits", Argument::list({Argument::integer(8), Argument::none()}));
  R->setMeta("", Argument::real(0.5));
  REQUIRE(R->meta("qconfig"));
  CHECK(*R->meta("qconfig") == Argument::string("default"));
  // Sorted by key whatever the order they were set in.
  std::vector<std::string> Keys;
  for (const auto &KV : R->meta())
    Keys.push_back(KV.first);
  CHECK(Keys == Names{"", "bits", "qconfig"});

  // Setting an existing key replaces its value.
  R->setMeta("qconfig", Argument::none());
  CHECK(R->meta().size() == 3);
  CHECK(R->meta("qconfig")->isNone());

  CHECK(R->eraseMeta("bits"));
  CHECK_FALSE(R->eraseMeta("bits"));
  CHECK(R->meta("bits") == nullptr);
  CHECK(R->meta().size() == 2);

  // Annotations are not arguments: they create no uses, and they stay with
  // the node across renames and other nodes' edits.
  CHECK(userNames(X) == Names{"relu"});
  REQUIRE(errorText(G.rename(R, "act")).empty());
  G.erase(G.callFunction("tmp", {X}));
  CHECK(R->meta().size() == 2);
  CHECK(X->meta().empty());
}

TEST_CASE("empty graph", "[ir][graph]") {
  Graph G;
  CHECK(G.empty());
  CHECK(G.size() == 0);
  CHECK(G.outputNode() == nullptr);
  CHECK(G.placeholders().empty());
  CHECK(G.begin() == G.end());
  CHECK(G.insertPoint() == nullptr);
  CHECK(G.eliminateDeadCode() == 0);
  CHECK(errorText(G.topologicalSort()).empty());
}

TEST_CASE("creating nodes registers users", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  CHECK_FALSE(X->hasUsers());

  Node *Relu = G.callFunction("relu", {X});
  // Uses twice (and inside a list and a kwarg): listed once.
  Node *Add = G.callFunction("add", {X, Argument::list({X, Y})},
                             {{"other", Argument(X)}});
  Node *Cat = G.callFunction("cat", {Argument::list({Relu, Add})});

  CHECK(X->users() == llvm::ArrayRef<Node *>({Relu, Add}));
  CHECK(Y->users() == llvm::ArrayRef<Node *>({Add}));
  CHECK(Relu->users() == llvm::ArrayRef<Node *>({Cat}));
  CHECK(Add->users() == llvm::ArrayRef<Node *>({Cat}));
  CHECK_FALSE(Cat->hasUsers());
  CHECK(X->hasUsers());

  // Kwargs-only uses count too.
  Node *K = G.callFunction("k", {}, {{"input", Argument(Y)}});
  CHECK(userNames(Y) == Names{"add", "k"});
  CHECK(K->inputs() == std::vector<Node *>{Y});
}

TEST_CASE("inputs are in argument order without duplicates", "[ir][graph]") {
  Graph G;
  Node *W = G.placeholder("w");
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *Z = G.placeholder("z");
  Node *N = G.callFunction(
      "f",
      {Argument(Y), Argument::integer(1),
       Argument::list({Argument(X), Argument::list({Argument(Y)})})},
      {{"k", Argument(Z)},
       {"j", Argument::list({Argument(X), Argument(W)})},
       {"i", Argument(Y)}});
  CHECK(N->inputs() == std::vector<Node *>{Y, X, Z, W});
  CHECK(W->inputs().empty());
}

TEST_CASE("setArgs and setArg update use lists", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *Z = G.placeholder("z");
  Node *N = G.callFunction("add", {X, Y});
  CHECK(userNames(X) == Names{"add"});
  CHECK(userNames(Y) == Names{"add"});

  SECTION("setArgs") {
    N->setArgs({Argument(Z), Argument::list({Argument(Y), Argument(Z)})});
    CHECK_FALSE(X->hasUsers());
    CHECK(userNames(Y) == Names{"add"});
    CHECK(userNames(Z) == Names{"add"});
    CHECK(N->inputs() == std::vector<Node *>{Z, Y});

    N->setArgs({});
    CHECK(N->numArgs() == 0);
    CHECK_FALSE(Y->hasUsers());
    CHECK_FALSE(Z->hasUsers());
  }

  SECTION("setArg") {
    N->setArg(0, Argument(Z));
    CHECK_FALSE(X->hasUsers());
    CHECK(userNames(Z) == Names{"add"});
    CHECK(N->arg(0).getNode() == Z);

    // Replacing one of two uses keeps the node a user.
    N->setArg(1, Argument(Z));
    CHECK_FALSE(Y->hasUsers());
    N->setArg(0, Argument::integer(1));
    CHECK(userNames(Z) == Names{"add"});
    N->setArg(1, Argument::none());
    CHECK_FALSE(Z->hasUsers());
  }
}

TEST_CASE("setKwargs and setKwarg update use lists", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *Z = G.placeholder("z");
  Node *N = G.callFunction("f", {X}, {{"a", Argument(Y)}});
  CHECK(userNames(Y) == Names{"f"});

  SECTION("setKwargs") {
    N->setKwargs({{"b", Argument(Z)}, {"c", Argument::integer(1)}});
    CHECK_FALSE(Y->hasUsers());
    CHECK(userNames(Z) == Names{"f"});
    CHECK(N->kwarg("a") == nullptr);
    REQUIRE(N->kwargs().size() == 2);
    CHECK(N->kwargs()[0].first == "b");
    CHECK(N->kwargs()[1].first == "c");
    // An input also used positionally keeps the node as a user.
    N->setKwargs({{"d", Argument(X)}});
    CHECK(userNames(X) == Names{"f"});
    CHECK_FALSE(Z->hasUsers());
    N->setKwargs({});
    CHECK(userNames(X) == Names{"f"});
  }

  SECTION("setKwarg replaces in place or appends") {
    N->setKwarg("b", Argument::integer(2));
    N->setKwarg("a", Argument(Z));
    REQUIRE(N->kwargs().size() == 2);
    CHECK(N->kwargs()[0].first == "a");
    CHECK(N->kwargs()[0].second.getNode() == Z);
    CHECK(N->kwargs()[1].first == "b");
    CHECK_FALSE(Y->hasUsers());
    CHECK(userNames(Z) == Names{"f"});
    N->setKwarg("b", Argument(Y));
    CHECK(userNames(Y) == Names{"f"});
    CHECK(N->kwargs().size() == 2);
  }
}

TEST_CASE("edits keep the user order of untouched inputs", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *Z = G.placeholder("z");
  Node *A = G.callFunction("a", {X, Y});
  Node *B = G.callFunction("b", {X}, {{"k", Argument(Y)}});
  REQUIRE(userNames(X) == Names{"a", "b"});
  REQUIRE(userNames(Y) == Names{"a", "b"});

  // Editing an argument of 'a' that is not X must not move 'a' behind 'b' in
  // X's users: it has used X all along.
  A->setArg(1, Argument(Z));
  CHECK(userNames(X) == Names{"a", "b"});
  CHECK(userNames(Y) == Names{"b"});
  A->setArgs({Argument(X), Argument::integer(3)});
  CHECK(userNames(X) == Names{"a", "b"});
  A->setKwarg("alpha", Argument::real(0.5));
  CHECK(userNames(X) == Names{"a", "b"});
  A->setKwargs({{"other", Argument(Y)}});
  CHECK(userNames(X) == Names{"a", "b"});
  CHECK(userNames(Y) == Names{"b", "a"});
  A->replaceInputWith(Y, Z);
  CHECK(userNames(X) == Names{"a", "b"});
  CHECK(userNames(Z) == Names{"a"});

  // replaceAllUsesWith on Z must not reorder X's users either.
  Node *W = G.placeholder("w");
  Z->replaceAllUsesWith(W);
  CHECK(userNames(X) == Names{"a", "b"});
  (void)B;
}

TEST_CASE("replaceInputWith", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *Z = G.placeholder("z");
  Node *N = G.callFunction("f", {X, Argument::list({X, Y})},
                           {{"k", Argument(X)}, {"j", Argument(Y)}});
  Node *Other = G.callFunction("g", {X});

  N->replaceInputWith(X, Z);
  CHECK(N->arg(0).getNode() == Z);
  CHECK(N->arg(1).getList()[0].getNode() == Z);
  CHECK(N->arg(1).getList()[1].getNode() == Y);
  CHECK(N->kwarg("k")->getNode() == Z);
  CHECK(N->kwarg("j")->getNode() == Y);
  CHECK(N->inputs() == std::vector<Node *>{Z, Y});
  // X keeps its other user only.
  CHECK(X->users() == llvm::ArrayRef<Node *>({Other}));
  CHECK(Z->users() == llvm::ArrayRef<Node *>({N}));
  CHECK(Y->users() == llvm::ArrayRef<Node *>({N}));

  // Replacing with an input the node already has merges the uses.
  N->replaceInputWith(Z, Y);
  CHECK(N->inputs() == std::vector<Node *>{Y});
  CHECK_FALSE(Z->hasUsers());
  CHECK(Y->users() == llvm::ArrayRef<Node *>({N}));

  // Replacing a node that is not an input changes nothing.
  N->replaceInputWith(X, Z);
  CHECK(N->inputs() == std::vector<Node *>{Y});
  CHECK_FALSE(Z->hasUsers());
}

TEST_CASE("replaceAllUsesWith", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *D = G.callFunction("d", {Y});
  Node *A = G.callFunction("a", {X});
  Node *B = G.callFunction("b", {Argument::list({X, X})});
  Node *C = G.callFunction("c", {}, {{"k", Argument(X)}});
  Node *Out = G.output(Argument::list({A, B, C, D}));

  std::vector<Node *> Changed = X->replaceAllUsesWith(Y);
  CHECK(Changed == std::vector<Node *>{A, B, C});
  CHECK_FALSE(X->hasUsers());
  CHECK(X->users().empty());
  CHECK(Y->users() == llvm::ArrayRef<Node *>({D, A, B, C}));
  CHECK(A->arg(0).getNode() == Y);
  CHECK(B->arg(0) == Argument::list({Argument(Y), Argument(Y)}));
  CHECK(C->kwarg("k")->getNode() == Y);
  // Unrelated uses are untouched.
  CHECK(Out->inputs() == std::vector<Node *>{A, B, C, D});

  // A node without users changes nothing.
  CHECK(X->replaceAllUsesWith(Y).empty());
  CHECK(Y->users().size() == 4);

  // X can now be erased.
  G.erase(X);
  CHECK(G.lookup("x") == nullptr);
}

TEST_CASE("erase", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Relu = G.callFunction("relu", {X});
  Node *Neg = G.callFunction("neg", {X, Argument::list({X})});
  REQUIRE(X->users() == llvm::ArrayRef<Node *>({Relu, Neg}));
  REQUIRE(G.lookup("relu") == Relu);

  G.erase(Relu);
  CHECK(G.size() == 2);
  CHECK(X->users() == llvm::ArrayRef<Node *>({Neg}));
  CHECK(G.lookup("relu") == nullptr);
  CHECK(nodeNames(G) == Names{"x", "neg"});

  // The name is free again.
  CHECK(G.uniqueName("relu") == "relu");
  Node *Relu2 = G.callFunction("relu", {X});
  CHECK(Relu2->name() == "relu");
  CHECK(G.lookup("relu") == Relu2);
  CHECK(X->users() == llvm::ArrayRef<Node *>({Neg, Relu2}));

  G.erase(Neg);
  G.erase(Relu2);
  CHECK_FALSE(X->hasUsers());
  G.erase(X);
  CHECK(G.empty());
  CHECK(G.lookup("x") == nullptr);
}

//===----------------------------------------------------------------------===//
// Names
//===----------------------------------------------------------------------===//

TEST_CASE("uniqueName follows torch.fx", "[ir][graph]") {
  Graph G;
  CHECK(G.uniqueName("layer1.0.conv1") == "layer1_0_conv1");
  CHECK(G.uniqueName("relu") == "relu");
  CHECK(G.uniqueName("0") == "_0");
  CHECK(G.uniqueName("1conv") == "_1conv");
  CHECK(G.uniqueName("a-b c") == "a_b_c");
  CHECK(G.uniqueName("_private") == "_private");
  CHECK(Graph::isValidName(G.uniqueName("")));
  CHECK(Graph::isValidName(G.uniqueName("%$#")));

  Node *A = G.callModule("layer1.0.conv1", {});
  Node *B = G.callModule("layer1.0.conv1", {});
  Node *C = G.callModule("layer1.0.conv1", {});
  CHECK(A->name() == "layer1_0_conv1");
  CHECK(B->name() == "layer1_0_conv1_1");
  CHECK(C->name() == "layer1_0_conv1_2");
  // The target keeps the qualified name.
  CHECK(C->target() == "layer1.0.conv1");
  CHECK(G.uniqueName("layer1.0.conv1") == "layer1_0_conv1_3");

  Node *D = G.callFunction("0", {});
  Node *E = G.callFunction("0", {});
  CHECK(D->name() == "_0");
  CHECK(E->name() == "_0_1");

  // Every created name is a valid identifier and maps back to its node.
  for (Node *N : G.nodes()) {
    CHECK(Graph::isValidName(N->name()));
    CHECK(G.lookup(N->name()) == N);
  }
}

TEST_CASE("isValidName", "[ir][graph]") {
  CHECK(Graph::isValidName("x"));
  CHECK(Graph::isValidName("_"));
  CHECK(Graph::isValidName("conv1_2"));
  CHECK(Graph::isValidName("ABC_def_9"));
  CHECK_FALSE(Graph::isValidName(""));
  CHECK_FALSE(Graph::isValidName("1x"));
  CHECK_FALSE(Graph::isValidName("a.b"));
  CHECK_FALSE(Graph::isValidName("a-b"));
  CHECK_FALSE(Graph::isValidName("a b"));
  CHECK_FALSE(Graph::isValidName("%x"));
}

TEST_CASE("createNamed", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");

  auto Ok = G.createNamed(OpCode::CallFunction, "my_relu", "relu", {X});
  REQUIRE(static_cast<bool>(Ok));
  CHECK((*Ok)->name() == "my_relu");
  CHECK((*Ok)->target() == "relu");
  CHECK(G.lookup("my_relu") == *Ok);
  CHECK(X->users() == llvm::ArrayRef<Node *>({*Ok}));

  for (const char *Bad : {"1x", "a.b", "", "a-b"}) {
    auto E = G.createNamed(OpCode::CallFunction, Bad, "relu");
    REQUIRE_FALSE(static_cast<bool>(E));
    std::string Msg = errorToString(E.takeError());
    CHECK(Msg == "invalid node name '" + std::string(Bad) + "'");
  }

  auto Dup = G.createNamed(OpCode::CallFunction, "x", "relu", {X});
  REQUIRE_FALSE(static_cast<bool>(Dup));
  CHECK(errorToString(Dup.takeError()) == "duplicate node name 'x'");

  // Failed creations leave the graph and the use lists alone.
  CHECK(G.size() == 2);
  CHECK(G.lookup("x") == X);
  CHECK(X->users().size() == 1);
}

TEST_CASE("rename", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");

  REQUIRE(errorText(G.rename(X, "input")).empty());
  CHECK(X->name() == "input");
  CHECK(G.lookup("input") == X);
  CHECK(G.lookup("x") == nullptr);
  // The placeholder's target is not its name.
  CHECK(X->target() == "x");
  CHECK(G.uniqueName("x") == "x");

  // Same name: nothing to do.
  CHECK(errorText(G.rename(X, "input")).empty());
  CHECK(G.lookup("input") == X);

  CHECK(errorText(G.rename(X, "y")) == "duplicate node name 'y'");
  CHECK(X->name() == "input");
  CHECK(G.lookup("y") == Y);

  CHECK(errorText(G.rename(X, "in.put")) == "invalid node name 'in.put'");
  CHECK(X->name() == "input");
  CHECK(G.lookup("input") == X);
}

//===----------------------------------------------------------------------===//
// Insertion point and moving
//===----------------------------------------------------------------------===//

TEST_CASE("insertion point", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *A = G.callFunction("a", {X});
  Node *B = G.callFunction("b", {A});
  CHECK(G.insertPoint() == nullptr);

  SECTION("before a node") {
    G.setInsertPoint(B);
    CHECK(G.insertPoint() == B);
    G.callFunction("p", {A});
    G.callFunction("q", {A});
    CHECK(nodeNames(G) == Names{"x", "a", "p", "q", "b"});
    G.setInsertPoint(X);
    G.placeholder("first");
    CHECK(nodeNames(G).front() == "first");
  }

  SECTION("after a node") {
    G.setInsertPointAfter(X);
    CHECK(G.insertPoint() == A);
    G.callFunction("p", {X});
    G.callFunction("q", {X});
    // Successive nodes come in creation order after X.
    CHECK(nodeNames(G) == Names{"x", "p", "q", "a", "b"});

    // After the last node means at the end.
    G.setInsertPointAfter(B);
    CHECK(G.insertPoint() == nullptr);
    G.callFunction("r", {B});
    CHECK(nodeNames(G).back() == "r");
  }

  SECTION("to the end") {
    G.setInsertPoint(A);
    G.setInsertPointToEnd();
    CHECK(G.insertPoint() == nullptr);
    G.callFunction("c", {B});
    CHECK(nodeNames(G) == Names{"x", "a", "b", "c"});
  }

  SECTION("erasing the insertion point moves it to the next node") {
    Node *C = G.callFunction("c", {X});
    G.setInsertPoint(C);
    G.erase(C);
    CHECK(G.insertPoint() == nullptr);
    G.callFunction("d", {X});
    CHECK(nodeNames(G) == Names{"x", "a", "b", "d"});

    Node *Dead = G.callFunction("dead", {X});
    G.moveBefore(Dead, A);
    G.setInsertPoint(Dead);
    G.erase(Dead);
    CHECK(G.insertPoint() == A);
    G.callFunction("e", {X});
    CHECK(nodeNames(G) == Names{"x", "e", "a", "b", "d"});
  }

  SECTION("create names are independent of the position") {
    G.setInsertPoint(A);
    Node *N = G.callFunction("b", {X});
    CHECK(N->name() == "b_1");
    CHECK(N->getNextNode() == A);
  }
}

TEST_CASE("getPrevNode, getNextNode, moveBefore and moveAfter", "[ir][graph]") {
  Graph G;
  Node *A = G.placeholder("a");
  Node *B = G.placeholder("b");
  Node *C = G.placeholder("c");
  Node *D = G.placeholder("d");

  CHECK(A->getPrevNode() == nullptr);
  CHECK(A->getNextNode() == B);
  CHECK(B->getPrevNode() == A);
  CHECK(C->getNextNode() == D);
  CHECK(D->getNextNode() == nullptr);

  G.moveBefore(D, B);
  CHECK(nodeNames(G) == Names{"a", "d", "b", "c"});
  CHECK(D->getPrevNode() == A);
  CHECK(D->getNextNode() == B);
  CHECK(C->getNextNode() == nullptr);

  G.moveAfter(A, C);
  CHECK(nodeNames(G) == Names{"d", "b", "c", "a"});
  CHECK(A->getNextNode() == nullptr);
  CHECK(D->getPrevNode() == nullptr);

  G.moveBefore(A, D);
  CHECK(nodeNames(G) == Names{"a", "d", "b", "c"});
  G.moveAfter(D, C);
  CHECK(nodeNames(G) == Names{"a", "b", "c", "d"});

  // Moving to where the node already is changes nothing.
  G.moveAfter(B, A);
  G.moveBefore(B, C);
  CHECK(nodeNames(G) == Names{"a", "b", "c", "d"});
  CHECK(G.size() == 4);
  // Moves keep names and ownership.
  for (Node *N : G.nodes()) {
    CHECK(N->getParent() == &G);
    CHECK(G.lookup(N->name()) == N);
  }
}

//===----------------------------------------------------------------------===//
// Topological sort and dead code elimination
//===----------------------------------------------------------------------===//

TEST_CASE("topologicalSort leaves a sorted graph unchanged", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  // Independent nodes in an order other than creation-by-dependency would
  // give, to check that the sort is stable.
  Node *C = G.callFunction("c", {Y});
  Node *A = G.callFunction("a", {X});
  Node *K = G.getAttr("k");
  Node *B = G.callFunction("b", {A, C, K});
  G.output(B);
  Names Before = nodeNames(G);
  REQUIRE(errorText(G.topologicalSort()).empty());
  CHECK(nodeNames(G) == Before);
  CHECK(X->users().size() == 1);
}

TEST_CASE("topologicalSort orders a shuffled graph stably", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Y = G.placeholder("y");
  Node *A = G.callFunction("a", {X});
  Node *B = G.callFunction("b", {A});
  Node *C = G.callFunction("c", {Y});
  Node *Out = G.output(Argument::list({B, C}));

  SECTION("a user moved to the front") {
    G.moveBefore(B, X);
    REQUIRE(nodeNames(G) == Names{"b", "x", "y", "a", "c", "output"});
    REQUIRE(errorText(G.topologicalSort()).empty());
    // 'b' goes right after its input; everything else keeps its order.
    CHECK(nodeNames(G) == Names{"x", "y", "a", "b", "c", "output"});
  }

  SECTION("the output moved to the front") {
    G.moveBefore(Out, X);
    G.moveAfter(A, C);
    REQUIRE(nodeNames(G) == Names{"output", "x", "y", "b", "c", "a"});
    REQUIRE(errorText(G.topologicalSort()).empty());
    CHECK(nodeNames(G) == Names{"x", "y", "c", "a", "b", "output"});
  }

  SECTION("reversed") {
    for (Node *N : G.nodes())
      if (N != &*G.begin())
        G.moveBefore(N, &*G.begin());
    REQUIRE(nodeNames(G) == Names{"output", "c", "b", "a", "y", "x"});
    REQUIRE(errorText(G.topologicalSort()).empty());
    CHECK(nodeNames(G) == Names{"y", "c", "x", "a", "b", "output"});
    std::vector<Node *> Order = G.nodes();
    for (size_t I = 0; I < Order.size(); ++I)
      for (Node *In : Order[I]->inputs()) {
        auto Pos = std::find(Order.begin(), Order.end(), In) - Order.begin();
        CHECK(static_cast<size_t>(Pos) < I);
      }
    CHECK(G.outputNode() == &*std::prev(G.end()));
  }

  // Sorting changes neither names nor use lists.
  CHECK(G.size() == 6);
  CHECK(X->users() == llvm::ArrayRef<Node *>({A}));
  CHECK(A->users() == llvm::ArrayRef<Node *>({B}));
  CHECK(Out->inputs() == std::vector<Node *>{B, C});
}

TEST_CASE("topologicalSort reports a cycle", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *A = G.callFunction("relu", {X});
  Node *B = G.callFunction("neg", {A});
  Node *D = G.callFunction("abs", {A});
  G.output(D);

  SECTION("two-node cycle") {
    A->setArg(0, Argument(B));
    Names Before = nodeNames(G);
    std::string Msg = errorText(G.topologicalSort());
    CHECK_THAT(Msg, Catch::StartsWith("graph has a cycle through node '"));
    bool NamesCycleNode = Msg == "graph has a cycle through node 'relu'" ||
                          Msg == "graph has a cycle through node 'neg'";
    CHECK(NamesCycleNode);
    // A failed sort leaves the order alone.
    CHECK(nodeNames(G) == Before);
  }

  SECTION("a node that only depends on the cycle comes first") {
    // 'abs' reads the cycle but is not on it; it must not be named even
    // though it is the first node the sort cannot place.
    A->setArg(0, Argument(B));
    G.moveBefore(D, A);
    REQUIRE(nodeNames(G) == Names{"x", "abs", "relu", "neg", "output"});
    std::string Msg = errorText(G.topologicalSort());
    CHECK_THAT(Msg, !Catch::Contains("'abs'") && !Catch::Contains("'output'"));
    bool NamesCycleNode = Msg == "graph has a cycle through node 'relu'" ||
                          Msg == "graph has a cycle through node 'neg'";
    CHECK(NamesCycleNode);
  }

  SECTION("self loop") {
    B->setArg(0, Argument(B));
    CHECK(B->users() == llvm::ArrayRef<Node *>({B}));
    CHECK(errorText(G.topologicalSort()) ==
          "graph has a cycle through node 'neg'");
    B->setArg(0, Argument(A));
  }

  // Breaking the cycle makes the graph sortable again.
  A->setArg(0, Argument(X));
  CHECK(errorText(G.topologicalSort()).empty());
  CHECK(nodeNames(G).back() == "output");
}

TEST_CASE("eliminateDeadCode", "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *Unused = G.placeholder("unused");
  Node *A = G.callFunction("relu", {X});
  G.callFunction("neg", {A});
  G.getAttr("weight");
  Node *C = G.callModule("conv", {X});
  Node *M = G.callMethod("view", {A, Argument::ints({-1})});
  G.callFunction("sum", {M});
  Node *Out = G.output(C);

  // Dead chains relu -> neg and relu -> view -> sum, and the unused get_attr.
  CHECK(G.eliminateDeadCode() == 5);
  CHECK(nodeNames(G) == Names{"x", "unused", "conv", "output"});
  // Placeholders and the output stay even without users.
  CHECK_FALSE(Unused->hasUsers());
  CHECK_FALSE(Out->hasUsers());
  CHECK(X->users() == llvm::ArrayRef<Node *>({C}));
  CHECK(G.lookup("relu") == nullptr);
  // Nothing left to remove.
  CHECK(G.eliminateDeadCode() == 0);
  CHECK(G.size() == 4);
}

TEST_CASE("eliminateDeadCode removes a dead chain in an unsorted graph",
          "[ir][graph]") {
  Graph G;
  Node *X = G.placeholder("x");
  Node *A = G.callFunction("a", {X});
  Node *B = G.callFunction("b", {A});
  G.output(X);
  // The user comes before its input.
  G.moveBefore(B, A);
  CHECK(G.eliminateDeadCode() == 2);
  CHECK(nodeNames(G) == Names{"x", "output"});
  CHECK(X->users().size() == 1);
}
