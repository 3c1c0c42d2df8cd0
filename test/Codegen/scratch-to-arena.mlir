// RUN: qsim-opt %s -split-input-file -verify-diagnostics --qsim-scratch-to-arena | FileCheck %s

// A layer's temporaries become 64-byte aligned views of one scratch buffer,
// appended as the last argument; each layer records its need (the step
// function takes the largest).
// CHECK-LABEL: func.func @model_layer_0(%arg0: memref<4x4xf32>, %arg1: memref<1088xi8>)
// CHECK-SAME: qsim.scratch_bytes = 1088 : i64
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: memref.view %arg1[%[[C0]]][] : memref<1088xi8> to memref<16x16xf32>
// CHECK: %[[C1024:.*]] = arith.constant 1024 : index
// CHECK: memref.view %arg1[%[[C1024]]][] : memref<1088xi8> to memref<4xi8>
// CHECK-NOT: memref.alloc
module {
  func.func @model_layer_0(%out: memref<4x4xf32>) attributes {qsim.layer = 0 : i64} {
    %a = memref.alloc() : memref<16x16xf32>
    %b = memref.alloc() : memref<4xi8>
    %c0 = arith.constant 0 : index
    %v = memref.load %a[%c0, %c0] : memref<16x16xf32>
    memref.store %v, %out[%c0, %c0] : memref<4x4xf32>
    return
  }
}

// -----

module {
  func.func @model_layer_0(%out: memref<4x4xf32>, %n: index) attributes {qsim.layer = 0 : i64} {
    // expected-error @+1 {{a temporary buffer of dynamic shape or layout 'memref<?xf32>' cannot be placed in the scratch arena}}
    %a = memref.alloc(%n) : memref<?xf32>
    return
  }
}
