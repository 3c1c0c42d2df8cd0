// RUN: qsim-opt %s | qsim-opt | FileCheck %s
// RUN: qsim-opt %s --emit-bytecode | qsim-opt | FileCheck %s
// A conv2d with 4-bit weights (--qsim-quantize weight-bits=4): i8 storage
// with the range [-7, 7], survives print -> parse (text and bytecode).

// CHECK-LABEL: func.func @w4
// CHECK: weight = dense<{{\[\[\[\[}}7]]], {{\[\[\[}}-7]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-7:7>:f32:0, {0.071428574621677399,0.1428571492433548}>
// CHECK-SAME: -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
func.func @w4(%in: tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>> {
  %0 = qsim.conv2d %in {activation = #qsim.act<linear>, bias = dense<[6477, 0]> : tensor<2xi32>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 39, 38>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[7]]], [[[-7]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-7:7>:f32:0, {0.071428574621677399,0.1428571492433548}>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
  return %0 : tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
}

// A W8A16 conv2d and max pool (--qsim-quantize activation-bits=16): int16
// activations, symmetric (zero point 0).
// CHECK-LABEL: func.func @w8a16
// CHECK: qsim.conv2d {{.*}} : tensor<1x1x2x2x!quant.uniform<i16:f32, 3.0518509475997192E-5>> -> tensor<1x2x2x2x!quant.uniform<i16:f32, 6.1037018951994385E-5>>
// CHECK: qsim.maxpool {{.*}} : tensor<1x2x2x2x!quant.uniform<i16:f32, 6.1037018951994385E-5>> -> tensor<1x2x1x1x!quant.uniform<i16:f32, 6.1037018951994385E-5>>
func.func @w8a16(%in: tensor<1x1x2x2x!quant.uniform<i16:f32, 3.0518509475997192E-5>>) -> tensor<1x2x1x1x!quant.uniform<i16:f32, 6.1037018951994385E-5>> {
  %0 = qsim.conv2d %in {activation = #qsim.act<leaky>, bias = dense<[6477, 0]> : tensor<2xi32>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, shift = array<i32: 31, 31>, neg_multiplier = array<i32: 1731514368, 1731514368>, neg_shift = array<i32: 35, 35>, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, weight = dense<[[[[127]]], [[[-127]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-127:127>:f32:0, {0.0039370078593492508,0.0078740157186985015}>} : tensor<1x1x2x2x!quant.uniform<i16:f32, 3.0518509475997192E-5>> -> tensor<1x2x2x2x!quant.uniform<i16:f32, 6.1037018951994385E-5>>
  %1 = qsim.maxpool %0 {size = 2 : i64, stride = array<i64: 2, 2>, padding = 0 : i64} : tensor<1x2x2x2x!quant.uniform<i16:f32, 6.1037018951994385E-5>> -> tensor<1x2x1x1x!quant.uniform<i16:f32, 6.1037018951994385E-5>>
  return %1 : tensor<1x2x1x1x!quant.uniform<i16:f32, 6.1037018951994385E-5>>
}
