//===- SymbolicTrace.cpp - symbolic_trace for C++ models ------------------===//

#include "qfx/Trace/SymbolicTrace.h"

#include "qfx/IR/Verifier.h"
#include "qfx/Support/Error.h"

using namespace qfx;

InputSpec InputSpec::symbolic(std::string Name, DType T,
                              llvm::ArrayRef<int64_t> Shape) {
  InputSpec S;
  S.Name = std::move(Name);
  S.Type = TensorType{T, qfx::Shape(Shape.begin(), Shape.end()), {}};
  return S;
}

InputSpec InputSpec::concrete(std::string Name, Tensor Data) {
  InputSpec S;
  S.Name = std::move(Name);
  S.Type = TensorType{Data.dtype(),
                      qfx::Shape(Data.shape().begin(), Data.shape().end()),
                      Data.quant()};
  S.Concrete = std::move(Data);
  return S;
}

llvm::Expected<std::unique_ptr<GraphModule>>
qfx::symbolicTrace(nn::Module &Model, llvm::ArrayRef<InputSpec> Inputs,
                   const TraceOptions &Opts) {
  std::unique_ptr<GraphModule> GM;
  try {
    nn::Tracer T(Model, Opts.IsLeafModule);
    nn::Tracer::Activation Active(T);
    std::vector<nn::Value> Args;
    for (const InputSpec &S : Inputs)
      Args.push_back(S.Concrete ? nn::Value(*S.Concrete)
                                : T.placeholder(S.Name, S.Type));
    nn::Value Result = Model.forwardMany(Args);
    T.output(Result);
    GM = T.take();
  } catch (const std::exception &E) {
    return makeError("symbolic_trace of " + Model.kind() + ": " + E.what());
  }
  if (llvm::Error E = verify(*GM))
    return prefixError(std::move(E), "symbolic_trace");
  return GM;
}
