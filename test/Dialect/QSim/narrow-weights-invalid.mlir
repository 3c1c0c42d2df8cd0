// RUN: qsim-opt %s -split-input-file -verify-diagnostics
// Quantized weights are a symmetric 2..8-bit grid in i8 storage, and every
// stored weight lies on it.

func.func @asymmetric_range(%in: tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  // expected-error @+1 {{(convolutional): weight_quant storage range [-8, 7] is not a symmetric 2..8-bit grid [-q, q], q = 2^(bits-1) - 1}}
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[7]]], [[[-7]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-8:7>:f32, 0.1>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// -----

func.func @not_a_width(%in: tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  // expected-error @+1 {{weight_quant storage range [-5, 5] is not a symmetric 2..8-bit grid}}
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[5]]], [[[-5]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-5:5>:f32, 0.1>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// -----

func.func @weight_outside_grid(%in: tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  // expected-error @+1 {{(convolutional): weight 1 is -9, outside weight_quant's range [-7, 7]}}
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[7]]], [[[-9]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-7:7>:f32, 0.1>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// -----

func.func @splat_outside_grid(%in: tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  // expected-error @+1 {{weight 0 is 2, outside weight_quant's range [-1, 1]}}
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<2> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-1:1>:f32, 0.1>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// -----

func.func @int16_into_int8(%in: tensor<1x1x2x2x!quant.uniform<i16:f32, 3.0E-5>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  // expected-error @+1 {{(convolutional): a W8A16 layer has int16 input and result}}
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[7]]], [[[-7]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-127:127>:f32, 0.1>} : tensor<1x1x2x2x!quant.uniform<i16:f32, 3.0E-5>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// -----

func.func @int16_route(%in: tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5>>) -> tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5>> {
  // expected-error @+1 {{(route): has no int16 (W8A16) form}}
  %0 = qsim.route %in {input_multiplier = array<i32: 1073741824>, input_shift = array<i32: 30>} : (tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5>>) -> tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5>>
}

// -----

func.func @int16_with_zero_point(%in: tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5:5>>) -> tensor<1x2x1x1x!quant.uniform<i16:f32, 3.0E-5:5>> {
  // expected-error @+1 {{is neither f32, f16, bf16, !quant.uniform<i8:f32, scale:zero_point> nor !quant.uniform<i16:f32, scale>}}
  %0 = qsim.maxpool %in {size = 2 : i64, stride = array<i64: 2, 2>, padding = 0 : i64} : tensor<1x2x2x2x!quant.uniform<i16:f32, 3.0E-5:5>> -> tensor<1x2x1x1x!quant.uniform<i16:f32, 3.0E-5:5>>
  return %0 : tensor<1x2x1x1x!quant.uniform<i16:f32, 3.0E-5:5>>
}
