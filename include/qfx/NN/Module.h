//===- Module.h - The nn::Module base class ---------------------*- C++ -*-===//
//
// Models are trees of Modules, as in libtorch's torch::nn: submodules,
// parameters and buffers are registered under PyTorch's names so that a
// state_dict saved by PyTorch (as .safetensors) loads unchanged. Calling a
// module (operator()) either runs forward() or, under the tracer, records a
// call_module for leaves and inlines forward() for everything else.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_NN_MODULE_H
#define QFX_NN_MODULE_H

#include "qfx/IR/GraphModule.h"
#include "qfx/NN/Value.h"
#include "qfx/Support/Tensor.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qfx {
namespace nn {

/// Base class of every module and model.
class Module {
public:
  /// \p Kind is the class name ("Net", "Conv2d"); it becomes the module's
  /// kind in the traced GraphModule.
  explicit Module(std::string Kind);
  virtual ~Module();
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;

  llvm::StringRef kind() const { return Kind; }

  /// Registers a submodule under \p Name and returns it.
  template <typename M>
  std::shared_ptr<M> register_module(std::string Name,
                                     std::shared_ptr<M> Child) {
    registerChild(std::move(Name), Child);
    return Child;
  }
  /// Registers a trained tensor; returns a handle sharing its storage, so
  /// load_state_dict updates what the module's code reads.
  Tensor register_parameter(std::string Name, Tensor T);
  /// Registers state that is not trained (running statistics, counters).
  Tensor register_buffer(std::string Name, Tensor T);

  /// Hyper-parameters recorded in the traced module (stride, eps ...).
  void setAttr(llvm::StringRef Name, Argument V) { Attrs[Name.str()] = V; }
  const AttrMap &attrs() const { return Attrs; }

  /// Own tensors in registration order.
  const std::vector<NamedTensor> &tensors() const { return Tensors; }
  /// Own tensor \p Name, or nullptr.
  const Tensor *tensor(llvm::StringRef Name) const;
  /// Direct children in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>> &
  children() const {
    return Children;
  }
  Module *child(llvm::StringRef Name) const;

  /// Every module with its qualified name, pre-order, this one first ("").
  std::vector<std::pair<std::string, Module *>> named_modules();
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  /// Parameters and buffers with qualified names, PyTorch's order (a
  /// module's own tensors, then its children's).
  std::vector<std::pair<std::string, Tensor>> state_dict() const;

  /// Copies values into the registered tensors. Every key must exist with
  /// the same shape (dtype is converted when it differs, as PyTorch's
  /// copy_ does); with \p Strict, every registered tensor must be given,
  /// except num_batches_tracked. Errors list missing, unexpected and
  /// mis-shaped keys; nothing is modified unless everything fits.
  llvm::Error load_state_dict(const std::map<std::string, Tensor> &State,
                              bool Strict = true);
  /// Loads a state_dict saved as .safetensors.
  llvm::Error load_safetensors(llvm::StringRef Path, bool Strict = true);

  /// Training mode, for this module and all its children.
  void train(bool On = true);
  void eval() { train(false); }
  bool is_training() const { return Training; }

  /// Computation for one input. Override this or forwardMany.
  virtual Value forward(Value X);
  /// Computation for several inputs; by default forward(Inputs[0]).
  virtual Value forwardMany(const std::vector<Value> &Inputs);

  /// Calls the module (through the tracer when one is active).
  Value operator()(Value X);
  Value operator()(Value A, Value B);
  Value call(const std::vector<Value> &Inputs);

  /// Whether this is a built-in module (Conv2d, ReLU ...), which the tracer
  /// records as call_module by default.
  virtual bool isStandardLeaf() const { return false; }

  /// This module as the IR describes it: kind, attributes, own tensors
  /// (sharing storage); children are not included.
  ModuleInfo info() const;

private:
  void registerChild(std::string Name, std::shared_ptr<Module> Child);

  std::string Kind;
  AttrMap Attrs;
  std::vector<NamedTensor> Tensors;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> Children;
  bool Training = true;
};

/// Seeds the generator that initializes new parameters (deterministic
/// model construction; PyTorch's own initial values cannot be reproduced,
/// load a state_dict for those).
void manual_seed(uint64_t Seed);
/// Uniform(-Bound, Bound) f32 tensor from that generator.
Tensor uniformInit(llvm::ArrayRef<int64_t> Shape, double Bound);

} // namespace nn
} // namespace qfx

#endif // QFX_NN_MODULE_H
