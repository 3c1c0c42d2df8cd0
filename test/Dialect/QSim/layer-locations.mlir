// RUN: not qsim-opt %s 2>&1 | FileCheck %s
// Diagnostics point at the cfg line of the layer and name its Darknet index.

// CHECK: yolov3-tiny.cfg:87:1: error: layer 18 (route): input 1 is 4x4x4 but input 0 is 4x8x8 (route inputs must share width and height)
func.func @main(%a: tensor<1x4x8x8xf32>, %b: tensor<1x4x4x4xf32>) -> tensor<1x8x8x8xf32> {
  %0 = qsim.route %a, %b : (tensor<1x4x8x8xf32>, tensor<1x4x4x4xf32>) -> tensor<1x8x8x8xf32> loc(fused["yolov3-tiny.cfg":87:1, "layer 18"])
  return %0 : tensor<1x8x8x8xf32>
}
