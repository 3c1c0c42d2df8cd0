// RUN: qsim-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-tile-and-vectorize{vector-width=0}))"
// RUN: qsim-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-tile-and-vectorize{pixel-tile=-2}))"

// expected-error @+1 {{vector-width and pixel-tile must be positive}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
