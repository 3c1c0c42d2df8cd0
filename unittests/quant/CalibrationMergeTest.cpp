//===- CalibrationMergeTest.cpp - shards merge into the single run -------===//
//
// CalibrationObserver's merges (sharded calibration): ranges and histograms
// observed shard by shard equal one observer's over all images, bit for
// bit, for every method, including the sign of a zero bound.

#include "qsim/Quant/Calibration.h"

#include <gtest/gtest.h>

#include <cstring>
#include <cmath>
#include <random>

using namespace qsim::quantization;

namespace {

bool sameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// Images of varied distributions (some with outliers, some all zero).
std::vector<std::vector<float>> makeImages() {
  std::mt19937 rng(7);
  std::vector<std::vector<float>> images;
  for (int i = 0; i < 9; ++i) {
    std::normal_distribution<float> d(0.1f * i, 1.0f + i);
    std::vector<float> v(500);
    for (float &x : v)
      x = i == 4 ? 0.0f : d(rng);
    if (i == 6)
      v[17] = 80.0f; // an outlier
    images.push_back(v);
  }
  return images;
}

CalibrationObserver single(const std::vector<std::vector<float>> &images) {
  CalibrationObserver o;
  for (size_t i = 0; i < images.size(); ++i)
    o.observeRange(images[i].data(), images[i].size(), i);
  o.startHistograms();
  for (const auto &im : images)
    o.observeHistogram(im.data(), im.size());
  return o;
}

/// Shards of `count`: ranges merged, then histograms on the merged range.
CalibrationObserver sharded(const std::vector<std::vector<float>> &images,
                            int count) {
  CalibrationObserver range;
  for (int k = count - 1; k >= 0; --k) { // any merge order
    CalibrationObserver shard;
    for (size_t i = k; i < images.size(); i += count)
      shard.observeRange(images[i].data(), images[i].size(), i);
    range.mergeRange(shard);
  }
  CalibrationObserver merged;
  for (int k = 0; k < count; ++k) {
    CalibrationObserver shard;
    shard.setRange(range);
    shard.startHistograms();
    for (size_t i = k; i < images.size(); i += count)
      shard.observeHistogram(images[i].data(), images[i].size());
    if (k == 0)
      merged = shard;
    else
      EXPECT_TRUE(merged.mergeHistograms(shard));
  }
  return merged;
}

TEST(CalibrationMerge, ShardsGiveTheSingleRunsRanges) {
  auto images = makeImages();
  CalibrationObserver one = single(images);
  for (int count : {1, 2, 3, 4, 9, 12}) {
    CalibrationObserver merged = sharded(images, count);
    EXPECT_TRUE(sameBits(merged.min(), one.min())) << count;
    EXPECT_TRUE(sameBits(merged.max(), one.max())) << count;
    for (CalibrationMethod m :
         {CalibrationMethod::MinMax, CalibrationMethod::Percentile,
          CalibrationMethod::Entropy, CalibrationMethod::MSE,
          CalibrationMethod::Log2}) {
      auto [lo1, hi1] = one.choose(m, 99.0);
      auto [lo2, hi2] = merged.choose(m, 99.0);
      EXPECT_TRUE(sameBits(lo1, lo2) && sameBits(hi1, hi2))
          << stringifyCalibrationMethod(m).str() << " in " << count
          << " shards: [" << lo2 << ", " << hi2 << "] vs [" << lo1 << ", "
          << hi1 << "]";
    }
  }
  // The methods do choose different ranges here (the test tests them).
  EXPECT_NE(one.choose(CalibrationMethod::Entropy, 99.0),
            one.choose(CalibrationMethod::MinMax, 99.0));
}

TEST(CalibrationMerge, SignedZeroOfTheFirstImageWins) {
  // Image 0 reaches max +0, image 1 -0: a single run keeps +0 (the first);
  // merged in either order, so do the shards.
  std::vector<float> plus = {-1.0f, 0.0f}, minus = {-1.0f, -0.0f};
  CalibrationObserver a, b;
  a.observeRange(plus.data(), 2, 0);
  b.observeRange(minus.data(), 2, 1);
  CalibrationObserver ab = a, ba = b;
  ab.mergeRange(b);
  ba.mergeRange(a);
  EXPECT_FALSE(std::signbit(ab.max()));
  EXPECT_FALSE(std::signbit(ba.max()));
}

TEST(CalibrationMerge, HistogramsOfOtherRangesAreRefused) {
  std::vector<float> x = {1, 2, 3}, y = {1, 2, 4};
  CalibrationObserver a, b;
  a.observeRange(x.data(), 3);
  b.observeRange(y.data(), 3);
  a.startHistograms();
  b.startHistograms();
  EXPECT_FALSE(a.mergeHistograms(b));
}

} // namespace
