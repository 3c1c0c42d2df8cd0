// RUN: qsim-opt %s -split-input-file | FileCheck %s
// RUN: qsim-opt %s -split-input-file | qsim-opt -split-input-file | FileCheck %s
// The qsim.* attributes the dialect declares, where they belong, round-trip.

// CHECK: module attributes {qsim.flavor = "pjreddie", qsim.letter_box = true, qsim.source = "m.cfg", qsim.weights_header = array<i64: 0, 2, 5, 0>}
module attributes {qsim.flavor = "pjreddie", qsim.letter_box = true, qsim.source = "m.cfg", qsim.weights_header = array<i64: 0, 2, 5, 0>} {
  // CHECK: func.func @main(%{{.*}}: tensor<1x1x2x2xf32> {qsim.calib = {hi = 1.000000e+00 : f32, lo = 0.000000e+00 : f32}})
  func.func @main(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}}) -> tensor<1x1x2x2xf32> {
    // CHECK: qsim.maxpool {{.*}}qsim.calib = {{.*}}qsim.precision = "int8", qsim.precision_reason = "explicit"
    %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.calib = {method = "minmax", min = 0.0 : f32, max = 1.0 : f32, lo = 0.0 : f32, hi = 1.0 : f32, images = 2 : i64}, qsim.precision = "int8", qsim.precision_reason = "explicit"} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
    return %0 : tensor<1x1x2x2xf32>
  }
}

// -----

// A qsim-train checkpoint records where training stopped.
// CHECK: module attributes {qsim.training = {seed = 1 : i64, step = 100 : i64, steps = 2000 : i64}}
module attributes {qsim.training = {step = 100 : i64, steps = 2000 : i64, seed = 1 : i64}} {}

// -----

// A folded batch norm's statistics (--qsim-fold-batchnorm keeps them).
// CHECK: qsim.conv2d {{.*}}qsim.bn_stats = {mean = array<f32: 5.000000e-01, -2.500000e-01>, std = array<f32: 2.000000e+00, 0.000000e+00>}
func.func @bn_stats(%in: tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = qsim.conv2d %in {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<relu>, weight = dense<1.0> : tensor<2x1x1x1xf32>, bias = dense<0.0> : tensor<2xf32>, qsim.bn_stats = {mean = array<f32: 0.5, -0.25>, std = array<f32: 2.0, 0.0>}} : tensor<1x1x2x2xf32> -> tensor<1x2x2x2xf32>
  return %0 : tensor<1x2x2x2xf32>
}

// -----

// The subsampling of a strided [shortcut]'s from= layer (the import's
// reading of pjreddie's shortcut).
// CHECK: qsim.maxpool {{.*}}qsim.shortcut_subsample
func.func @subsample(%a: tensor<1x2x2x2xf32>, %b: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
  %0 = qsim.maxpool %b {size = 1 : i64, stride = array<i64: 2, 2>, padding = 0 : i64, qsim.shortcut_subsample} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
  %1 = qsim.shortcut %a, %0 {activation = #qsim.act<linear>} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
  return %1 : tensor<1x2x2x2xf32>
}
