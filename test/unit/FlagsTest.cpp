//===- FlagsTest.cpp - Bounds of numeric flags and compile options --------===//

#include "TestUtil.h"

#include "qfx/Codegen/Lowering.h"
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Support/Error.h"
#include "qfx/Support/Flags.h"

#include <catch2/catch.hpp>

#include <string>

using namespace qfx;
using testutil::errorOf;
using testutil::take;

TEST_CASE("checkFlagRange names the flag, the bounds and the value",
          "[flags]") {
  CHECK(errorToString(checkFlagRange("--threads", 0, 0, MaxThreads)) == "");
  CHECK(errorToString(checkFlagRange("--threads", 1024, 0, MaxThreads)) == "");
  CHECK(errorToString(checkFlagRange("--threads", 100000, 0, MaxThreads)) ==
        "--threads: must be between 0 and 1024, got 100000");
  CHECK(errorToString(checkFlagRange("--batch", INT64_MAX, 1, MaxFlagCount)) ==
        "--batch: must be between 1 and 1099511627776, got "
        "9223372036854775807");
  CHECK(errorToString(checkFlagRange("--batch", -1, 1, MaxFlagCount)) ==
        "--batch: must be between 1 and 1099511627776, got -1");
}

TEST_CASE("compile rejects thread counts OpenMP cannot take", "[flags]") {
  auto GM =
      take(parseGraphModule("graph_module M {\n"
                            "  graph {\n"
                            "    %x : f32[1,4] = placeholder[x]\n"
                            "    %r : f32[1,4] = call_function[relu](%x)\n"
                            "    %output = output[output](%r)\n"
                            "  }\n"
                            "}\n",
                            "test.qir"));
  CompileOptions Opts;
  Opts.NumThreads = 100000;
  CHECK(errorOf(compile(*GM, Opts)) ==
        "compile: thread count: must be between 0 and 1024, got 100000");
  Opts.NumThreads = 1;
  Opts.BatchSize = INT64_MAX;
  CHECK(errorOf(compile(*GM, Opts)) ==
        "compile: batch size: must be between 0 and 1099511627776, got "
        "9223372036854775807");
}
