// RUN: qsim-opt %s -split-input-file -verify-diagnostics

func.func @local_pad_size(%a: tensor<1x2x6x6xf32>) -> tensor<1x3x6x6xf32> {
  // expected-error @+1 {{pad=1 needs size=3}}
  %0 = qsim.local %a {activation = #qsim.act<linear>, filters = 3 : i64, pad = 1 : i64, size = 5 : i64, stride = 1 : i64} : tensor<1x2x6x6xf32> -> tensor<1x3x6x6xf32>
  return %0 : tensor<1x3x6x6xf32>
}

// -----

func.func @local_weight(%a: tensor<1x2x4x4xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'weight' has shape [1, 1, 2, 3, 3], expected [4, 1, 2, 3, 3]}}
  %0 = qsim.local %a {activation = #qsim.act<linear>, filters = 1 : i64, pad = 0 : i64, size = 3 : i64, stride = 1 : i64, weight = dense<0.0> : tensor<1x1x2x3x3xf32>} : tensor<1x2x4x4xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @sam_shapes(%a: tensor<1x2x6x6xf32>, %b: tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32> {
  // expected-error @+1 {{[sam] multiplies equal shapes}}
  %0 = qsim.sam %a, %b {activation = #qsim.act<linear>} : (tensor<1x2x6x6xf32>, tensor<1x3x6x6xf32>) -> tensor<1x2x6x6xf32>
  return %0 : tensor<1x2x6x6xf32>
}

// -----

func.func @reorg3d_reverse(%a: tensor<1x8x2x2xf32>) -> tensor<1x2x4x4xf32> {
  // expected-error @+1 {{reverse needs channels divisible by stride^4 = 16}}
  %0 = qsim.reorg3d %a {stride = 2 : i64, reverse = true} : tensor<1x8x2x2xf32> -> tensor<1x2x4x4xf32>
  return %0 : tensor<1x2x4x4xf32>
}

// -----

func.func @detection_size(%a: tensor<1x27x1x1xf32>) -> tensor<1x27x1x1xf32> {
  // expected-error @+1 {{input has 27 values, side^2*((1+coords)*num+classes) = 28}}
  %0 = qsim.detection %a {classes = 2 : i64, coords = 4 : i64, side = 2 : i64} : tensor<1x27x1x1xf32> -> tensor<1x27x1x1xf32>
  return %0 : tensor<1x27x1x1xf32>
}

// -----

func.func @gaussian_channels(%a: tensor<1x10x4x4xf32>) -> tensor<1x10x4x4xf32> {
  // expected-error @+1 {{input has 10 channels, expected 1 * (9 + classes) = 11}}
  %0 = qsim.gaussian_yolo %a {anchors = array<f32: 10.0, 14.0>, classes = 2 : i64, mask = array<i64: 0>, num = 1 : i64} : tensor<1x10x4x4xf32> -> tensor<1x10x4x4xf32>
  return %0 : tensor<1x10x4x4xf32>
}

// -----

func.func @local_int8(%a: tensor<1x2x4x4x!quant.uniform<i8:f32, 0.1:0>>) -> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.1:0>> {
  // expected-error @+1 {{has no int8 form}}
  %0 = qsim.local %a {activation = #qsim.act<linear>, filters = 1 : i64, pad = 0 : i64, size = 3 : i64, stride = 1 : i64} : tensor<1x2x4x4x!quant.uniform<i8:f32, 0.1:0>> -> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.1:0>>
  return %0 : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.1:0>>
}
