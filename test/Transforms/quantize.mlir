// RUN: qsim-opt %s -split-input-file --qsim-quantize | FileCheck %s
// RUN: qsim-opt %s -split-input-file --qsim-quantize="weights=per-tensor activations=symmetric rounding=tosa-double accumulator=int16" | FileCheck %s --check-prefix=OPTS

// Input [0, 1] -> scale 1/255, zero point -128; conv output [-1, 1] ->
// scale 2/255, zero point round(-128 + 127.5) = -1. Per-channel weight
// scales 0.5/127 and 1/127 make both weights +-127. Bias 0.1 in units of
// s_in * s_w0 = 6477. M0 = s_in*s_w0/s_out = 0.0019685 = 1082196480 * 2^-39
// and the leaky branch 0.1 * M0 = 1731514368 * 2^-43 (values checked with an
// independent float32 computation).
// CHECK-LABEL: func.func @conv
// CHECK: %[[Q:.*]] = "quant.qcast"(%arg0) : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>
// CHECK: %[[C:.*]] = qsim.conv2d %[[Q]] {activation = #qsim.act<leaky>, bias = dense<[6477, 0]> : tensor<2xi32>, filters = 2 : i64, multiplier = array<i32: 1082196480, 1082196480>, neg_multiplier = array<i32: 1731514368, 1731514368>, neg_shift = array<i32: 43, 42>, {{.*}}shift = array<i32: 39, 38>, {{.*}}weight = dense<{{\[\[\[\[}}127]]], {{\[\[\[}}-127]]]]> : tensor<2x1x1x1xi8>, weight_quant = !quant.uniform<i8<-127:127>:f32:0, {0.0039370078593492508,0.0078740157186985015}>} : tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>> -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
// The max pool keeps its input's parameters; the result is dequantized.
// CHECK: %[[P:.*]] = qsim.maxpool %[[C]] {{.*}} -> tensor<1x2x1x1x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
// CHECK: %[[D:.*]] = "quant.dcast"(%[[P]])
// CHECK: return %[[D]]
// OPTS: module attributes {qsim.quantization = {accumulator = 16 : i64, activation_bits = 8 : i64, activations = "symmetric", rounding = "tosa-double", scale = "float", weight_bits = 8 : i64, weights = "per-tensor"}}
// OPTS-LABEL: func.func @conv
// OPTS: "quant.qcast"(%arg0) : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0078740157186985015>>
// OPTS: qsim.conv2d {{.*}}accumulator_bits = 16 : i64{{.*}}weight_quant = !quant.uniform<i8<-127:127>:f32, 0.0078740157186985015>
func.func @conv(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}}) -> tensor<1x2x1x1xf32> {
  %0 = qsim.conv2d %in {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<leaky>, weight = dense<[[[[0.5]]], [[[-1.0]]]]> : tensor<2x1x1x1xf32>, bias = dense<[0.1, 0.0]> : tensor<2xf32>, qsim.precision = "int8", qsim.calib = {lo = -1.0 : f32, hi = 1.0 : f32}} : tensor<1x1x2x2xf32> -> tensor<1x2x2x2xf32>
  %1 = qsim.maxpool %0 {size = 2 : i64, stride = array<i64: 2, 2>, padding = 0 : i64, qsim.precision = "int8"} : tensor<1x2x2x2xf32> -> tensor<1x2x1x1xf32>
  return %1 : tensor<1x2x1x1xf32>
}

// -----

// fp16 layers: f16 tensors and weights, truncf/extf at the boundaries; an
// int8 shortcut requantizes both inputs to its own scale with 2^16 extra
// fractional bits: M_i = 2^16 * s_i / s_out; a route with different input
// scales requantizes each input (M_i = s_i / s_out).
// CHECK-LABEL: func.func @mixed
// CHECK: %[[H:.*]] = arith.truncf %arg0 : tensor<1x1x2x2xf32> to tensor<1x1x2x2xf16>
// CHECK: %[[C16:.*]] = qsim.conv2d %[[H]] {{.*}}weight = dense<{{.*}}> : tensor<1x1x1x1xf16>} : tensor<1x1x2x2xf16> -> tensor<1x1x2x2xf16>
// CHECK: %[[E:.*]] = arith.extf %[[C16]] : tensor<1x1x2x2xf16> to tensor<1x1x2x2xf32>
// CHECK: %[[QA:.*]] = "quant.qcast"(%[[E]]) {{.*}}-> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
// CHECK: %[[QB:.*]] = "quant.qcast"(%arg0) {{.*}}-> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0039215688593685627:-128>>
// CHECK: qsim.shortcut %[[QA]], %[[QB]] {activation = #qsim.act<linear>, input_multiplier = array<i32: 1073741824, 1073741824>, input_shift = array<i32: 14, 15>{{.*}}} : {{.*}} -> tensor<1x1x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
// CHECK: qsim.route %[[QA]], %[[QB]] {input_multiplier = array<i32: 1073741824, 1073741824>, input_shift = array<i32: 30, 31>{{.*}}} : {{.*}} -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.0078431377187371254:-1>>
func.func @mixed(%in: tensor<1x1x2x2xf32> {qsim.calib = {lo = 0.0 : f32, hi = 1.0 : f32}}) -> (tensor<1x1x2x2xf32>, tensor<1x2x2x2xf32>) {
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<0.5> : tensor<1x1x1x1xf32>, bias = dense<0.0> : tensor<1xf32>, qsim.precision = "fp16", qsim.calib = {lo = -1.0 : f32, hi = 1.0 : f32}} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  %1 = qsim.shortcut %0, %in {activation = #qsim.act<linear>, qsim.precision = "int8", qsim.calib = {lo = -1.0 : f32, hi = 1.0 : f32}} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
  %2 = qsim.route %0, %in {qsim.precision = "int8", qsim.calib = {lo = -1.0 : f32, hi = 1.0 : f32}} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32>
  return %1, %2 : tensor<1x1x2x2xf32>, tensor<1x2x2x2xf32>
}
