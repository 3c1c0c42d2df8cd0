//===- WeightEditTest.cpp - an edited weight is stored as quantized
//--------===//
//
// A step session that edits a weight of an int8 layer re-quantizes it with
// the quantizer's own rounding (rt::quantizeWeight): the session's model
// then holds exactly the int8 weights --qsim-quantize gives the float model
// with that weight, including at a .5 tie (half away from zero, where
// ties-to-even would differ).
//
//===----------------------------------------------------------------------===//

#include "qsim/Session/Engine.h"
#include "qsim/Target/ModelIO.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"

#include <cmath>
#include <fstream>
#include <gtest/gtest.h>

using namespace qsim;
using json = nlohmann::json;

namespace {

const char *kCfg = "[net]\nwidth=8\nheight=8\nchannels=3\n"
                   "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n";

/// Weight scale of filter 0 (per channel: max|w| / 127): 1/128, exact, so
/// that w / scale is exactly the tie the test needs.
constexpr float kScale = 1.0f / 128;

class WeightEdit : public ::testing::Test {
protected:
  void SetUp() override {
    mlir::DialectRegistry registry;
    registerQSimDialects(registry);
    ctx = std::make_unique<mlir::MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("qsim-weight-edit", dir));
    std::ofstream(path("m.cfg")) << kCfg;
    // A 4x4 grey-ramp image to calibrate on.
    std::ofstream img(path("c.ppm"), std::ios::binary);
    img << "P6\n4 4\n255\n";
    for (int i = 0; i < 48; ++i)
      img.put((char)(i * 5));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string path(const std::string &name) const {
    return (dir + "/" + name).str();
  }

  /// The float model with filter 0 = {127/128, w1, -0.25} and filter 1 =
  /// {0.5, 0.125, -0.0625}, saved as `name`.
  void saveFloatModel(const std::string &name, float w1) {
    ModelLoadOptions lo;
    lo.path = path("m.cfg");
    lo.randomSeed = 1;
    auto m = loadModel(ctx.get(), lo);
    ASSERT_TRUE(m);
    auto layers = getLayers(getMainFunc(*m));
    ASSERT_TRUE(mlir::succeeded(layers));
    std::vector<float> w = {127.0f / 128, w1, -0.25f, 0.5f, 0.125f, -0.0625f};
    (*layers)[0].head->setAttr("weight",
                               makeFloatAttr(ctx.get(), {2, 3, 1, 1}, "w", w));
    std::string error;
    ASSERT_TRUE(mlir::succeeded(saveModel(*m, path(name), true, error)))
        << error;
  }

  json call(session::Engine &engine, const json &req) {
    session::SessionControl control;
    json r = engine.handle(req, control);
    EXPECT_TRUE(r.value("ok", false)) << r.dump();
    return r;
  }

  /// Loads `model` quantized to int8 in a session, optionally edits weight
  /// [0, 1] to `edit`, saves, and returns the saved model's int8 weights.
  std::vector<int8_t> int8Weights(const std::string &model,
                                  std::optional<float> edit) {
    session::Engine engine(session::Engine::Options{});
    call(engine, {{"cmd", "load"},
                  {"model", path(model)},
                  {"mode", "int8"},
                  {"calib", path("c.ppm")}});
    if (edit)
      call(engine, {{"cmd", "set-weights"},
                    {"layer", 0},
                    {"index", {0, 1, 0, 0}},
                    {"value", *edit}});
    std::string out = path("saved-" + model);
    call(engine, {{"cmd", "save"}, {"file", out}});
    ModelLoadOptions lo;
    lo.path = out;
    auto m = loadModel(ctx.get(), lo);
    if (!m)
      return {};
    auto layers = getLayers(getMainFunc(*m));
    if (failed(layers))
      return {};
    auto w = (*layers)[0].head->getAttrOfType<mlir::ElementsAttr>("weight");
    EXPECT_TRUE(w && w.getShapedType().getElementType().isInteger(8));
    return getInts<int8_t>(w).value_or(std::vector<int8_t>());
  }

  std::unique_ptr<mlir::MLIRContext> ctx;
  llvm::SmallString<128> dir;
};

TEST_F(WeightEdit, EditedWeightStoresWhatTheQuantizerProduces) {
  // x / scale for each edit: a tie both ways, a tie at an even integer, a
  // plain value, and values the clamp decides.
  for (float q : {2.5f, -2.5f, 4.5f, 1.25f, 126.5f, -300.0f}) {
    SCOPED_TRACE("w / scale = " + std::to_string(q));
    float value = q * kScale;
    saveFloatModel("orig.mlirbc", 0.1f);
    saveFloatModel("edited-float.mlirbc", value);
    std::vector<int8_t> quantizer = int8Weights("edited-float.mlirbc", {});
    std::vector<int8_t> session = int8Weights("orig.mlirbc", value);
    ASSERT_EQ(quantizer.size(), 6u);
    ASSERT_EQ(session.size(), 6u);
    // The scale stayed 1/128 (filter 0's largest weight is 127/128) except
    // where the edit is the largest: then the quantizer's scale moves and
    // only the clamp is comparable.
    if (std::fabs(q) <= 127) {
      EXPECT_EQ(quantizer, session);
    } else {
      EXPECT_EQ(session[1], q > 0 ? 127 : -127);
    }
  }
  // The tie is rounded away from zero (ties-to-even would store 2 and 4).
  EXPECT_EQ(int8Weights("orig.mlirbc", 2.5f * kScale)[1], 3);
  EXPECT_EQ(int8Weights("orig.mlirbc", 4.5f * kScale)[1], 5);
  EXPECT_EQ(int8Weights("orig.mlirbc", -2.5f * kScale)[1], -3);
}

} // namespace

namespace {
// A bf16 layer's edited weight is stored bf16, rounded to nearest even as
// --qsim-quantize rounds: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and
// becomes 1 (the even one), the other weights keep their bf16 values.
TEST_F(WeightEdit, Bf16EditStoresBf16) {
  saveFloatModel("f.mlirbc", 0.75f);
  session::Engine engine(session::Engine::Options{});
  call(engine,
       {{"cmd", "load"}, {"model", path("f.mlirbc")}, {"mode", "bf16"}});
  call(engine, {{"cmd", "set-weights"},
                {"layer", 0},
                {"index", {0, 1, 0, 0}},
                {"value", 1.0f + std::ldexp(1.0f, -8)}});
  std::string out = path("saved-bf16.mlirbc");
  call(engine, {{"cmd", "save"}, {"file", out}});
  ModelLoadOptions lo;
  lo.path = out;
  auto m = loadModel(ctx.get(), lo);
  ASSERT_TRUE(m);
  auto layers = getLayers(getMainFunc(*m));
  ASSERT_TRUE(mlir::succeeded(layers));
  auto w = (*layers)[0].head->getAttrOfType<mlir::ElementsAttr>("weight");
  ASSERT_TRUE(w && w.getShapedType().getElementType().isBF16());
  std::vector<float> v = getFloats(w);
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[1], 1.0f);
  // 127/128 = 1 - 2^-7 has 7 significant bits: a bf16 value, kept.
  EXPECT_EQ(v[0], 127.0f / 128);
  EXPECT_EQ(v[2], -0.25f);
  EXPECT_EQ(v[5], -0.0625f);
}
} // namespace
