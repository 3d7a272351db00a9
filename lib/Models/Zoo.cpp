//===- Zoo.cpp - Net, ResNet-18, MobileNets and the Fashion-MNIST ViT ----===//
//
// Module names, registration order and forward() follow torchvision 0.14
// line by line: the state_dict keys (and their order) must equal
// torchvision's, and the traced graphs must read like torch.fx's.
//
//===----------------------------------------------------------------------===//

#include "qfx/Models/Zoo.h"

#include "qfx/NN/Functional.h"

#include <algorithm>
#include <cmath>

using namespace qfx;
using namespace qfx::nn;

namespace qfx {
namespace models {

//===----------------------------------------------------------------------===//
// Net
//===----------------------------------------------------------------------===//

Net::Net() : Module("Net") {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(1, 40, 3));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(40, 40, 3));
  fc = register_module("fc", std::make_shared<Linear>(5 * 5 * 40, 10));
}

Value Net::forward(Value X) {
  X = F::max_pool2d(F::relu((*conv1)(X)), 2, 2);
  X = F::max_pool2d(F::relu((*conv2)(X)), 2, 2);
  X = X.reshape({-1, 5 * 5 * 40});
  return (*fc)(X);
}

namespace {

//===----------------------------------------------------------------------===//
// ResNet-18
//===----------------------------------------------------------------------===//

std::shared_ptr<Conv2d> conv3x3(int64_t In, int64_t Out, int64_t Stride) {
  return std::make_shared<Conv2d>(
      Conv2dOptions(In, Out, 3).stride(Stride).padding(1).bias(false));
}

std::shared_ptr<Conv2d> conv1x1(int64_t In, int64_t Out, int64_t Stride) {
  return std::make_shared<Conv2d>(
      Conv2dOptions(In, Out, 1).stride(Stride).bias(false));
}

/// torchvision's BasicBlock (expansion 1).
class BasicBlock : public Module {
public:
  BasicBlock(int64_t InPlanes, int64_t Planes, int64_t Stride)
      : Module("BasicBlock") {
    conv1 = register_module("conv1", conv3x3(InPlanes, Planes, Stride));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(Planes));
    relu = register_module("relu", std::make_shared<ReLU>());
    conv2 = register_module("conv2", conv3x3(Planes, Planes, 1));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(Planes));
    if (Stride != 1 || InPlanes != Planes) {
      downsample = register_module(
          "downsample",
          std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
              conv1x1(InPlanes, Planes, Stride),
              std::make_shared<BatchNorm2d>(Planes)}));
    }
  }

  Value forward(Value X) override {
    Value Out = (*relu)((*bn1)((*conv1)(X)));
    Out = (*bn2)((*conv2)(Out));
    Value Identity = downsample ? (*downsample)(X) : X;
    Out = Out + Identity;
    // One ReLU module called twice, as torchvision does: the trace records
    // two call_module nodes of one target.
    return (*relu)(Out);
  }

private:
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<ReLU> relu;
  std::shared_ptr<Sequential> downsample;
};

