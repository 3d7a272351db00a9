//===- QuantizeFx.cpp - prepare_fx / convert_fx for C++ models -----------===//
