//===- Zoo.h - Models used by tests, benchmarks and the demo ----*- C++ -*-===//
//
// The seed Net of PyTorch's quantization notes (written with functional
// relu and max_pool2d, because tracing functional calls is the point), and
// ResNet-18, MobileNetV2 and MobileNetV3-Small with torchvision's module and
// parameter names, so a torchvision state_dict saved as .safetensors loads
// unchanged.
//
//===----------------------------------------------------------------------===//

#ifndef QFX_MODELS_ZOO_H
#define QFX_MODELS_ZOO_H

#include "qfx/NN/Module.h"
#include "qfx/NN/Modules.h"

#include <memory>
#include <string>
#include <vector>

namespace qfx {
namespace models {

/// conv1 1->40 3x3, relu, max_pool2d(2,2), conv2 40->40 3x3, relu,
/// max_pool2d(2,2), reshape(-1, 5*5*40), fc 1000->10; input [N,1,28,28].
class Net : public nn::Module {
public:
  Net();
  nn::Value forward(nn::Value X) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::Linear> fc;
};

/// torchvision.models.resnet18 (BasicBlock, [2, 2, 2, 2]); input
/// [N,3,224,224].
std::shared_ptr<nn::Module> resnet18(int64_t NumClasses = 1000);

/// torchvision.models.mobilenet_v2 (width 1.0); input [N,3,224,224].
std::shared_ptr<nn::Module> mobilenet_v2(int64_t NumClasses = 1000);

/// torchvision.models.mobilenet_v3_small (width 1.0): hardswish, depthwise
/// convs and squeeze-excitation blocks with a hardsigmoid gate; module names
/// as torchvision's (features.1.block.0.fc1, classifier.3, ...); input
/// [N,3,224,224].
std::shared_ptr<nn::Module> mobilenet_v3_small(int64_t NumClasses = 1000);

/// A MobileNetV3-style CNN for Fashion-MNIST-sized input [N,1,28,28]:
/// hardswish, x * sigmoid(x), depthwise convs and two squeeze-excitation
/// blocks (stem, dw1, se1, pw1, expand2, dw2, se2, pw2, head, fc).
std::shared_ptr<nn::Module> mobilenet_v3_cnn(int64_t NumClasses = 10);

/// The zoo ViT for Fashion-MNIST (docs/performance.md): patch embedding
/// conv_proj 7x7/7 -> 16 tokens of 64 + class_token, encoder of 4 pre-norm
/// blocks (LayerNorm, 4-head self-attention with q/k/v/out projections,
/// GELU MLP 64-128-64), encoder.ln, the class token, heads.head -> 10;
/// torchvision's VisionTransformer names. Input [N,1,28,28], any N.
std::shared_ptr<nn::Module> vit_fashion();

/// One encoder block of vit_fashion (encoder.layers.encoder_layer_<i>):
/// ln_1, self_attention.{q,k,v,out}_proj, ln_2, mlp.{0,3}; input and
/// output [N,17,64]. Not a zoo entry: for block-level tests against
/// PyTorch (test/data/make_encoder_block_golden.py).
std::shared_ptr<nn::Module> vit_encoder_block();

/// A zoo entry: name, constructor, example input shape.
struct ZooEntry {
  std::string Name;
  std::shared_ptr<nn::Module> (*Create)();
  std::vector<int64_t> InputShape;
};

/// "net", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
/// "mobilenet_v3_cnn", "vit_fashion".
const std::vector<ZooEntry> &zoo();

} // namespace models
} // namespace qfx

#endif // QFX_MODELS_ZOO_H
