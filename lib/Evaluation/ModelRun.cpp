//===- ModelRun.cpp - a model run over images, measured ------------------===//

#include "qsim/Evaluation/ModelRun.h"
#include "qsim/Dialect/QSim/IR/LayerStats.h"
#include "qsim/Support/StringUtils.h"

#include "llvm/Support/FileSystem.h"

#include <algorithm>
#include <chrono>
#include <cmath>

using namespace mlir;
using namespace qsim;
using namespace qsim::eval;
using interp::Executor;

/// The reference model of a comparison and what it accumulated.
struct ModelRun::Reference {
  ModuleOp module;
  std::string name;
  std::unique_ptr<Executor> ex;
  ModelInfo info;
  bool outputsOnly = false;
  /// Per step (per output when outputsOnly) over all images.
  std::vector<LayerComparison> errors;
  /// The last image's layer outputs: the reference's and the model's, with
  /// the model's int8 range (lo > hi for float layers).
  std::vector<std::vector<float>> referenceOut, out;
  std::vector<std::pair<float, float>> clipRange;
  /// Milliseconds summed over images, per step of the model (the
  /// reference's whole pass in [0] when outputsOnly).
  std::vector<double> millis, referenceMillis;
  size_t referenceDetections = 0, matchedDetections = 0, detections = 0;
  std::unique_ptr<rt::MapEvaluator> evaluator;
};

size_t qsim::eval::countMatchedDetections(
    const std::vector<rt::ReportedDetection> &reference,
    const std::vector<rt::ReportedDetection> &test) {
  std::vector<char> used(test.size(), 0);
  size_t matched = 0;
  for (const auto &r : reference)
    for (size_t k = 0; k < test.size(); ++k)
      if (!used[k] && test[k].classId == r.classId &&
          rt::boxIou(test[k].rel, r.rel) >= 0.5f) {
        used[k] = 1;
        ++matched;
        break;
      }
  return matched;
}

ModelRun::~ModelRun() = default;

std::unique_ptr<ModelRun> ModelRun::create(ModuleOp model,
                                           const RunOptions &options) {
  std::unique_ptr<ModelRun> run(new ModelRun());
  run->model = model;
  run->opts = options;
  interp::ExecutorOptions eo = options.executor;
  eo.timeSteps |= options.timeLayers;
  run->ex = Executor::create(model, eo);
  if (!run->ex)
    return nullptr;
  run->modelInfo = describeModel(model, *run->ex);
  size_t steps = run->ex->steps().size();
  run->stats.resize(steps);
  run->overflowProducts.resize(steps);
  run->overflowAccumulators.resize(steps);
  if (!options.dumpDir.empty())
    if (auto ec = llvm::sys::fs::create_directories(options.dumpDir)) {
      emitError(UnknownLoc::get(model.getContext()))
          << "cannot create '" << options.dumpDir << "': " << ec.message();
      return nullptr;
    }
  if (!options.labelsDir.empty())
    run->evaluator =
        std::make_unique<rt::MapEvaluator>(run->modelInfo.classes());
  if (options.layerStats || !options.dumpDir.empty() || options.overflowReport)
    run->installHook();
  return run;
}

void ModelRun::installHook() {
  ex->setStepHook([this](size_t i) { afterStep(i); });
  hooked = true;
}

static bool isInt8Convolution(const interp::StepInfo &s) {
  return isa<Conv2DOp>(s.head) && s.precision == "int8";
}

bool ModelRun::hasInt8Convolutions() const {
  return llvm::any_of(ex->steps(), isInt8Convolution);
}

rt::Preprocess ModelRun::preprocess() const {
  return choosePreprocess(modelInfo, opts.inference.letterbox);
}

void ModelRun::afterStep(size_t i) {
  const interp::StepInfo &step = ex->steps()[i];
  rt::Tensor out = ex->stepOutput(i);
  if (opts.layerStats)
    stats[i] = computeTensorStats(out.toFloat());
  if (!opts.dumpDir.empty() && dumpError.empty())
    rt::writeNpy(opts.dumpDir + strprintf("/%03lld_%s.npy",
                                          (long long)step.layer,
                                          step.kind.c_str()),
                 out, dumpError);
  if (reference && !reference->outputsOnly) {
    reference->out[i] = out.toFloat();
    reference->clipRange[i] = representableRange(out);
  }
  if (opts.overflowReport && isInt8Convolution(step)) {
    std::vector<rt::Tensor> ins = ex->stepInputs(i);
    OverflowStats s = analyzeOverflow(cast<Conv2DOp>(step.head), ins[0]);
    overflowProducts[i].push_back(s.productPercent);
    overflowAccumulators[i].push_back(s.accumulatorPercent);
  }
}

