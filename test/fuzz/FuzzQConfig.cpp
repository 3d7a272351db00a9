//===- FuzzQConfig.cpp - Fuzzes the qconfig mapping JSON loader -----------===//
//
// Any bytes through QConfigMapping::fromJson; an accepted mapping must give
// the same document back after toJson -> fromJson, and must resolve every
// node of a small fixed graph (which matches its module-name regexes
// against nested module names).

#include "FuzzUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Parser.h"
#include "qfx/Quant/QConfigMapping.h"

#include <memory>

using namespace qfx;

/// Modules at several depths, a function and a method: every kind of node
/// the resolution rules distinguish.
static const char *const FixedGraph = R"(graph_module M {
  module layer1 : Sequential
  module layer1.0 : Block
  module layer1.0.conv : Conv2d {in_channels = 1, kernel_size = [1, 1], out_channels = 1}
  module layer1.0.relu : ReLU
  module fc : Linear {in_features = 4, out_features = 2}
  graph {
    %x : f32[1,1,2,2] = placeholder[x]
    %conv : f32[1,1,2,2] = call_module[layer1.0.conv](%x)
    %relu : f32[1,1,2,2] = call_module[layer1.0.relu](%conv)
    %add : f32[1,1,2,2] = call_function[add](%relu, %x)
    %flatten : f32[1,4] = call_function[flatten](%add, 1)
    %fc : f32[1,2] = call_module[fc](%flatten)
    %mul : f32[1,2] = call_method[mul](%fc, %fc)
    %output = output[output](%mul)
  }
}
)";

static const GraphModule &fixedGraph() {
  static const std::unique_ptr<GraphModule> GM = [] {
    auto P = parseGraphModule(FixedGraph, "fixed.qir");
    if (!P) {
      fuzz::ignore(P.takeError());
      fuzz::fail("qconfig", "the fixed graph does not parse");
    }
    return std::move(*P);
  }();
  return *GM;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto M = QConfigMapping::fromJson(fuzz::bytes(Data, Size), "fuzz.json");
  if (!fuzz::take(M))
    return 0;
  std::string First = M->toJson();
  auto Again = QConfigMapping::fromJson(First, "again.json");
  if (!Again) {
    fuzz::ignore(Again.takeError());
    fuzz::fail("qconfig", "toJson output does not load again");
  }
  if (Again->toJson() != First)
    fuzz::fail("qconfig", "load -> toJson is not a fixed point");
  M->assign(fixedGraph());
  return 0;
}
