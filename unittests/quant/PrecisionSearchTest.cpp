//===- PrecisionSearchTest.cpp - the auto search's plan comparison -------===//
//
// --qsim-assign-precision auto compares its final candidate plans by the
// median of interleaved forward times, or by a per-MAC cost table; these
// are the pieces of arithmetic and parsing that decide which plan is kept.
//
//===----------------------------------------------------------------------===//

#include "qsim/Quant/Sensitivity.h"

#include <gtest/gtest.h>

using namespace qsim;
using namespace qsim::quantization;

namespace {

TEST(PrecisionSearchTest, MedianIgnoresOutliers) {
  // One slow spell of the machine (the 50 ms run) must not move the median.
  EXPECT_DOUBLE_EQ(median({3.0, 50.0, 2.0, 2.5, 2.4}), 2.5);
  EXPECT_DOUBLE_EQ(median({4.0, 1.0, 3.0, 2.0}), 2.5);
  EXPECT_DOUBLE_EQ(median({7.0}), 7.0);
  EXPECT_DOUBLE_EQ(median({}), 0.0);
}

TEST(PrecisionSearchTest, PlanCostIsMacsTimesCost) {
  std::map<Precision, double> costs = {{Precision::Int8, 1},
                                       {Precision::W8A16, 2},
                                       {Precision::FP16, 3},
                                       {Precision::FP32, 4}};
  // The plans of the lit test's detector (110592 and 57344 MACs).
  EXPECT_DOUBLE_EQ(planCost({{110592, Precision::FP16},
                             {0, Precision::FP16},
                             {57344, Precision::W8A16},
                             {0, Precision::FP32}},
                            costs),
                   446464.0);
  EXPECT_DOUBLE_EQ(
      planCost({{110592, Precision::FP32}, {57344, Precision::FP32}}, costs),
      671744.0);
  // A cheaper fp32 than W8A16 makes putting the W8A16 layer back cheaper.
  costs[Precision::W8A16] = 5;
  EXPECT_LT(
      planCost({{110592, Precision::FP16}, {57344, Precision::FP32}}, costs),
      planCost({{110592, Precision::FP16}, {57344, Precision::W8A16}}, costs));
}

TEST(PrecisionSearchTest, PrecisionsComeInSpeedOrder) {
  std::vector<Precision> out;
  std::string error;
  ASSERT_TRUE(parseSearchPrecisions({"fp16", " int8", "w8a16"}, out, error));
  EXPECT_EQ(out, (std::vector<Precision>{Precision::Int8, Precision::W8A16,
                                         Precision::FP16}));
  ASSERT_TRUE(parseSearchPrecisions({"fp16", "w8a16"}, out, error));
  EXPECT_EQ(out, (std::vector<Precision>{Precision::W8A16, Precision::FP16}));
  // bf16 goes before the emulated fp16 (it has hardware dot products).
  ASSERT_TRUE(parseSearchPrecisions({"fp16", "bf16", "int8"}, out, error));
  EXPECT_EQ(out, (std::vector<Precision>{Precision::Int8, Precision::BF16,
                                         Precision::FP16}));
  EXPECT_FALSE(parseSearchPrecisions({"fp32"}, out, error));
  EXPECT_NE(error.find("'fp32' is not one of int8, w8a16, bf16, fp16"),
            std::string::npos);
  EXPECT_FALSE(parseSearchPrecisions({"int4"}, out, error));
  EXPECT_FALSE(parseSearchPrecisions({}, out, error));
}

TEST(PrecisionSearchTest, CostsNeedEveryPrecisionUsed) {
  std::map<Precision, double> out;
  std::string error;
  ASSERT_TRUE(parsePrecisionCosts(
      {"int8:1", "fp32:4.5"}, {Precision::Int8, Precision::FP32}, out, error));
  EXPECT_DOUBLE_EQ(out[Precision::Int8], 1.0);
  EXPECT_DOUBLE_EQ(out[Precision::FP32], 4.5);
  EXPECT_FALSE(parsePrecisionCosts(
      {"int8:1"}, {Precision::Int8, Precision::FP32}, out, error));
  EXPECT_EQ(error, "costs: no cost for fp32");
  for (const char *bad : {"int8", "int8:x", "int8:-1", "int8:0", "int9:1"})
    EXPECT_FALSE(parsePrecisionCosts({bad}, {}, out, error)) << bad;
}

} // namespace
