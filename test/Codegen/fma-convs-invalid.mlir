// RUN: qsim-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-fma-convs{lanes=-4}))"
// RUN: qsim-opt %s -split-input-file -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-fma-convs{lanes=16 registers=2}))"

// expected-error @+1 {{qsim-fma-convs: lanes must be positive (or 0: off) and registers at least 4}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
