// RUN: qsim-opt %s -split-input-file --qsim-quantize -verify-diagnostics
// RUN: not qsim-opt %s -split-input-file --qsim-quantize="weights=per-row" 2>&1 | FileCheck %s --check-prefix=OPT
// OPT: for the --weights option: 'per-row' is not a valid value: expected one of per-channel, per-tensor

// An int8 layer needs its input's calibrated range.
func.func @main(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{(convolutional): the network input has no calibrated range (run --qsim-calibrate before --qsim-quantize)}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>, qsim.precision = "int8", qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

// Batch norms must be folded first.
func.func @main(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}}) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{fold its batch norm before quantizing (--qsim-fold-batchnorm)}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>, qsim.precision = "int8"} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  %1 = qsim.batchnorm %0 {activation = #qsim.act<leaky>, scale = dense<1.0> : tensor<1xf32>, mean = dense<0.0> : tensor<1xf32>, variance = dense<1.0> : tensor<1xf32>, bias = dense<0.0> : tensor<1xf32>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %1 : tensor<1x1x2x2xf32>
}

// -----

// A layer without an int8 form cannot be planned int8.
func.func @main(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}}) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{(activation): has no int8 form}}
  %0 = qsim.activation %in {activation = #qsim.act<mish>, qsim.precision = "int8"} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

// Already quantized.
// expected-error @+1 {{the model is already quantized}}
module attributes {qsim.quantization = {rounding = "tflite"}} {
  func.func @main(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
    return %in : tensor<1x1x2x2xf32>
  }
}
