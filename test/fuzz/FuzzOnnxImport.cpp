//===- FuzzOnnxImport.cpp - Fuzzes the ONNX importer ----------------------===//
//
// Any bytes through importOnnxBuffer (no model folder, so no file is ever
// read); a model it accepts must verify and run on zeros of its input types
// without crashing (a kernel may still reject it with an error).

#include "FuzzUtil.h"

#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Verifier.h"
#include "qfx/Onnx/Import.h"
#include "qfx/Runtime/Interpreter.h"

using namespace qfx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *Data, size_t Size) {
  auto GM = importOnnxBuffer(fuzz::bytes(Data, Size), "fuzz.onnx");
  if (!fuzz::take(GM))
    return 0;
  if (llvm::Error E = verify(**GM)) {
    fuzz::ignore(std::move(E));
    fuzz::fail("onnx-import", "an imported module does not verify");
  }
  // Running is bounded by the inputs' and weights' sizes; large models are
  // only imported.
  std::vector<Tensor> Inputs;
  int64_t Total = 0;
  for (const auto &[Name, T] : (*GM)->namedTensors())
    if ((Total += T->numElements()) > (int64_t(1) << 16))
      return 0;
  Total = 0;
  for (const Node *P : (*GM)->graph().placeholders()) {
    if (!P->type())
      return 0;
    auto N = checkedNumElements(P->type()->Dims, int64_t(1) << 16);
    if (!fuzz::take(N) || (Total += *N) > (int64_t(1) << 16))
      return 0;
    Inputs.push_back(Tensor(P->type()->Dtype, P->type()->Dims));
  }
  // Resize, Expand, MatMul broadcasting and ConvTranspose can grow small
  // inputs into outputs no machine can hold; the importer accepts them as
  // PyTorch would, so the run budget bounds every inferred value too.
  for (const Node &N : (*GM)->graph()) {
    if (!N.type())
      continue;
    auto NE = checkedNumElements(N.type()->Dims, int64_t(1) << 22);
    if (!fuzz::take(NE))
      return 0;
  }
  auto Out = Interpreter(**GM).run(Inputs);
  fuzz::take(Out);
  return 0;
}
