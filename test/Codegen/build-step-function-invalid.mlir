// RUN: qsim-opt %s -split-input-file -verify-diagnostics --qsim-build-step-function

// expected-error @+1 {{no qsim.codegen table (run --qsim-lower-to-tosa)}}
module {
  func.func @model_layer_0(%out: memref<4xf32>) {
    return
  }
}

// -----

// expected-error @+1 {{missing layer function "model_layer_0"}}
module attributes {qsim.codegen = [{elem = "f32", func = "model_layer_0", index = 0 : i64, inputs = array<i64: -1>, kind = "convolutional", scale = 1.0 : f32, shape = array<i64: 1, 2, 2, 1>, zero_point = 0 : i64}], qsim.codegen.input = {flavor = "alexeyab", letter_box = false, prefix = "model", shape = array<i64: 1, 2, 2, 1>}} {
}