LogicalResult ModelRun::compareWith(ModuleOp module, const std::string &name) {
  // The models as a whole differ: no op is at fault.
  auto mismatch = [&]() {
    return emitError(UnknownLoc::get(model.getContext()));
  };
  auto ref = std::make_unique<Reference>();
  ref->module = module;
  ref->name = name;
  interp::ExecutorOptions eo = ex->options();
  eo.timeSteps = true;
  ref->ex = Executor::create(module, eo);
  if (!ref->ex)
    return failure();
  if (ref->ex->inputShape() != ex->inputShape())
    return mismatch() << "the models have different inputs ("
                      << ex->inputShape().str() << " vs "
                      << ref->ex->inputShape().str() << ")";
  size_t steps = ex->steps().size();
  if (ref->ex->steps().size() != steps) {
    // A restructured model (factorized, pruned, new backbone): its layers
    // do not correspond one to one; the outputs (heads) still do.
    if (ref->ex->outputSteps().size() != ex->outputSteps().size())
      return mismatch() << "the models have different outputs ("
                        << ex->outputSteps().size() << " vs "
                        << ref->ex->outputSteps().size() << ")";
    ref->outputsOnly = true;
  } else {
    Reference *r = ref.get();
    r->referenceOut.resize(steps);
    r->out.resize(steps);
    r->clipRange.assign(steps, {1.0f, 0.0f});
    r->ex->setStepHook(
        [r](size_t i) { r->referenceOut[i] = r->ex->stepOutput(i).toFloat(); });
  }
  ref->info = describeModel(module, *ref->ex);
  ref->errors.resize(ref->outputsOnly ? ex->outputSteps().size() : steps);
  ref->millis.assign(steps, 0.0);
  ref->referenceMillis.assign(steps, 0.0);
  reference = std::move(ref);
  installHook();
  return success();
}

bool ModelRun::comparesOutputsOnly() const {
  return reference && reference->outputsOnly;
}

size_t ModelRun::referenceLayers() const {
  return reference ? reference->ex->steps().size() : 0;
}

bool ModelRun::runImage(const std::string &path, const rt::Image &image,
                        InferenceResult &result, std::string &error) {
  InferenceOptions io = opts.inference;
  if (evaluator)
    io.thresh = 0.005f; // what `detector map` collects
  try {
    result = eval::runImage(*ex, modelInfo, image, io);
  } catch (const std::exception &e) {
    error = path + ": " + e.what();
    return false;
  }
  if (!dumpError.empty()) {
    error = dumpError;
    return false;
  }
  result.nonFiniteHint = diagnoseNonFinite();
  if (reference && !compareImage(image, io, result, path, error))
    return false;
  if (!opts.dumpDir.empty()) {
    rt::Tensor input = rt::makeNetworkInput(image, modelInfo.netW,
                                            modelInfo.netH, preprocess());
    if (!rt::writeNpy(opts.dumpDir + "/input.npy", input, error))
      return false;
  }
  if (evaluator && !evaluateImage(path, result, error))
    return false;
  ++images;
  return true;
}

static size_t countNonFinite(ArrayRef<float> values) {
  return llvm::count_if(values, [](float v) { return !std::isfinite(v); });
}

/// What in a layer's weights makes NaN or infinities: non-finite values,
/// or a batch norm's negative variance (Darknet takes its square root).
/// Empty when the weights are sound.
static std::string weightTrouble(Operation *head) {
  SmallVector<Operation *, 2> ops = {head};
  if (head->getNumResults() == 1 && head->getResult(0).hasOneUse())
    if (auto bn = dyn_cast<BatchNormOp>(*head->getResult(0).user_begin()))
      ops.push_back(bn);
  size_t nonFinite = 0, total = 0, negativeVariance = 0;
  for (Operation *op : ops)
    for (NamedAttribute a : op->getAttrs()) {
      auto values = dyn_cast<ElementsAttr>(a.getValue());
      if (!values || !isa<FloatType>(values.getElementType()))
        continue;
      std::vector<float> v = getFloats(values);
      total += v.size();
      nonFinite += countNonFinite(v);
      if (isa<BatchNormOp>(op) && a.getName() == "variance")
        negativeVariance += llvm::count_if(v, [](float x) { return x < 0; });
    }
  std::string why;
  if (nonFinite)
    why = strprintf("its weights hold %zu NaN/Inf values (of %zu)", nonFinite,
                    total);
  if (negativeVariance)
    why += strprintf("%sits batch-norm variance has %zu negative values "
                     "(their square root is NaN)",
                     why.empty() ? "" : "; ", negativeVariance);
  return why;
}

