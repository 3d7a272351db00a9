//===- InterpreterTest.cpp - Interpreter errors on graphs it cannot run ---===//

#include "TestUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Runtime/Interpreter.h"
#include "qfx/Support/Error.h"

#include <catch2/catch.hpp>

#include <string>

using namespace qfx;
using testutil::errorOf;
using testutil::take;

namespace {

/// A graph calling module 'fc' of kind \p Kind declared by \p Modules.
std::unique_ptr<GraphModule> parseFc(const std::string &Modules) {
  std::string Text = "graph_module M {\n" + Modules +
                     "  graph {\n"
                     "    %x : f32[1,4] = placeholder[x]\n"
                     "    %fc : f32[1,2] = call_module[fc](%x)\n"
                     "    %output = output[output](%fc)\n"
                     "  }\n"
                     "}\n";
  return take(parseGraphModule(Text, "test.qir"));
}

Tensor input() { return Tensor::fromFloats({1, 4}, {1, 2, 3, 4}); }

} // namespace

TEST_CASE("running a module whose parameter has no data is a located error",
          "[interpreter]") {
  // Declaring a parameter by type alone is legal (types can be inferred),
  // but the kernels need values: an error, not an assertion.
  SECTION("standard module") {
    auto GM = parseFc("  module fc : Linear {in_features = 4, "
                      "out_features = 2} {\n"
                      "    param weight : f32[2,4]\n"
                      "    param bias : f32[2] = dense<[0.5, -0.5]>\n"
                      "  }\n");
    CHECK(errorOf(interpret(*GM, {input()})) ==
          "node 'fc': module 'fc': parameter 'weight' has no data");
  }
  SECTION("child of a fused module") {
    auto GM = parseFc("  module fc : LinearReLU\n"
                      "  module fc.0 : Linear {in_features = 4, "
                      "out_features = 2} {\n"
                      "    param weight : f32[2,4] = dense<[1.0, 2.0, 3.0, "
                      "4.0, 5.0, 6.0, 7.0, 8.0]>\n"
                      "    param bias : f32[2]\n"
                      "  }\n"
                      "  module fc.1 : ReLU\n");
    CHECK(errorOf(interpret(*GM, {input()})) ==
          "node 'fc': module 'fc.0': parameter 'bias' has no data");
  }
  SECTION("with data it runs") {
    auto GM = parseFc("  module fc : Linear {in_features = 4, "
                      "out_features = 2} {\n"
                      "    param weight : f32[2,4] = dense<[1.0, 0.0, 0.0, "
                      "0.0, 0.0, 1.0, 0.0, 0.0]>\n"
                      "    param bias : f32[2] = dense<[0.5, -0.5]>\n"
                      "  }\n");
    Tensor Y = take(interpret(*GM, {input()}));
    CHECK(Y.data<float>()[0] == 1.5f);
    CHECK(Y.data<float>()[1] == 1.5f);
  }
}
