//===- qsim-bench-peak.cpp - the machine's measured GEMM peak ------------===//
//
// Prints the median and best GFLOP/s of oneDNN's sgemm (and, with --int8,
// of its u8s8s32 GEMM) on square matrices: the practical peak the
// benchmarks quote their results against. Not a test; see bench/README.md.
//
//===----------------------------------------------------------------------===//

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char **argv) {
  int threads = 0, runs = 15;
  long n = 2048;
  bool int8 = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--int8"))
      int8 = true;
    else if (!strcmp(argv[i], "--size") && i + 1 < argc)
      n = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: qsim-bench-peak [--threads N] [--int8] [--size N]\n");
      return 1;
    }
  }
  if (threads > 0)
    omp_set_num_threads(threads);
  std::vector<double> t;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n, 0.f);
  std::vector<uint8_t> a8(n * n, 3);
  std::vector<int8_t> b8(n * n, 2);
  std::vector<int32_t> c32(n * n, 0);
  int32_t co = 0;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    if (int8)
      dnnl_gemm_u8s8s32('N', 'N', 'F', n, n, n, 1.f, a8.data(), n, 0, b8.data(),
                        n, 0, 0.f, c32.data(), n, &co);
    else
      dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data(), n, b.data(), n, 0.f,
                 c.data(), n);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                    .count());
  }
  std::sort(t.begin(), t.end());
  double flop = 2.0 * n * n * n;
  printf("%s %ld^3, %d threads: median %.1f G%s/s, best %.1f\n",
         int8 ? "u8s8s32 gemm" : "sgemm", n, omp_get_max_threads(),
         flop / t[t.size() / 2] / 1e9, int8 ? "OP" : "FLOP", flop / t[0] / 1e9);
  return 0;
}
