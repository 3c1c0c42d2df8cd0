// RUN: qsim-opt %s -verify-diagnostics --pass-pipeline="builtin.module(func.func(qsim-dot-product-convs{isa=sse}))"

// expected-error @+1 {{qsim-dot-product-convs: unknown isa 'sse' (none, avx512-vnni or neon-dotprod)}}
func.func @f(%x: tensor<4xi8>) -> tensor<4xi8> {
  return %x : tensor<4xi8>
}
