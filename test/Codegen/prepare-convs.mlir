// RUN: qsim-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-prepare-convs))" | FileCheck %s

// A filter that is not a constant cannot be transposed at compile time: the
// convolution stays in TOSA's layout (correct, slower) and the user is told.
// CHECK-LABEL: func.func @weights_as_argument
// CHECK: linalg.conv_2d_nhwc_fhwc
func.func @weights_as_argument(%x: tensor<1x8x8x4xf32>, %w: tensor<2x3x3x4xf32>) -> tensor<1x6x6x2xf32> {
  %init = tensor.empty() : tensor<1x6x6x2xf32>
  // expected-warning @+1 {{convolution kept in its TOSA filter layout}}
  %0 = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x8x8x4xf32>, tensor<2x3x3x4xf32>) outs(%init : tensor<1x6x6x2xf32>) -> tensor<1x6x6x2xf32>
  return %0 : tensor<1x6x6x2xf32>
}

// -----

// A constant filter is transposed to HWCF at compile time.
// CHECK-LABEL: func.func @constant_weights
// CHECK: arith.constant dense<{{.*}}> : tensor<1x1x2x3xf32>
// CHECK: linalg.conv_2d_nhwc_hwcf
func.func @constant_weights(%x: tensor<1x4x4x2xf32>) -> tensor<1x4x4x3xf32> {
  %w = arith.constant dense<[[[[1.0, 2.0]]], [[[3.0, 4.0]]], [[[5.0, 6.0]]]]> : tensor<3x1x1x2xf32>
  %init = tensor.empty() : tensor<1x4x4x3xf32>
  %0 = linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<1x4x4x2xf32>, tensor<3x1x1x2xf32>) outs(%init : tensor<1x4x4x3xf32>) -> tensor<1x4x4x3xf32>
  return %0 : tensor<1x4x4x3xf32>
}
