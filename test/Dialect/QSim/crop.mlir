// RUN: qsim-opt %s | qsim-opt | FileCheck %s
// RUN: qsim-opt %s --emit-bytecode | qsim-opt | FileCheck %s
// qsim.crop (Darknet's [crop]) survives print -> parse, text and bytecode;
// the default scale/shift (2, -1) are elided.

// CHECK-LABEL: func.func @main
func.func @main(%in: tensor<1x3x10x9xf32>) -> (tensor<1x3x4x5xf32>, tensor<1x3x10x9xf32>) {
  // CHECK: qsim.crop %{{.*}} {crop_height = 4 : i64, crop_width = 5 : i64} : tensor<1x3x10x9xf32> -> tensor<1x3x4x5xf32>
  %a = qsim.crop %in {crop_height = 4 : i64, crop_width = 5 : i64} : tensor<1x3x10x9xf32> -> tensor<1x3x4x5xf32>
  // CHECK: qsim.crop %{{.*}} {crop_height = 10 : i64, crop_width = 9 : i64, scale = 1.000000e+00 : f32, shift = 0.000000e+00 : f32} : tensor<1x3x10x9xf32> -> tensor<1x3x10x9xf32>
  %b = qsim.crop %in {crop_height = 10 : i64, crop_width = 9 : i64, scale = 1.0 : f32, shift = 0.0 : f32} : tensor<1x3x10x9xf32> -> tensor<1x3x10x9xf32>
  return %a, %b : tensor<1x3x4x5xf32>, tensor<1x3x10x9xf32>
}
