//===- QConfig.cpp - Quantization specs and presets ----------------------===//
