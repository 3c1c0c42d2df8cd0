//===- DeviceRuntimeTest.cpp - runtime/qsim_runtime.c ---------------------===//
//
// The device runtime against a hand-made model description whose step
// function records what it was asked to run: layout of the input, order of
// the layers, memory checks, output views and conversions.
//
//===----------------------------------------------------------------------===//

#include "qsim_runtime.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

namespace {

std::vector<int> ranLayers;

// Layer 0 copies the input plus one (f32); layer 1 writes int8 values.
void fakeRunLayer(uint8_t *arena, uint8_t *scratch, int32_t layer, int32_t part,
                  int32_t parts) {
  ASSERT_NE(scratch, nullptr);
  ASSERT_EQ(part, 0); // neither layer is parallel
  ASSERT_EQ(parts, 1);
  ranLayers.push_back(layer);
  if (layer == 0) {
    const float *in = (const float *)arena;
    float *out = (float *)(arena + 64);
    for (int i = 0; i < 2 * 2 * 3; ++i)
      out[i] = in[i] + 1.0f;
  } else {
    int8_t *out = (int8_t *)(arena + 128);
    for (int i = 0; i < 2 * 2 * 3; ++i)
      out[i] = (int8_t)(i - 5);
  }
}

const int32_t inputs0[] = {-1}, inputs1[] = {0};
const qsim_layer_info layers[] = {
    {0,
     "convolutional",
     QSIM_F32,
     {1, 2, 2, 3},
     1.0f,
     0,
     64,
     48,
     1,
     inputs0,
     -1,
     0},
    {1,
     "convolutional",
     QSIM_I8,
     {1, 2, 2, 3},
     0.5f,
     3,
     128,
     12,
     1,
     inputs1,
     -1,
     0},
};
const qsim_model model = {"test",       2, layers,  192, 32, {1, 2, 2, 3},
                          fakeRunLayer, 0, nullptr, 0,   0,  1};

TEST(DeviceRuntime, InitChecksMemory) {
  qsim_context ctx;
  std::vector<unsigned char> small(qsim_memory_bytes(&model) - 1);
  EXPECT_EQ(qsim_init(&ctx, &model, small.data(), small.size()), -1);
  std::vector<unsigned char> memory(qsim_memory_bytes(&model));
  EXPECT_EQ(qsim_init(&ctx, &model, memory.data(), memory.size()), 0);
  EXPECT_EQ((uintptr_t)ctx.arena % 64, 0u);
  EXPECT_EQ((uintptr_t)ctx.scratch % 64, 0u);
  EXPECT_GE(ctx.scratch, ctx.arena + model.arena_bytes);
  EXPECT_LE(ctx.scratch + model.scratch_bytes, memory.data() + memory.size());
}

TEST(DeviceRuntime, StepsRunsRestartsAndConvertsLayouts) {
  std::vector<unsigned char> memory(qsim_memory_bytes(&model));
  qsim_context ctx;
  ASSERT_EQ(qsim_init(&ctx, &model, memory.data(), memory.size()), 0);
  // CHW input (Darknet) -> NHWC arena: value = 100 c + 10 y + x.
  float chw[3 * 2 * 2];
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x)
        chw[(c * 2 + y) * 2 + x] = 100.0f * c + 10.0f * y + x;
  qsim_set_input_chw(&ctx, chw);
  const float *nhwc = (const float *)ctx.arena;
  EXPECT_EQ(nhwc[(1 * 2 + 0) * 3 + 2], 210.0f); // y=1, x=0, c=2

  ranLayers.clear();
  EXPECT_EQ(qsim_num_layers(&ctx), 2);
  EXPECT_EQ(qsim_step(&ctx), 0);
  EXPECT_EQ(qsim_next_layer(&ctx), 1);
  qsim_run(&ctx);
  EXPECT_EQ(qsim_step(&ctx), -1);
  EXPECT_EQ(ranLayers, (std::vector<int>{0, 1}));
  qsim_restart(&ctx);
  EXPECT_EQ(qsim_step(&ctx), 0);
  EXPECT_EQ(ranLayers, (std::vector<int>{0, 1, 0}));

