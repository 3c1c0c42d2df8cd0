// RUN: qsim-opt %s | qsim-opt | FileCheck %s
// RUN: qsim-opt %s --emit-bytecode | qsim-opt | FileCheck %s
// bf16 layers (what --qsim-quantize makes of a layer planned bf16): bf16
// tensors, weights, biases and batch-norm parameters survive print -> parse
// (text and bytecode), with the casts at the boundaries.

// CHECK-LABEL: func.func @bf16
// CHECK: %[[T:.*]] = arith.truncf %arg0 : tensor<1x1x2x2xf32> to tensor<1x1x2x2xbf16>
// CHECK: %[[C:.*]] = qsim.conv2d %[[T]] {{{.*}}bias = dense<[1.000980e-01, -2.000000e+00]> : tensor<2xbf16>{{.*}}qsim.precision = "bf16"{{.*}}weight = dense<{{\[\[\[\[}}1.000000e+00]]], {{\[\[\[}}1.015630e+00]]]]> : tensor<2x1x1x1xbf16>} : tensor<1x1x2x2xbf16> -> tensor<1x2x2x2xbf16>
// CHECK: %[[B:.*]] = qsim.batchnorm %[[C]] {{{.*}}mean = dense<5.000000e-01> : tensor<2xbf16>{{.*}}} : tensor<1x2x2x2xbf16> -> tensor<1x2x2x2xbf16>
// CHECK: %[[F:.*]] = qsim.connected %[[B]] {{{.*}}} : tensor<1x2x2x2xbf16> -> tensor<1x3x1x1xbf16>
// CHECK: arith.extf %[[F]] : tensor<1x3x1x1xbf16> to tensor<1x3x1x1xf32>
func.func @bf16(%in: tensor<1x1x2x2xf32>) -> tensor<1x3x1x1xf32> {
  %t = arith.truncf %in : tensor<1x1x2x2xf32> to tensor<1x1x2x2xbf16>
  %0 = qsim.conv2d %t {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<leaky>, weight = dense<[[[[1.0]]], [[[1.015625]]]]> : tensor<2x1x1x1xbf16>, bias = dense<[0.10009765625, -2.0]> : tensor<2xbf16>, qsim.precision = "bf16"} : tensor<1x1x2x2xbf16> -> tensor<1x2x2x2xbf16>
  %1 = qsim.batchnorm %0 {activation = #qsim.act<linear>, standalone = true, scale = dense<1.0> : tensor<2xbf16>, mean = dense<0.5> : tensor<2xbf16>, variance = dense<2.0> : tensor<2xbf16>, bias = dense<0.25> : tensor<2xbf16>, qsim.precision = "bf16"} : tensor<1x2x2x2xbf16> -> tensor<1x2x2x2xbf16>
  %2 = qsim.connected %1 {output_size = 3 : i64, activation = #qsim.act<linear>, weight = dense<0.5> : tensor<3x8xbf16>, bias = dense<0.0> : tensor<3xbf16>, qsim.precision = "bf16"} : tensor<1x2x2x2xbf16> -> tensor<1x3x1x1xbf16>
  %3 = arith.extf %2 : tensor<1x3x1x1xbf16> to tensor<1x3x1x1xf32>
  return %3 : tensor<1x3x1x1xf32>
}
