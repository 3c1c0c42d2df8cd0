//===- StatsGoldenTest.cpp - shapes and BFLOPs equal Darknet's tables -----===//

#include "TestEnv.h"

#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/MLIRContext.h"
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace qsim;

namespace {
class StatsGolden : public ::testing::TestWithParam<const char *> {};
} // namespace

// Darknet's layer table (golden/alexeyab/<model>/layers.json, printed by the
// original Darknet while parsing the cfg) against our import: every layer's
// kind and output shape, every conv's BFLOPs, and the total BFLOPS.
TEST_P(StatsGolden, MatchesDarknetLayerTable) {
  QSIM_REQUIRE_GOLDEN();
  std::string model = GetParam();
  std::string table =
      testenv::goldenDir() + "/alexeyab/" + model + "/layers.json";
  std::ifstream in(table);
  ASSERT_TRUE(in) << "missing " << table;
  nlohmann::json golden = nlohmann::json::parse(in);

  mlir::DialectRegistry registry;
  registerQSimDialects(registry);
  mlir::MLIRContext ctx(registry);
  ModelLoadOptions lo;
  lo.path = testenv::modelsDir() + "/darknet/" + model + ".cfg";
  auto module = loadModel(&ctx, lo);
  ASSERT_TRUE(module);
  auto stats = computeModelStats(*module);
  ASSERT_TRUE(mlir::succeeded(stats));
  ASSERT_EQ(stats->layers.size(), golden["layers"].size());
  for (size_t i = 0; i < stats->layers.size(); ++i) {
    const auto &g = golden["layers"][i];
    const LayerStats &s = stats->layers[i];
    SCOPED_TRACE("layer " + std::to_string(i));
    EXPECT_EQ(s.kind, g["type"].get<std::string>());
    EXPECT_EQ(s.output.c, g["output_shape"][0].get<int64_t>());
    EXPECT_EQ(s.output.h, g["output_shape"][1].get<int64_t>());
    EXPECT_EQ(s.output.w, g["output_shape"][2].get<int64_t>());
    if (g.contains("bflops")) // golden keeps 6 decimals
      EXPECT_NEAR(s.bflops, g["bflops"].get<double>(), 5e-7);
  }
  EXPECT_NEAR(stats->bflops, golden["total_bflops"].get<double>(), 5e-7);
}

INSTANTIATE_TEST_SUITE_P(Models, StatsGolden,
                         ::testing::Values("yolov3-tiny-aix2022",
                                           "yolov4-tiny-aix2023",
                                           "yolo-fastest-1.1-xl",
                                           "MobileNetV2-YOLOv3-Nano-coco",
                                           "tiny"));
