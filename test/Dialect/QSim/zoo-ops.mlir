// RUN: qsim-opt %s | qsim-opt | FileCheck %s
// RUN: qsim-opt %s --emit-bytecode | qsim-opt | FileCheck %s
// The ops of the Darknet zoo layers (docs/darknet.md §R4.16-§R4.21) survive
// print -> parse, text and bytecode; defaults are elided.

// CHECK-LABEL: func.func @main
func.func @main(%in: tensor<1x2x6x6xf32>, %flat: tensor<1x28x1x1xf32>, %g: tensor<1x11x4x4xf32>) -> (tensor<1x3x6x6xf32>, tensor<1x2x3x3xf32>, tensor<1x8x3x3xf32>, tensor<1x2x6x6xf32>, tensor<1x28x1x1xf32>, tensor<1x11x4x4xf32>, tensor<1x2x6x6xf32>) {
  // CHECK: qsim.local %{{.*}} {activation = #qsim.act<leaky>, filters = 3 : i64, pad = 1 : i64, size = 3 : i64, stride = 1 : i64} : tensor<1x2x6x6xf32> -> tensor<1x3x6x6xf32>
  %a = qsim.local %in {activation = #qsim.act<leaky>, filters = 3 : i64, pad = 1 : i64, size = 3 : i64, stride = 1 : i64} : tensor<1x2x6x6xf32> -> tensor<1x3x6x6xf32>
  // CHECK: qsim.local_avgpool %{{.*}} {padding = 1 : i64, size = 2 : i64, stride = array<i64: 2, 2>} : tensor<1x2x6x6xf32> -> tensor<1x2x3x3xf32>
  %b = qsim.local_avgpool %in {padding = 1 : i64, size = 2 : i64, stride = array<i64: 2, 2>} : tensor<1x2x6x6xf32> -> tensor<1x2x3x3xf32>
  // CHECK: qsim.reorg3d %{{.*}} {stride = 2 : i64} : tensor<1x2x6x6xf32> -> tensor<1x8x3x3xf32>
  %c = qsim.reorg3d %in {stride = 2 : i64} : tensor<1x2x6x6xf32> -> tensor<1x8x3x3xf32>
  // CHECK: qsim.sam %{{.*}}, %{{.*}} {activation = #qsim.act<linear>} : (tensor<1x2x6x6xf32>, tensor<1x2x6x6xf32>) -> tensor<1x2x6x6xf32>
  %d = qsim.sam %in, %in {activation = #qsim.act<linear>} : (tensor<1x2x6x6xf32>, tensor<1x2x6x6xf32>) -> tensor<1x2x6x6xf32>
  // CHECK: qsim.detection %{{.*}} {classes = 2 : i64, coords = 4 : i64, side = 2 : i64, softmax = true} : tensor<1x28x1x1xf32> -> tensor<1x28x1x1xf32>
  %e = qsim.detection %flat {classes = 2 : i64, coords = 4 : i64, num = 1 : i64, side = 2 : i64, softmax = true} : tensor<1x28x1x1xf32> -> tensor<1x28x1x1xf32>
  // CHECK: qsim.gaussian_yolo %{{.*}} {anchors = array<f32: 1.000000e+01, 1.400000e+01>, classes = 2 : i64, mask = array<i64: 0>, num = 1 : i64} : tensor<1x11x4x4xf32> -> tensor<1x11x4x4xf32>
  %f = qsim.gaussian_yolo %g {anchors = array<f32: 10.0, 14.0>, classes = 2 : i64, mask = array<i64: 0>, num = 1 : i64} : tensor<1x11x4x4xf32> -> tensor<1x11x4x4xf32>
  // CHECK: qsim.conv2d %{{.*}} xnor = true
  %x = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, padding = array<i64: 1, 1>, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, xnor = true} : tensor<1x2x6x6xf32> -> tensor<1x2x6x6xf32>
  return %a, %b, %c, %d, %e, %f, %x : tensor<1x3x6x6xf32>, tensor<1x2x3x3xf32>, tensor<1x8x3x3xf32>, tensor<1x2x6x6xf32>, tensor<1x28x1x1xf32>, tensor<1x11x4x4xf32>, tensor<1x2x6x6xf32>
}