/// When the outputs hold NaN or infinities (a detector then reports 0
/// candidates, a classifier NaN probabilities): the first layer that output
/// one, found by running the input again once, and what in its weights
/// explains it.
std::string ModelRun::diagnoseNonFinite() {
  bool nonFiniteOutput = false;
  for (const rt::Tensor &t : ex->outputs())
    nonFiniteOutput |= countNonFinite(t.toFloat()) != 0;
  if (!nonFiniteOutput)
    return "";
  if (nonFiniteHint)
    return *nonFiniteHint;
  std::optional<size_t> first;
  ex->setStepHook([&](size_t i) {
    if (!first && countNonFinite(ex->stepOutput(i).toFloat()))
      first = i;
  });
  ex->run();
  if (hooked)
    installHook();
  else
    ex->setStepHook(nullptr);
  if (!first)
    return *(nonFiniteHint = "the outputs hold NaN/Inf");
  const interp::StepInfo &step = ex->steps()[*first];
  std::string why = weightTrouble(step.head);
  if (why.empty())
    why = "its weights are finite (its values overflow a float)";
  nonFiniteHint = "the outputs hold NaN/Inf: " + step.label +
                  " is the first layer to output one; " + why;
  return *nonFiniteHint;
}

bool ModelRun::evaluateImage(const std::string &path, InferenceResult &result,
                             std::string &error) {
  std::vector<rt::GroundTruth> truth;
  bool missing = false;
  std::string labels = rt::labelPathForImage(path, opts.labelsDir);
  if (!rt::readYoloLabels(labels, truth, missing, error))
    return false;
  evaluator->addImage(result.detections, truth);
  // Report at the user's threshold.
  result.reported = rt::reportDetections(result.detections, result.imageW,
                                         result.imageH, opts.inference.thresh);
  return true;
}

bool ModelRun::compareImage(const rt::Image &image, const InferenceOptions &io,
                            const InferenceResult &result,
                            const std::string &path, std::string &error) {
  Reference &r = *reference;
  const std::vector<double> &ms = ex->stepMillis();
  for (size_t i = 0; i < ms.size(); ++i)
    r.millis[i] += ms[i];
  InferenceResult refResult;
  try {
    refResult = eval::runImage(*r.ex, r.info, image, io);
  } catch (const std::exception &e) {
    error = r.name + ": " + e.what();
    return false;
  }
  const std::vector<double> &refMs = r.ex->stepMillis();
  if (r.outputsOnly) {
    std::vector<rt::Tensor> out = ex->outputs(), refOut = r.ex->outputs();
    for (size_t k = 0; k < out.size(); ++k) {
      auto [lo, hi] = representableRange(out[k]);
      r.errors[k].add(refOut[k].toFloat(), out[k].toFloat(), lo, hi);
    }
    for (double t : refMs)
      r.referenceMillis[0] += t;
  } else {
    for (size_t i = 0; i < r.errors.size(); ++i) {
      r.errors[i].add(r.referenceOut[i], r.out[i], r.clipRange[i].first,
                      r.clipRange[i].second);
      r.referenceMillis[i] += refMs[i];
    }
  }
  float thresh = opts.inference.thresh;
  auto refReported = rt::reportDetections(
      refResult.detections, refResult.imageW, refResult.imageH, thresh);
  auto reported = rt::reportDetections(result.detections, result.imageW,
                                       result.imageH, thresh);
  r.matchedDetections += countMatchedDetections(refReported, reported);
  r.referenceDetections += refReported.size();
  r.detections += reported.size();
  if (evaluator) {
    if (!r.evaluator)
      r.evaluator = std::make_unique<rt::MapEvaluator>(modelInfo.classes());
    // The model's own labels are checked (and reported) by evaluateImage.
    std::vector<rt::GroundTruth> truth;
    bool missing = false;
    std::string ignored;
    if (rt::readYoloLabels(rt::labelPathForImage(path, opts.labelsDir), truth,
                           missing, ignored))
      r.evaluator->addImage(refResult.detections, truth);
  }
  return true;
}

