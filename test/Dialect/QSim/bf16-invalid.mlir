// RUN: qsim-opt %s -split-input-file -verify-diagnostics
// A bf16 layer keeps bf16 from input to result; bf16 is a float element
// type, never mixed with f16 or f32 inside one layer, and an int8 layer
// does not read it.

func.func @mixed_in_out(%in: tensor<1x1x2x2xbf16>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{float layers need the same f32, f16 or bf16 element type on input and result}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xbf16>} : tensor<1x1x2x2xbf16> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}

// -----

func.func @f16_vs_bf16(%in: tensor<1x1x2x2xf16>) -> tensor<1x1x2x2xbf16> {
  // expected-error @+1 {{float layers need the same f32, f16 or bf16 element type on input and result}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1.0> : tensor<1x1x1x1xbf16>} : tensor<1x1x2x2xf16> -> tensor<1x1x2x2xbf16>
  return %0 : tensor<1x1x2x2xbf16>
}

// -----

func.func @integer_weights(%in: tensor<1x1x2x2xbf16>) -> tensor<1x1x2x2xbf16> {
  // expected-error @+1 {{float layer needs f32, f16 or bf16 weights}}
  %0 = qsim.conv2d %in {filters = 1 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>, weight = dense<1> : tensor<1x1x1x1xi8>} : tensor<1x1x2x2xbf16> -> tensor<1x1x2x2xbf16>
  return %0 : tensor<1x1x2x2xbf16>
}

// -----

func.func @precision_name(%in: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
  // expected-error @+1 {{'qsim.precision' must be "fp32", "fp16", "bf16", "int8" or "w8a16"}}
  %0 = qsim.maxpool %in {size = 1 : i64, stride = array<i64: 1, 1>, padding = 0 : i64, qsim.precision = "bfloat16"} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
  return %0 : tensor<1x1x2x2xf32>
}
