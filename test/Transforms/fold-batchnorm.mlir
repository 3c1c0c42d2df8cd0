// RUN: qsim-opt %s --qsim-fold-batchnorm -split-input-file | FileCheck %s

// AlexeyAB: w' = w * s / sqrt(v + 1e-5), b' = b - s * m / sqrt(v + 1e-5).
// f0: 1 * 2 / sqrt(4.00001) = 0.99999875, 0.5 - 2 * 0.5 / sqrt(4.00001) = 6.26e-7
// f1: -2 * 1 / sqrt(0.99999) = -2.0000000, 0 - 0 = 0
// The batch norm's output distribution N(beta, gamma^2) stays as
// qsim.bn_stats (analytic bias correction reads it).
// CHECK-LABEL: func.func @alexeyab
// CHECK: qsim.conv2d %arg0 {activation = #qsim.act<leaky>, bias = dense<[6.25{{[0-9]*}}E-7, 0.000000e+00]> : tensor<2xf32>, filters = 2 : i64, padding = array<i64: 0, 0>, qsim.bn_stats = {mean = array<f32: 5.000000e-01, 0.000000e+00>, std = array<f32: 2.000000e+00, 1.000000e+00>}, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, weight = dense<{{\[\[\[\[}}0.99999874{{[0-9]*}}]]], {{\[\[\[}}-2.000000e+00]]]]> : tensor<2x1x1x1xf32>}
// CHECK-NOT: qsim.batchnorm
module attributes {qsim.flavor = "alexeyab"} {
  func.func @alexeyab(%in: tensor<1x1x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %0 = qsim.conv2d %in {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<[[[[1.0]]], [[[-2.0]]]]> : tensor<2x1x1x1xf32>} : tensor<1x1x4x4xf32> -> tensor<1x2x4x4xf32>
    %1 = qsim.batchnorm %0 {activation = #qsim.act<leaky>, scale = dense<[2.0, 1.0]> : tensor<2xf32>, mean = dense<[0.5, 0.0]> : tensor<2xf32>, variance = dense<[4.0, 0.99999]> : tensor<2xf32>, bias = dense<[0.5, 0.0]> : tensor<2xf32>} : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
    return %1 : tensor<1x2x4x4xf32>
  }
}

// -----

// pjreddie: sd = sqrt(v) + 1e-6, so sd = 2.000001 for v = 4.
// CHECK-LABEL: func.func @pjreddie
// CHECK: qsim.connected %arg0 {activation = #qsim.act<logistic>, bias = dense<-0.99999{{[0-9]*}}> : tensor<1xf32>, output_size = 1 : i64, qsim.bn_stats = {mean = array<f32: 0.000000e+00>, std = array<f32: 2.000000e+00>}, weight = dense<{{\[\[}}0.99999{{[0-9]*}}, 1.99999{{[0-9]*}}]]> : tensor<1x2xf32>}
module attributes {qsim.flavor = "pjreddie"} {
  func.func @pjreddie(%in: tensor<1x2x1x1xf32>) -> tensor<1x1x1x1xf32> {
    %0 = qsim.connected %in {output_size = 1 : i64, activation = #qsim.act<linear>, weight = dense<[[1.0, 2.0]]> : tensor<1x2xf32>} : tensor<1x2x1x1xf32> -> tensor<1x1x1x1xf32>
    %1 = qsim.batchnorm %0 {activation = #qsim.act<logistic>, scale = dense<2.0> : tensor<1xf32>, mean = dense<1.0> : tensor<1xf32>, variance = dense<4.0> : tensor<1xf32>, bias = dense<0.0> : tensor<1xf32>} : tensor<1x1x1x1xf32> -> tensor<1x1x1x1xf32>
    return %1 : tensor<1x1x1x1xf32>
  }
}

// -----

// A negative gamma: the deviation is |gamma|.
// CHECK-LABEL: func.func @negative_gamma
// CHECK: qsim.bn_stats = {mean = array<f32: -1.500000e+00>, std = array<f32: 3.000000e+00>}
func.func @negative_gamma(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  %1 = qsim.batchnorm %0 {activation = #qsim.act<relu>, scale = dense<-3.0> : tensor<1xf32>, mean = dense<0.0> : tensor<1xf32>, variance = dense<1.0> : tensor<1xf32>, bias = dense<-1.5> : tensor<1xf32>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %1 : tensor<1x1x2x2xf32>
}

// -----

// A standalone [batchnorm] layer is not folded (it is a layer of its own).
// CHECK-LABEL: func.func @standalone
// CHECK: qsim.batchnorm %{{.*}} {activation = #qsim.act<linear>, {{.*}}standalone = true
func.func @standalone(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xf32>, bias = dense<0.0> : tensor<1xf32>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  %1 = qsim.batchnorm %0 {activation = #qsim.act<linear>, standalone = true, scale = dense<1.0> : tensor<1xf32>, mean = dense<0.0> : tensor<1xf32>, variance = dense<1.0> : tensor<1xf32>, bias = dense<0.0> : tensor<1xf32>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %1 : tensor<1x1x2x2xf32>
}