  // Outputs back in CHW: layer 0 is the input plus one.
  qsim_tensor t0 = qsim_layer_output(&ctx, 0);
  EXPECT_EQ(t0.dtype, QSIM_F32);
  EXPECT_EQ(t0.c, 3);
  float back[12];
  qsim_tensor_to_chw(&t0, back);
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(back[i], chw[i] + 1.0f);

  // int8: dequantized with the layer's scale and zero point.
  qsim_run(&ctx);
  qsim_tensor t1 = qsim_layer_output(&ctx, 1);
  EXPECT_EQ(t1.dtype, QSIM_I8);
  EXPECT_EQ(t1.scale, 0.5f);
  EXPECT_EQ(t1.zero_point, 3);
  qsim_tensor_to_chw(&t1, back);
  // NHWC element (y=0, x=1, c=2) is index 5 -> q = 0 -> 0.5 * (0 - 3).
  EXPECT_EQ(back[(2 * 2 + 0) * 2 + 1], -1.5f);

  char name[32];
  EXPECT_STREQ(qsim_layer_name(&ctx, 1, name, sizeof name),
               "layer 1 (convolutional)");
  EXPECT_STREQ(qsim_layer_name(&ctx, 7, name, sizeof name), "no layer 7");
  EXPECT_EQ(qsim_layer_output(&ctx, 7).data, nullptr);
}

TEST(DeviceRuntime, OverwrittenOutputsHaveNoData) {
  // A run-only layout: layer 1 writes where layer 0's output was.
  qsim_layer_info shared[] = {layers[0], layers[1]};
  shared[0].overwritten_by = 1;
  qsim_model runOnly = model;
  runOnly.layers = shared;
  std::vector<unsigned char> memory(qsim_memory_bytes(&runOnly));
  qsim_context ctx;
  ASSERT_EQ(qsim_init(&ctx, &runOnly, memory.data(), memory.size()), 0);
  float chw[12] = {0};
  qsim_set_input_chw(&ctx, chw);
  ASSERT_EQ(qsim_step(&ctx), 0);
  EXPECT_NE(qsim_layer_output(&ctx, 0).data, nullptr);
  ASSERT_EQ(qsim_step(&ctx), 1);
  EXPECT_EQ(qsim_layer_output(&ctx, 0).data, nullptr);
  EXPECT_NE(qsim_layer_output(&ctx, 1).data, nullptr);
  qsim_restart(&ctx);
  ASSERT_EQ(qsim_step(&ctx), 0);
  EXPECT_NE(qsim_layer_output(&ctx, 0).data, nullptr);
}

TEST(DeviceRuntime, Int8Input) {
  std::vector<unsigned char> memory(qsim_memory_bytes(&model));
  qsim_context ctx;
  ASSERT_EQ(qsim_init(&ctx, &model, memory.data(), memory.size()), 0);
  int8_t q[12];
  for (int i = 0; i < 12; ++i)
    q[i] = (int8_t)(i * 10 - 60);
  qsim_set_input_int8_chw(&ctx, q, 0.25f, -4);
  const float *nhwc = (const float *)ctx.arena;
  // CHW index (c=1, y=1, x=0) = 6 -> q = 0 -> 0.25 * (0 + 4) = 1.
  EXPECT_EQ(nhwc[(1 * 2 + 0) * 3 + 1], 1.0f);
}

