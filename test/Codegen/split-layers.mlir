// RUN: qsim-opt %s -split-input-file --qsim-split-layers | FileCheck %s

// Rows: each iteration of the trailing loop writes row iv of the result;
// the padded copy before it runs whole in every part. Part p runs rows
// [4p/parts, 4(p+1)/parts) and copies only those rows to the output.
// CHECK-LABEL: func.func @model_layer_0(
// CHECK-SAME: %[[IN:[^:]*]]: memref<1x4x8x16xf32>, %[[OUT:[^:]*]]: memref<1x4x8x16xf32>, %[[S:[^:]*]]: memref<4096xi8>, %[[PART:[^:]*]]: index, %[[PARTS:[^:]*]]: index)
// CHECK-SAME: qsim.parallel = true
// CHECK-SAME: qsim.split = array<i64: 4, 1, 1>
// CHECK: %[[T:.*]] = arith.constant 4 : index
// CHECK: %[[LO:.*]] = arith.divui {{.*}}, %[[PARTS]]
// CHECK: %[[HI:.*]] = arith.divui {{.*}}, %[[PARTS]]
// CHECK: %[[ANY:.*]] = arith.cmpi ult, %[[LO]], %[[HI]]
// CHECK: scf.if %[[ANY]] {
// CHECK: linalg.copy ins(%[[IN]]
// CHECK: scf.for %{{.*}} = %[[LO]] to %[[HI]] step
// Rows are contiguous: one 1-D copy of rows x 8 x 16 elements.
// CHECK: %[[ROW:.*]] = arith.constant 128 : index
// CHECK: %[[B:.*]] = arith.muli %{{.*}}, %[[ROW]]
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %[[ROW]]
// CHECK: %[[FROM:.*]] = memref.collapse_shape %{{.*}} {{\[\[}}0, 1, 2, 3]] : memref<1x4x8x16xf32> into memref<512xf32>
// CHECK: %[[SRC:.*]] = memref.subview %[[FROM]][%[[B]]] [%[[N]]] [1]
// CHECK: %[[TO:.*]] = memref.collapse_shape %[[OUT]]
// CHECK: %[[DST:.*]] = memref.subview %[[TO]]
// CHECK: linalg.copy ins(%[[SRC]] {{.*}} outs(%[[DST]]
// CHECK-NOT: memref.copy
module {
  func.func @model_layer_0(%in: memref<1x4x8x16xf32>, %out: memref<1x4x8x16xf32>, %s: memref<4096xi8>) attributes {qsim.layer = 0 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %cst = arith.constant 0.0 : f32
    %pad = memref.view %s[%c0][] : memref<4096xi8> to memref<1x4x8x16xf32>
    linalg.copy ins(%in : memref<1x4x8x16xf32>) outs(%pad : memref<1x4x8x16xf32>)
    %c2048 = arith.constant 2048 : index
    %res = memref.view %s[%c2048][] : memref<4096xi8> to memref<1x4x8x16xf32>
    scf.for %y = %c0 to %c4 step %c1 {
      %v = vector.transfer_read %pad[%c0, %y, %c0, %c0], %cst {in_bounds = [true, true]} : memref<1x4x8x16xf32>, vector<8x16xf32>
      vector.transfer_write %v, %res[%c0, %y, %c0, %c0] {in_bounds = [true, true]} : vector<8x16xf32>, memref<1x4x8x16xf32>
    }
    memref.copy %res, %out : memref<1x4x8x16xf32> to memref<1x4x8x16xf32>
    return
  }
}

// -----

// Filter blocks: iteration iv writes channels [32 iv, 32 iv + 32) (the
// last block partial: 40 channels); an in-place second loop over the same
// blocks follows.
// CHECK-LABEL: func.func @model_layer_1(
// CHECK-SAME: qsim.parallel = true
// CHECK-SAME: qsim.split = array<i64: 2, 3, 32>
// CHECK: scf.for
// CHECK: scf.for
// CHECK: %[[E:.*]] = arith.minui %{{.*}}, %c40
// CHECK: memref.subview %{{.*}}[0, 0, 0, %[[B:.*]]] [1, 2, 2, %[[N:.*]]]
// CHECK: memref.subview %{{.*}}[0, 0, 0, %[[B]]] [1, 2, 2, %[[N]]]
// CHECK: linalg.copy
module {
  func.func @model_layer_1(%in: memref<1x2x2x8xf32>, %out: memref<1x2x2x40xf32>, %s: memref<1024xi8>) attributes {qsim.layer = 1 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c16 = arith.constant 16 : index
    %c32 = arith.constant 32 : index
    %cst = arith.constant dense<1.0> : vector<16xf32>
    %res = memref.view %s[%c0][] : memref<1024xi8> to memref<1x2x2x40xf32>
    scf.for %f = %c0 to %c2 step %c1 {
      %lo = arith.muli %f, %c32 : index
      %hi = arith.addi %lo, %c16 : index
      vector.transfer_write %cst, %res[%c0, %c0, %c1, %lo] {in_bounds = [true]} : vector<16xf32>, memref<1x2x2x40xf32>
      vector.transfer_write %cst, %res[%c0, %c1, %c0, %hi] : vector<16xf32>, memref<1x2x2x40xf32>
    }
    scf.for %f = %c0 to %c2 step %c1 {
      %lo = arith.muli %c32, %f : index
      %z = arith.constant 0.0 : f32
      %v = vector.transfer_read %res[%c0, %c0, %c1, %lo], %z {in_bounds = [true]} : memref<1x2x2x40xf32>, vector<16xf32>
      %w = arith.addf %v, %v : vector<16xf32>
      vector.transfer_write %w, %res[%c0, %c0, %c1, %lo] {in_bounds = [true]} : vector<16xf32>, memref<1x2x2x40xf32>
    }
    memref.copy %res, %out : memref<1x2x2x40xf32> to memref<1x2x2x40xf32>
    return
  }
}

