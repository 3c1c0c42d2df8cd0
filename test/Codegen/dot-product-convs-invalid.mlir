// RUN: not qsim-opt %s --pass-pipeline="builtin.module(func.func(qsim-dot-product-convs{isa=sse}))" 2>&1 | FileCheck %s

// CHECK: for the --isa option: 'sse' is not a valid value: expected one of none, avx512-vnni, neon-dotprod
func.func @f(%x: tensor<4xi8>) -> tensor<4xi8> {
  return %x : tensor<4xi8>
}