TEST(DeviceRuntime, HalfToFloat) {
  EXPECT_EQ(qsim_half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(qsim_half_to_float(0xc000), -2.0f);
  EXPECT_EQ(qsim_half_to_float(0x0001), std::ldexp(1.0f, -24)); // subnormal
  EXPECT_EQ(qsim_half_to_float(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(qsim_half_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(qsim_half_to_float(0x7e00)));
  EXPECT_EQ(std::signbit(qsim_half_to_float(0x8000)), true);
}

} // namespace

// Threads: a parallel layer runs as `parts` parts at once, each with its own
// scratch buffer, each writing its share of the output; a layer that is not
// parallel runs once, as part 0 of 1.
std::mutex partsMutex;
std::vector<std::tuple<int, int, int, uint8_t *>> ranParts; // layer, p, n

void fakeRunParts(uint8_t *arena, uint8_t *scratch, int32_t layer, int32_t part,
                  int32_t parts) {
  {
    std::lock_guard<std::mutex> lock(partsMutex);
    ranParts.emplace_back(layer, part, parts, scratch);
  }
  // The scratch buffer is the part's own: fill it whole.
  memset(scratch, part + 1, 64);
  float *out = (float *)(arena + 64);
  for (int i = 12 * part / parts; i < 12 * (part + 1) / parts; ++i)
    out[i] = 10.0f * layer + (float)i;
}

TEST(DeviceRuntime, ThreadsSplitParallelLayers) {
  qsim_layer_info split[] = {layers[0], layers[0]};
  split[0].parallel = 1;
  split[1].index = 1;
  qsim_model threaded = model;
  threaded.layers = split;
  threaded.step = fakeRunParts;
  threaded.scratch_bytes = 64;
  threaded.threads = 3;
  EXPECT_EQ(qsim_memory_bytes(&threaded),
            qsim_memory_bytes_threads(&threaded, 3));
  EXPECT_EQ(qsim_memory_bytes_threads(&threaded, 3),
            QSIM_MEMORY_BYTES_FOR(192, 64, 3));
  std::vector<unsigned char> small(qsim_memory_bytes_threads(&threaded, 3) - 1);
  qsim_context ctx;
  EXPECT_EQ(qsim_init(&ctx, &threaded, small.data(), small.size()), -1);
  std::vector<unsigned char> memory(qsim_memory_bytes(&threaded));
  ASSERT_EQ(qsim_init(&ctx, &threaded, memory.data(), memory.size()), 0);
#ifdef QSIM_RUNTIME_NO_THREADS
  const int expected = 1;
#else
  const int expected = 3;
#endif
  ASSERT_EQ(qsim_threads(&ctx), expected);
  for (int run = 0; run < 50; ++run) { // workers are reused layer after layer
    ranParts.clear();
    qsim_restart(&ctx);
    ASSERT_EQ(qsim_step(&ctx), 0);
    // Layer 0: every part once, all of the same count, separate scratch.
    ASSERT_EQ((int)ranParts.size(), expected);
    std::set<int> seen;
    std::set<uint8_t *> scratches;
    for (auto &[layer, part, parts, scratch] : ranParts) {
      EXPECT_EQ(layer, 0);
      EXPECT_EQ(parts, expected);
      seen.insert(part);
      scratches.insert(scratch);
      EXPECT_EQ(scratch, ctx.scratch + part * threaded.scratch_bytes);
    }
    EXPECT_EQ((int)seen.size(), expected);
    EXPECT_EQ((int)scratches.size(), expected);
    const float *out = (const float *)(ctx.arena + 64);
    for (int i = 0; i < 12; ++i)
      ASSERT_EQ(out[i], (float)i);
    // Layer 1 is not parallel: part 0 of 1 on the caller's thread.
    ASSERT_EQ(qsim_step(&ctx), 1);
    ASSERT_EQ((int)ranParts.size(), expected + 1);
    EXPECT_EQ(ranParts.back(), std::make_tuple(1, 0, 1, ctx.scratch));
    for (int i = 0; i < 12; ++i)
      ASSERT_EQ(out[i], 10.0f + (float)i);
  }
  qsim_release(&ctx);
  EXPECT_EQ(qsim_threads(&ctx), 1);
  // After the release, the same memory runs on the caller's thread alone.
  ranParts.clear();
  qsim_restart(&ctx);
  ASSERT_EQ(qsim_step(&ctx), 0);
  EXPECT_EQ(ranParts.size(), 1u);

  // A count chosen at run time; one thread needs only one scratch buffer.
  std::vector<unsigned char> one(qsim_memory_bytes_threads(&threaded, 1));
  ASSERT_EQ(qsim_init_threads(&ctx, &threaded, 1, one.data(), one.size()), 0);
  EXPECT_EQ(qsim_threads(&ctx), 1);
  EXPECT_LT(one.size(), memory.size());
  qsim_release(&ctx);
}
