//===- AsanOptions.cpp - AddressSanitizer defaults of the fuzz targets ----===//
//
// LLVM's BumpPtrAllocator poisons a new slab when the code that inlines it
// is instrumented (ours) and unpoisons what it hands out; Debian's MLIR
// library is not instrumented and hands out memory of the same slabs
// without unpoisoning it, so its later reads look like use-after-poison.
// Manual poisoning is therefore ignored; ASan's own checks (heap and stack
// overflows, use after free, leaks) stay.
//
//===----------------------------------------------------------------------===//

extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0:detect_leaks=1";
}