// -----

// A reduction over the loop's dimension (every iteration accumulates into
// the same element) is not split: the whole layer runs in part 0.
// CHECK-LABEL: func.func @model_layer_2(
// CHECK-SAME: %{{[^:]*}}: index, %[[PARTS:[^:]*]]: index)
// CHECK-SAME: qsim.parallel = false
// CHECK-NOT: qsim.split
// CHECK: %[[FIRST:.*]] = arith.cmpi eq, %arg3, %c0
// CHECK: scf.if %[[FIRST]] {
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c4
// CHECK: memref.copy
module {
  func.func @model_layer_2(%in: memref<1x4x1x1xf32>, %out: memref<1x1x1x1xf32>, %s: memref<64xi8>) attributes {qsim.layer = 2 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %res = memref.view %s[%c0][] : memref<64xi8> to memref<1x1x1x1xf32>
    scf.for %y = %c0 to %c4 step %c1 {
      %a = memref.load %in[%c0, %y, %c0, %c0] : memref<1x4x1x1xf32>
      %b = memref.load %res[%c0, %c0, %c0, %c0] : memref<1x1x1x1xf32>
      %c = arith.addf %a, %b : f32
      memref.store %c, %res[%c0, %c0, %c0, %c0] : memref<1x1x1x1xf32>
    }
    memref.copy %res, %out : memref<1x1x1x1xf32> to memref<1x1x1x1xf32>
    return
  }
}

// -----

// An iteration that reads the next row of a buffer the loop writes (a
// dependence between iterations) is not split.
// CHECK-LABEL: func.func @model_layer_3(
// CHECK-SAME: qsim.parallel = false
module {
  func.func @model_layer_3(%out: memref<1x4x4xf32>, %s: memref<128xi8>) attributes {qsim.layer = 3 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %cst = arith.constant 0.0 : f32
    %res = memref.view %s[%c0][] : memref<128xi8> to memref<1x4x4xf32>
    scf.for %y = %c0 to %c4 step %c1 {
      %n = arith.addi %y, %c1 : index
      %v = vector.transfer_read %res[%c0, %n, %c0], %cst {in_bounds = [true]} : memref<1x4x4xf32>, vector<4xf32>
      vector.transfer_write %v, %res[%c0, %y, %c0] {in_bounds = [true]} : vector<4xf32>, memref<1x4x4xf32>
    }
    memref.copy %res, %out : memref<1x4x4xf32> to memref<1x4x4xf32>
    return
  }
}

// -----

// A loop that writes the arena (here the output itself) is not split.
// CHECK-LABEL: func.func @model_layer_4(
// CHECK-SAME: qsim.parallel = false
module {
  func.func @model_layer_4(%in: memref<1x4x4xf32>, %out: memref<1x4x4xf32>, %s: memref<128xi8>) attributes {qsim.layer = 4 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %cst = arith.constant 0.0 : f32
    %res = memref.view %s[%c0][] : memref<128xi8> to memref<1x4x4xf32>
    scf.for %y = %c0 to %c4 step %c1 {
      %v = vector.transfer_read %in[%c0, %y, %c0], %cst {in_bounds = [true]} : memref<1x4x4xf32>, vector<4xf32>
      vector.transfer_write %v, %res[%c0, %y, %c0] {in_bounds = [true]} : vector<4xf32>, memref<1x4x4xf32>
      vector.transfer_write %v, %out[%c0, %y, %c0] {in_bounds = [true]} : vector<4xf32>, memref<1x4x4xf32>
    }
    memref.copy %res, %out : memref<1x4x4xf32> to memref<1x4x4xf32>
    return
  }
}
