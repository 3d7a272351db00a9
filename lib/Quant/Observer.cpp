//===- Observer.cpp - Calibration observers -------------------------------===//
