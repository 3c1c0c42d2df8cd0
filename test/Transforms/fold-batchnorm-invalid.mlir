// RUN: qsim-opt %s --qsim-fold-batchnorm -verify-diagnostics

// A shape-only model has no batch-norm parameters to fold.
func.func @main(%in: tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32> {
  %0 = qsim.conv2d %in {filters = 2 : i64, size = array<i64: 1, 1>, stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, activation = #qsim.act<linear>} : tensor<1x1x2x2xf32> -> tensor<1x2x2x2xf32>
  // expected-error @+1 {{the batch norm has no parameters to fold (a shape-only model: import it with weights)}}
  %1 = qsim.batchnorm %0 {activation = #qsim.act<leaky>} : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
  return %1 : tensor<1x2x2x2xf32>
}
