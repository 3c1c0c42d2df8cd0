// RUN: qsim-opt %s | qsim-opt | FileCheck %s
// RUN: qsim-opt %s --emit-bytecode | qsim-opt | FileCheck %s
// Every qsim op survives print -> parse (text and bytecode) unchanged.

// CHECK-LABEL: func.func @main
func.func @main(%in: tensor<1x4x8x8xf32>) -> (tensor<1x18x4x4xf32>, tensor<1x2x1x1xf32>) {
  // CHECK: qsim.conv2d %{{.*}} {activation = #qsim.act<linear>, bias = dense<0.000000e+00> : tensor<4xf32>, filters = 4 : i64, padding = array<i64: 1, 1>, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, weight = dense<5.000000e-01> : tensor<4x4x3x3xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %c = qsim.conv2d %in {filters = 4 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64, dilation = 1 : i64, activation = #qsim.act<linear>, weight = dense<0.5> : tensor<4x4x3x3xf32>, bias = dense<0.0> : tensor<4xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.conv2d %{{.*}} {activation = #qsim.act<linear>, filters = 4 : i64, groups = 4 : i64, padding = array<i64: 1, 1>, size = array<i64: 3, 3>, stride = array<i64: 1, 1>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %dw = qsim.conv2d %c {filters = 4 : i64, size = array<i64: 3, 3>, stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 4 : i64, activation = #qsim.act<linear>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.batchnorm %{{.*}} {activation = #qsim.act<leaky>, bias = dense<0.000000e+00> : tensor<4xf32>, mean = dense<0.000000e+00> : tensor<4xf32>, scale = dense<1.000000e+00> : tensor<4xf32>, variance = dense<1.000000e+00> : tensor<4xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %bn = qsim.batchnorm %dw {activation = #qsim.act<leaky>, scale = dense<1.0> : tensor<4xf32>, mean = dense<0.0> : tensor<4xf32>, variance = dense<1.0> : tensor<4xf32>, bias = dense<0.0> : tensor<4xf32>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.batchnorm %{{.*}} {activation = #qsim.act<linear>, standalone = true} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %bn2 = qsim.batchnorm %bn {activation = #qsim.act<linear>, standalone = true} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.activation %{{.*}} {activation = #qsim.act<mish>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %a = qsim.activation %bn2 {activation = #qsim.act<mish>} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.maxpool %{{.*}} {padding = 1 : i64, size = 2 : i64, stride = array<i64: 2, 2>} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
  %mp = qsim.maxpool %a {size = 2 : i64, stride = array<i64: 2, 2>, padding = 1 : i64} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
  // CHECK: qsim.upsample %{{.*}} {stride = 2 : i64} : tensor<1x4x4x4xf32> -> tensor<1x4x8x8xf32>
  %up = qsim.upsample %mp {stride = 2 : i64, scale = 1.0 : f32} : tensor<1x4x4x4xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.upsample %{{.*}} {stride = -2 : i64} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
  %down = qsim.upsample %up {stride = -2 : i64} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
  // CHECK: qsim.route %{{.*}}, %{{.*}} {group_id = 1 : i64, groups = 2 : i64} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %r = qsim.route %up, %a {groups = 2 : i64, group_id = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: qsim.shortcut %{{.*}}, %{{.*}} {activation = #qsim.act<linear>} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %s = qsim.shortcut %r, %a {activation = #qsim.act<linear>} : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: qsim.reorg %{{.*}} {stride = 2 : i64} : tensor<1x4x8x8xf32> -> tensor<1x16x4x4xf32>
  %ro = qsim.reorg %s {stride = 2 : i64} : tensor<1x4x8x8xf32> -> tensor<1x16x4x4xf32>
  // CHECK: qsim.reorg %{{.*}} {reverse = true, stride = 2 : i64} : tensor<1x16x4x4xf32> -> tensor<1x4x8x8xf32>
  %rr = qsim.reorg %ro {stride = 2 : i64, reverse = true} : tensor<1x16x4x4xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.avgpool %{{.*}} : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
  %gap = qsim.avgpool %rr : tensor<1x4x8x8xf32> -> tensor<1x4x1x1xf32>
  // CHECK: qsim.scale_channels %{{.*}}, %{{.*}} {activation = #qsim.act<linear>} : (tensor<1x4x1x1xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %sc = qsim.scale_channels %gap, %rr {activation = #qsim.act<linear>} : (tensor<1x4x1x1xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  // CHECK: qsim.dropout %{{.*}} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %d = qsim.dropout %sc {probability = 0.2 : f32} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  // CHECK: qsim.conv2d %{{.*}} {activation = #qsim.act<linear>, dilation = 2 : i64, filters = 18 : i64, padding = array<i64: 1, 1>, size = array<i64: 3, 3>, stride = array<i64: 2, 2>} : tensor<1x4x8x8xf32> -> tensor<1x18x4x4xf32>
  %h = qsim.conv2d %d {filters = 18 : i64, size = array<i64: 3, 3>, stride = array<i64: 2, 2>, padding = array<i64: 1, 1>, dilation = 2 : i64, activation = #qsim.act<linear>} : tensor<1x4x8x8xf32> -> tensor<1x18x4x4xf32>
  // CHECK: qsim.yolo %{{.*}} {anchors = array<f32: 1.000000e+01, 1.400000e+01, 2.300000e+01, 2.700000e+01>, classes = 4 : i64, mask = array<i64: 0, 1>, nms_kind = #qsim.nms<greedynms>, num = 2 : i64, scale_x_y = 1.050000e+00 : f32} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  %y = qsim.yolo %h {classes = 4 : i64, num = 2 : i64, mask = array<i64: 0, 1>, anchors = array<f32: 10.0, 14.0, 23.0, 27.0>, scale_x_y = 1.05 : f32, nms_kind = #qsim.nms<greedynms>} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  // CHECK: qsim.region %{{.*}} {anchors = array<f32: 1.000000e+00, 2.000000e+00>, classes = 13 : i64, num = 1 : i64, softmax = true} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  %rg = qsim.region %h {classes = 13 : i64, coords = 4 : i64, num = 1 : i64, anchors = array<f32: 1.0, 2.0>, softmax = true} : tensor<1x18x4x4xf32> -> tensor<1x18x4x4xf32>
  // CHECK: qsim.connected %{{.*}} {activation = #qsim.act<logistic>, output_size = 2 : i64, weight = dense<1.000000e-01> : tensor<2x288xf32>} : tensor<1x18x4x4xf32> -> tensor<1x2x1x1xf32>
  %fc = qsim.connected %rg {output_size = 2 : i64, activation = #qsim.act<logistic>, weight = dense<0.1> : tensor<2x288xf32>} : tensor<1x18x4x4xf32> -> tensor<1x2x1x1xf32>
  // CHECK: qsim.softmax %{{.*}} : tensor<1x2x1x1xf32> -> tensor<1x2x1x1xf32>
  %sm = qsim.softmax %fc {groups = 1 : i64, temperature = 1.0 : f32} : tensor<1x2x1x1xf32> -> tensor<1x2x1x1xf32>
  return %y, %sm : tensor<1x18x4x4xf32>, tensor<1x2x1x1xf32>
}