ForwardTiming ModelRun::timeForward(int repeat) {
  if (images == 0) {
    rt::Tensor input(rt::DType::F32, modelInfo.netC, modelInfo.netH,
                     modelInfo.netW);
    std::fill(input.f32(), input.f32() + input.numel(), 0.5f);
    ex->setInput(input);
  }
  ex->setStepHook(nullptr);
  ex->run(); // warm-up
  size_t steps = ex->steps().size();
  std::vector<double> times;
  std::vector<std::vector<double>> perStep(steps);
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ex->run();
    times.push_back(std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - t0)
                        .count());
    if (opts.timeLayers)
      for (size_t i = 0; i < steps; ++i)
        perStep[i].push_back(ex->stepMillis()[i]);
  }
  if (hooked)
    installHook();
  ForwardTiming t;
  t.runs = repeat;
  t.threads = ex->options().threads;
  t.kernels = ex->options().kernels == interp::KernelSet::Reference
                  ? "reference"
                  : "fast";
  t.median = medianOf(times);
  if (!times.empty()) {
    t.min = *std::min_element(times.begin(), times.end());
    t.max = *std::max_element(times.begin(), times.end());
  }
  if (opts.timeLayers)
    for (const std::vector<double> &s : perStep)
      t.layerMedians.push_back(medianOf(s));
  return t;
}

LayerRef ModelRun::layerRef(size_t step) const {
  const interp::StepInfo &s = ex->steps()[step];
  return {s.layer, s.kind, s.output.str(), s.precision};
}

std::optional<ComparisonReport> ModelRun::comparison() const {
  if (!reference)
    return std::nullopt;
  const Reference &r = *reference;
  ComparisonReport c;
  c.against = r.name;
  c.images = images;
  c.outputsOnly = r.outputsOnly;
  double n = images;
  auto perImage = [&](double ms) { return images ? ms / n : 0.0; };
  for (double t : r.millis)
    c.forwardMillis += t;
  for (double t : r.referenceMillis)
    c.referenceForwardMillis += t;
  for (size_t k = 0; k < r.errors.size(); ++k) {
    ComparisonRow row;
    row.error = r.errors[k];
    if (r.outputsOnly) {
      row.layer = layerRef(ex->outputSteps()[k]);
      row.layer.kind = "output " + std::to_string(k);
      if (k == 0) {
        row.millis = perImage(c.forwardMillis);
        row.referenceMillis = perImage(r.referenceMillis[0]);
      }
    } else {
      row.layer = layerRef(k);
      row.millis = perImage(r.millis[k]);
      row.referenceMillis = perImage(r.referenceMillis[k]);
    }
    c.rows.push_back(row);
  }
  c.forwardMillis = perImage(c.forwardMillis);
  c.referenceForwardMillis = perImage(c.referenceForwardMillis);
  c.thresh = opts.inference.thresh;
  c.referenceDetections = r.referenceDetections;
  c.matchedDetections = r.matchedDetections;
  c.detections = r.detections;
  if (evaluator && r.evaluator) {
    c.map = evaluator->compute(0.5f, 0, c.thresh).map;
    c.referenceMap = r.evaluator->compute(0.5f, 0, c.thresh).map;
  }
  auto own = computeModelStats(model), theirs = computeModelStats(r.module);
  if (succeeded(own) && succeeded(theirs)) {
    c.weightBytes = own->weightBytes;
    c.referenceWeightBytes = theirs->weightBytes;
  }
  return c;
}

std::optional<OverflowReport> ModelRun::overflow() const {
  if (!opts.overflowReport)
    return std::nullopt;
  OverflowReport o;
  o.images = images;
  for (size_t i = 0; i < ex->steps().size(); ++i) {
    if (overflowProducts[i].empty())
      continue;
    OverflowRow row;
    row.layer = layerRef(i);
    row.products = summarizeSeries(overflowProducts[i]);
    row.accumulators = summarizeSeries(overflowAccumulators[i]);
    row.worstCaseBits =
        staticAccumulatorBits(cast<Conv2DOp>(ex->steps()[i].head));
    o.rows.push_back(row);
  }
  return o;
}

std::vector<LayerStatsRow> ModelRun::layerStats() const {
  std::vector<LayerStatsRow> rows;
  if (opts.layerStats)
    for (size_t i = 0; i < stats.size(); ++i)
      rows.push_back({layerRef(i), stats[i]});
  return rows;
}

std::optional<MapReport> ModelRun::evaluation() const {
  if (!evaluator)
    return std::nullopt;
  return makeMapReport(*evaluator, opts.inference.thresh);
}

MapReport qsim::eval::makeMapReport(const rt::MapEvaluator &evaluator,
                                    float thresh) {
  MapReport m;
  m.thresh = thresh;
  m.result = evaluator.compute(0.5f, 0, m.thresh);
  m.map50to95 = evaluator.mapRange();
  return m;
}

std::vector<LayerTimeRow>
ModelRun::layerTimes(const ForwardTiming *timing) const {
  const std::vector<double> &ms = timing && !timing->layerMedians.empty()
                                      ? timing->layerMedians
                                      : ex->stepMillis();
  std::vector<LayerTimeRow> rows;
  for (size_t i = 0; i < ms.size(); ++i)
    rows.push_back({layerRef(i), ms[i]});
  return rows;
}
