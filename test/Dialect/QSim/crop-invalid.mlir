// RUN: qsim-opt %s -split-input-file -verify-diagnostics

func.func @crop_too_large(%a: tensor<1x3x8x8xf32>) -> tensor<1x3x9x4xf32> {
  // expected-error @+1 {{crop 9x4 (height x width) does not fit in the input 3x8x8}}
  %0 = qsim.crop %a {crop_height = 9 : i64, crop_width = 4 : i64} : tensor<1x3x8x8xf32> -> tensor<1x3x9x4xf32>
  return %0 : tensor<1x3x9x4xf32>
}

// -----

func.func @crop_zero(%a: tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{crop_height and crop_width must be >= 1, got 0x8}}
  %0 = qsim.crop %a {crop_height = 0 : i64, crop_width = 8 : i64} : tensor<1x3x8x8xf32> -> tensor<1x3x8x8xf32>
  return %0 : tensor<1x3x8x8xf32>
}

// -----

func.func @crop_result(%a: tensor<1x3x8x8xf32>) -> tensor<1x3x4x4xf32> {
  // expected-error @+1 {{result shape [1, 3, 4, 4] does not match Darknet's [1, 3, 4, 5]}}
  %0 = qsim.crop %a {crop_height = 4 : i64, crop_width = 5 : i64} : tensor<1x3x8x8xf32> -> tensor<1x3x4x4xf32>
  return %0 : tensor<1x3x4x4xf32>
}

// -----

func.func @crop_int8(%a: tensor<1x3x8x8x!quant.uniform<i8:f32, 0.1:0>>) -> tensor<1x3x4x4x!quant.uniform<i8:f32, 0.1:0>> {
  // expected-error @+1 {{has no int8 form}}
  %0 = qsim.crop %a {crop_height = 4 : i64, crop_width = 4 : i64} : tensor<1x3x8x8x!quant.uniform<i8:f32, 0.1:0>> -> tensor<1x3x4x4x!quant.uniform<i8:f32, 0.1:0>>
  return %0 : tensor<1x3x4x4x!quant.uniform<i8:f32, 0.1:0>>
}
