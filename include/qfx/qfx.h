//===- qfx.h - The user-facing qfx API in one header ------------*- C++ -*-===//
//
// One include for applications: models (nn modules and functional, the zoo),
// tracing, ONNX import and export, prepare_fx / convert_to_reference_fx /
// convert_fx with QConfig mappings, compile() to oneDNN, the reference
// interpreter, GraphModule files, the pass manager, and tensors with their .npy
// / .safetensors I/O. Individual passes, kernels and training keep their own
// headers under qfx/.
//
// Only qfx and LLVM ADT/Support headers are included from here: no oneDNN,
// JSON or other implementation headers, so consumers need LLVM's include
// directory and nothing else (the installed qfx::qfx target and qfx.pc
// provide it).
//
//===----------------------------------------------------------------------===//

#ifndef QFX_QFX_H
#define QFX_QFX_H

// Tensors, errors and tensor files.
#include "qfx/Support/Error.h"
#include "qfx/Support/Npy.h"
#include "qfx/Support/Safetensors.h"
#include "qfx/Support/Tensor.h"

// Graphs: GraphModule, printing and (de)serialization.
#include "qfx/IR/GraphModule.h"
#include "qfx/IR/Printer.h"
#include "qfx/IR/Serialization.h"

// Models: nn modules, functional ops and the model zoo.
#include "qfx/Models/Zoo.h"
#include "qfx/NN/Functional.h"
#include "qfx/NN/Module.h"
#include "qfx/NN/Modules.h"

// Tracing and quantization: symbolic_trace, QConfig, prepare_fx, convert.
#include "qfx/Pipeline/QuantizeFx.h"
#include "qfx/Quant/QConfig.h"
#include "qfx/Quant/QConfigMapping.h"
#include "qfx/Trace/SymbolicTrace.h"

// Passes: PassContext (prepare_fx's explain remarks) and the pass manager.
#include "qfx/Transforms/Pass.h"

// ONNX: import models, export float and QDQ ONNX.
#include "qfx/Onnx/Export.h"
#include "qfx/Onnx/Import.h"

// Execution: the reference interpreter and the oneDNN compiler.
#include "qfx/Backend/OneDNN/CpuIsa.h"
#include "qfx/Codegen/CompiledModule.h"
#include "qfx/Codegen/Lowering.h"
#include "qfx/Runtime/Interpreter.h"

#endif // QFX_QFX_H
