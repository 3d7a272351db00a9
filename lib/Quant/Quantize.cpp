//===- Quantize.cpp - Quantize, dequantize, fake-quantize ----------------===//