class ResNet : public Module {
public:
  ResNet(const std::vector<int64_t> &Layers, int64_t NumClasses)
      : Module("ResNet") {
    conv1 = register_module(
        "conv1", std::make_shared<Conv2d>(
                     Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    relu = register_module("relu", std::make_shared<ReLU>());
    maxpool = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
    const int64_t Planes[] = {64, 128, 256, 512};
    for (size_t I = 0; I < 4; ++I)
      layer[I] = register_module("layer" + std::to_string(I + 1),
                                 makeLayer(Planes[I], Layers[I], I ? 2 : 1));
    avgpool =
        register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
    fc = register_module("fc", std::make_shared<Linear>(512, NumClasses));
  }

  Value forward(Value X) override {
    X = (*maxpool)((*relu)((*bn1)((*conv1)(X))));
    for (const std::shared_ptr<Sequential> &L : layer)
      X = (*L)(X);
    X = F::flatten((*avgpool)(X), 1);
    return (*fc)(X);
  }

private:
  /// torchvision's _make_layer; only the first block changes stride or width.
  std::shared_ptr<Sequential> makeLayer(int64_t Planes, int64_t Blocks,
                                        int64_t Stride) {
    auto L = std::make_shared<Sequential>();
    L->push_back(std::make_shared<BasicBlock>(InPlanes, Planes, Stride));
    InPlanes = Planes;
    for (int64_t B = 1; B < Blocks; ++B)
      L->push_back(std::make_shared<BasicBlock>(InPlanes, Planes, 1));
    return L;
  }

  int64_t InPlanes = 64;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<ReLU> relu;
  std::shared_ptr<MaxPool2d> maxpool;
  std::shared_ptr<Sequential> layer[4];
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<Linear> fc;
};

//===----------------------------------------------------------------------===//
// MobileNetV2
//===----------------------------------------------------------------------===//

/// torchvision's _make_divisible: rounds \p V to a multiple of \p Divisor,
/// never going down by more than 10%.
int64_t makeDivisible(double V, int64_t Divisor) {
  int64_t NewV = std::max(Divisor, static_cast<int64_t>(V + Divisor / 2.0) /
                                       Divisor * Divisor);
  if (NewV < 0.9 * V)
    NewV += Divisor;
  return NewV;
}

/// The activation_layer of a Conv2dNormActivation.
enum class Activation { None, ReLU, ReLU6, Hardswish };

/// torchvision's norm_layer arguments: MobileNetV2 takes BatchNorm2d's
/// defaults, MobileNetV3 eps 0.001 and momentum 0.01.
struct NormArgs {
  double Eps = 1e-5, Momentum = 0.1;
};

/// torchvision's Conv2dNormActivation with BatchNorm2d (ReLU6 by default):
/// a Sequential subclass in Python, so it keeps Sequential's child names and
/// forward() but has its own kind.
class Conv2dNormActivation : public Module {
public:
  Conv2dNormActivation(int64_t In, int64_t Out, int64_t Kernel = 3,
                       int64_t Stride = 1, int64_t Groups = 1,
                       Activation Act = Activation::ReLU6, NormArgs Norm = {},
                       int64_t Dilation = 1)
      : Module("Conv2dNormActivation") {
    register_module(
        "0", std::make_shared<Conv2d>(Conv2dOptions(In, Out, Kernel)
                                          .stride(Stride)
                                          .padding((Kernel - 1) / 2 * Dilation)
                                          .dilation(Dilation)
                                          .groups(Groups)
                                          .bias(false)));
    register_module(
        "1", std::make_shared<BatchNorm2d>(Out, Norm.Eps, Norm.Momentum));
    if (Act == Activation::ReLU6)
      register_module("2", std::make_shared<ReLU6>());
    else if (Act == Activation::ReLU)
      register_module("2", std::make_shared<ReLU>());
    else if (Act == Activation::Hardswish)
      register_module("2", std::make_shared<Hardswish>());
  }

  Value forward(Value X) override {
    for (const auto &KV : children())
      X = KV.second->call({X});
    return X;
  }
};

class InvertedResidual : public Module {
public:
  InvertedResidual(int64_t In, int64_t Out, int64_t Stride, int64_t ExpandRatio)
      : Module("InvertedResidual"), UseResConnect(Stride == 1 && In == Out) {
    int64_t Hidden = static_cast<int64_t>(std::round(In * double(ExpandRatio)));
    conv = register_module("conv", std::make_shared<Sequential>());
    if (ExpandRatio != 1)
      conv->push_back(std::make_shared<Conv2dNormActivation>(In, Hidden, 1));
    conv->push_back(std::make_shared<Conv2dNormActivation>(Hidden, Hidden, 3,
                                                           Stride, Hidden));
    conv->push_back(
        std::make_shared<Conv2d>(Conv2dOptions(Hidden, Out, 1).bias(false)));
    conv->push_back(std::make_shared<BatchNorm2d>(Out));
  }

  Value forward(Value X) override {
    // A construction-time attribute, so tracing specializes on it.
    if (UseResConnect)
      return X + (*conv)(X);
    return (*conv)(X);
  }

private:
  bool UseResConnect;
  std::shared_ptr<Sequential> conv;
};

class MobileNetV2 : public Module {
public:
  explicit MobileNetV2(int64_t NumClasses) : Module("MobileNetV2") {
    // t (expansion), c (channels), n (repeats), s (first stride).
    static const int64_t Settings[][4] = {
        {1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
        {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    const double WidthMult = 1.0;
    const int64_t RoundNearest = 8;
    int64_t InputChannel = makeDivisible(32 * WidthMult, RoundNearest);
    int64_t LastChannel =
        makeDivisible(1280 * std::max(1.0, WidthMult), RoundNearest);

    features = register_module("features", std::make_shared<Sequential>());
    features->push_back(
        std::make_shared<Conv2dNormActivation>(3, InputChannel, 3, 2));
    for (const auto &S : Settings) {
      int64_t OutputChannel = makeDivisible(S[1] * WidthMult, RoundNearest);
      for (int64_t I = 0; I < S[2]; ++I) {
        features->push_back(std::make_shared<InvertedResidual>(
            InputChannel, OutputChannel, I == 0 ? S[3] : 1, S[0]));
        InputChannel = OutputChannel;
      }
    }
    features->push_back(
        std::make_shared<Conv2dNormActivation>(InputChannel, LastChannel, 1));

    classifier = register_module("classifier", std::make_shared<Sequential>());
    classifier->push_back(std::make_shared<Dropout>(0.2));
    classifier->push_back(std::make_shared<Linear>(LastChannel, NumClasses));
  }

  Value forward(Value X) override {
    X = (*features)(X);
    X = F::adaptive_avg_pool2d(X, {1, 1});
    X = F::flatten(X, 1);
    return (*classifier)(X);
  }

private:
  std::shared_ptr<Sequential> features, classifier;
};

//===----------------------------------------------------------------------===//
// MobileNetV3-Small
//===----------------------------------------------------------------------===//

/// torchvision.ops.SqueezeExcitation with MobileNetV3's Hardsigmoid gate.
class SqueezeExcitation : public Module {
public:
  SqueezeExcitation(int64_t In, int64_t Squeeze) : Module("SqueezeExcitation") {
    avgpool =
        register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
    fc1 = register_module("fc1", std::make_shared<Conv2d>(In, Squeeze, 1));
    fc2 = register_module("fc2", std::make_shared<Conv2d>(Squeeze, In, 1));
    activation = register_module("activation", std::make_shared<ReLU>());
    scale_activation =
        register_module("scale_activation", std::make_shared<Hardsigmoid>());
  }

  Value forward(Value X) override {
    Value Scale = (*avgpool)(X);
    Scale = (*fc1)(Scale);
    Scale = (*activation)(Scale);
    Scale = (*fc2)(Scale);
    Scale = (*scale_activation)(Scale);
    return Scale * X;
  }

private:
  std::shared_ptr<Module> avgpool, fc1, fc2, activation, scale_activation;
};

/// One row of torchvision's _mobilenet_v3_conf (width 1.0, not dilated).
struct BneckConf {
  int64_t In, Kernel, Expanded, Out;
  bool UseSE, UseHS;
  int64_t Stride;
};

/// torchvision.models.mobilenetv3.InvertedResidual.
class InvertedResidualV3 : public Module {
public:
  explicit InvertedResidualV3(const BneckConf &C)
      : Module("InvertedResidual"),
        UseResConnect(C.Stride == 1 && C.In == C.Out) {
    const NormArgs Norm{0.001, 0.01};
    Activation Act = C.UseHS ? Activation::Hardswish : Activation::ReLU;
    block = register_module("block", std::make_shared<Sequential>());
    if (C.Expanded != C.In)
      block->push_back(std::make_shared<Conv2dNormActivation>(
          C.In, C.Expanded, 1, 1, 1, Act, Norm));
    block->push_back(std::make_shared<Conv2dNormActivation>(
        C.Expanded, C.Expanded, C.Kernel, C.Stride, C.Expanded, Act, Norm));
    if (C.UseSE)
      block->push_back(std::make_shared<SqueezeExcitation>(
          C.Expanded, makeDivisible(C.Expanded / 4, 8)));
    block->push_back(std::make_shared<Conv2dNormActivation>(
        C.Expanded, C.Out, 1, 1, 1, Activation::None, Norm));
  }

  Value forward(Value X) override {
    Value Result = (*block)(X);
    if (UseResConnect)
      Result = Result + X;
    return Result;
  }

private:
  bool UseResConnect;
  std::shared_ptr<Sequential> block;
};

class MobileNetV3 : public Module {
public:
  explicit MobileNetV3(int64_t NumClasses) : Module("MobileNetV3") {
    // mobilenet_v3_small: in, kernel, expanded, out, SE, hardswish, stride.
    static const BneckConf Settings[] = {
        {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
        {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
        {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
        {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
        {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
        {96, 5, 576, 96, true, true, 1}};
    const NormArgs Norm{0.001, 0.01};
    const int64_t LastChannel = 1024;
    features = register_module("features", std::make_shared<Sequential>());
    features->push_back(std::make_shared<Conv2dNormActivation>(
        3, Settings[0].In, 3, 2, 1, Activation::Hardswish, Norm));
    for (const BneckConf &C : Settings)
      features->push_back(std::make_shared<InvertedResidualV3>(C));
    int64_t LastIn = std::end(Settings)[-1].Out, LastOut = 6 * LastIn;
    features->push_back(std::make_shared<Conv2dNormActivation>(
        LastIn, LastOut, 1, 1, 1, Activation::Hardswish, Norm));
    avgpool =
        register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1));
    classifier = register_module("classifier", std::make_shared<Sequential>());
    classifier->push_back(std::make_shared<Linear>(LastOut, LastChannel));
    classifier->push_back(std::make_shared<Hardswish>());
    classifier->push_back(std::make_shared<Dropout>(0.2));
    classifier->push_back(std::make_shared<Linear>(LastChannel, NumClasses));
  }

  Value forward(Value X) override {
    X = (*features)(X);
    X = (*avgpool)(X);
    X = F::flatten(X, 1);
    return (*classifier)(X);
  }

private:
  std::shared_ptr<Sequential> features, classifier;
  std::shared_ptr<Module> avgpool;
};

//===----------------------------------------------------------------------===//
// A MobileNetV3-style CNN for 28x28 inputs
//===----------------------------------------------------------------------===//

/// conv + BatchNorm2d (+ hardswish) as MobileNetV3 writes them.
std::shared_ptr<Module> convBn(int64_t In, int64_t Out, int64_t Kernel,
                               int64_t Stride, int64_t Groups, Activation Act) {
  return std::make_shared<Conv2dNormActivation>(In, Out, Kernel, Stride, Groups,
                                                Act, NormArgs{0.001, 0.01});
}

class MobileNetV3CNN : public Module {
public:
  explicit MobileNetV3CNN(int64_t NumClasses) : Module("MobileNetV3CNN") {
    stem = register_module("stem", convBn(1, 16, 3, 2, 1, Activation::None));
    dw1 = register_module("dw1", convBn(16, 16, 3, 1, 16, Activation::None));
    se1 = register_module("se1", std::make_shared<SqueezeExcitation>(16, 8));
    pw1 = register_module("pw1", convBn(16, 24, 1, 1, 1, Activation::None));
    expand2 = register_module("expand2",
                              convBn(24, 72, 1, 1, 1, Activation::Hardswish));
    dw2 =
        register_module("dw2", convBn(72, 72, 3, 2, 72, Activation::Hardswish));
    se2 = register_module("se2", std::make_shared<SqueezeExcitation>(72, 24));
    pw2 = register_module("pw2", convBn(72, 40, 1, 1, 1, Activation::None));
    head = register_module("head",
                           convBn(40, 128, 1, 1, 1, Activation::Hardswish));
    fc = register_module("fc", std::make_shared<Linear>(128, NumClasses));
  }

  Value forward(Value X) override {
    X = F::hardswish((*stem)(X));
    X = (*dw1)(X);
    X = X * F::sigmoid(X); // SiLU written out, as users do
    X = (*pw1)((*se1)(X));
    X = (*pw2)((*se2)((*dw2)((*expand2)(X))));
    X = F::adaptive_avg_pool2d((*head)(X), {1, 1});
    return (*fc)(F::flatten(X, 1));
  }

private:
  std::shared_ptr<Module> stem, dw1, se1, pw1, expand2, dw2, se2, pw2, head, fc;
};

//===----------------------------------------------------------------------===//
// ViT for Fashion-MNIST (the zoo's transformer; architecture shared with
// the PyTorch twin that trains models/vit_fashion.safetensors)
//===----------------------------------------------------------------------===//

constexpr int64_t VitHidden = 64, VitHeads = 4, VitHeadDim = 16, VitMlp = 128,
                  VitLayers = 4, VitPatch = 7, VitTokens = 17;

/// Multi-head self-attention with separate q/k/v projections, computed as
/// nn.MultiheadAttention does, so every Linear and matmul is its own node.
class SelfAttention : public Module {
public:
  SelfAttention() : Module("SelfAttention") {
    q_proj = register_module("q_proj",
                             std::make_shared<Linear>(VitHidden, VitHidden));
    k_proj = register_module("k_proj",
                             std::make_shared<Linear>(VitHidden, VitHidden));
    v_proj = register_module("v_proj",
                             std::make_shared<Linear>(VitHidden, VitHidden));
    out_proj = register_module("out_proj",
                               std::make_shared<Linear>(VitHidden, VitHidden));
  }

  Value forward(Value X) override {
    auto Heads = [](Value T) {
      return T.reshape({-1, VitTokens, VitHeads, VitHeadDim})
          .permute({0, 2, 1, 3});
    };
    Value Q = Heads((*q_proj)(X)), K = Heads((*k_proj)(X));
    Value V = Heads((*v_proj)(X));
    Value Scores = F::matmul(Q, K.transpose(-2, -1)) * 0.25; // 1/sqrt(16)
    Value Attn = F::softmax(Scores, -1);
    Value Ctx = F::matmul(Attn, V)
                    .permute({0, 2, 1, 3})
                    .reshape({-1, VitTokens, VitHidden});
    return (*out_proj)(Ctx);
  }

private:
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj;
};

/// torchvision's pre-norm EncoderBlock.
class EncoderBlock : public Module {
public:
  EncoderBlock() : Module("EncoderBlock") {
    ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(
                                       std::vector<int64_t>{VitHidden}, 1e-6));
    self_attention =
        register_module("self_attention", std::make_shared<SelfAttention>());
    ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(
                                       std::vector<int64_t>{VitHidden}, 1e-6));
    mlp = register_module(
        "mlp",
        std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Linear>(VitHidden, VitMlp),
            std::make_shared<GELU>(), std::make_shared<Dropout>(0.0),
            std::make_shared<Linear>(VitMlp, VitHidden),
            std::make_shared<Dropout>(0.0)}));
  }

  Value forward(Value X) override {
    X = X + (*self_attention)((*ln_1)(X));
    return X + (*mlp)((*ln_2)(X));
  }

private:
  std::shared_ptr<LayerNorm> ln_1, ln_2;
  std::shared_ptr<SelfAttention> self_attention;
  std::shared_ptr<Sequential> mlp;
};

/// A Sequential whose children have names (torchvision's OrderedDict).
class NamedSequential : public Module {
public:
  NamedSequential() : Module("Sequential") {}
  void add(std::string Name, std::shared_ptr<Module> M) {
    Order.push_back(register_module(std::move(Name), std::move(M)));
  }
  Value forward(Value X) override {
    for (const std::shared_ptr<Module> &M : Order)
      X = (*M)(X);
    return X;
  }

private:
  std::vector<std::shared_ptr<Module>> Order;
};

class Encoder : public Module {
public:
  Encoder() : Module("Encoder") {
    pos_embedding = register_parameter(
        "pos_embedding", uniformInit({1, VitTokens, VitHidden}, 0.02));
    layers = register_module("layers", std::make_shared<NamedSequential>());
    for (int64_t I = 0; I < VitLayers; ++I)
      layers->add("encoder_layer_" + std::to_string(I),
                  std::make_shared<EncoderBlock>());
    ln = register_module("ln", std::make_shared<LayerNorm>(
                                   std::vector<int64_t>{VitHidden}, 1e-6));
  }

  Value forward(Value X) override {
    return (*ln)((*layers)(X + Value(pos_embedding)));
  }

private:
  Tensor pos_embedding;
  std::shared_ptr<NamedSequential> layers;
  std::shared_ptr<LayerNorm> ln;
};

class VisionTransformer : public Module {
public:
  VisionTransformer() : Module("VisionTransformer") {
    conv_proj = register_module(
        "conv_proj",
        std::make_shared<Conv2d>(
            Conv2dOptions(1, VitHidden, VitPatch).stride(VitPatch)));
    class_token =
        register_parameter("class_token", uniformInit({1, 1, VitHidden}, 0.02));
    encoder = register_module("encoder", std::make_shared<Encoder>());
    heads = register_module("heads", std::make_shared<NamedSequential>());
    heads->add("head", std::make_shared<Linear>(VitHidden, 10));
  }

  Value forward(Value X) override {
    X = (*conv_proj)(X).flatten(2).transpose(1, 2);
    // batch_like: the graph takes N from X wherever it runs.
    Value Cls = Value(class_token).expand({X.size(0), -1, -1}, X);
    X = (*encoder)(F::cat({Cls, X}, 1));
    return (*heads)(X.select(1, 0));
  }

private:
  std::shared_ptr<Conv2d> conv_proj;
  Tensor class_token;
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<NamedSequential> heads;
};

} // namespace

std::shared_ptr<Module> mobilenet_v3_cnn(int64_t NumClasses) {
  return std::make_shared<MobileNetV3CNN>(NumClasses);
}

std::shared_ptr<Module> mobilenet_v3_small(int64_t NumClasses) {
  return std::make_shared<MobileNetV3>(NumClasses);
}

std::shared_ptr<Module> resnet18(int64_t NumClasses) {
  return std::make_shared<ResNet>(std::vector<int64_t>{2, 2, 2, 2}, NumClasses);
}

std::shared_ptr<Module> mobilenet_v2(int64_t NumClasses) {
  return std::make_shared<MobileNetV2>(NumClasses);
}

std::shared_ptr<Module> vit_fashion() {
  return std::make_shared<VisionTransformer>();
}

std::shared_ptr<Module> vit_encoder_block() {
  return std::make_shared<EncoderBlock>();
}

const std::vector<ZooEntry> &zoo() {
  static const std::vector<ZooEntry> Entries = {
      {"net",
       [] { return std::shared_ptr<Module>(std::make_shared<Net>()); },
       {1, 1, 28, 28}},
      {"resnet18", [] { return resnet18(); }, {1, 3, 224, 224}},
      {"mobilenet_v2", [] { return mobilenet_v2(); }, {1, 3, 224, 224}},
      {"mobilenet_v3_small",
       [] { return mobilenet_v3_small(); },
       {1, 3, 224, 224}},
      {"mobilenet_v3_cnn", [] { return mobilenet_v3_cnn(); }, {1, 1, 28, 28}},
      {"vit_fashion", [] { return vit_fashion(); }, {1, 1, 28, 28}},
  };
  return Entries;
}

} // namespace models
} // namespace qfx
