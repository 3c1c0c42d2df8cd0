//===- Train.cpp - fine-tune a module from a teacher ---------------------===//
//
// The MLIR side of training: checks the inputs, turns the modules into
// NetSpecs (the quantized form of a float model with a precision plan comes
// from --qsim-quantize itself, run on a copy), runs the loop (Trainer.cpp,
// torch) with hooks that evaluate mAP with the interpreter and write
// checkpoints, and writes the result back into the student.
//
//===----------------------------------------------------------------------===//

#include "qsim/Train/Train.h"
#include "Data.h"
#include "ModuleSpec.h"
#include "Schedule.h"
#include "Trainer.h"

#include "qsim/Evaluation/ModelMeasures.h"
#include "qsim/Interpreter/Executor.h"
#include "qsim/Quant/Precision.h"
#include "qsim/Quant/Quantizer.h"
#include "qsim/Support/Diagnostics.h"
#include "qsim/Support/Progress.h"

#include "mlir/IR/Builders.h"

#include <cmath>
#include <sstream>

using namespace mlir;
using namespace qsim;
using namespace qsim::train;

int64_t qsim::train::checkpointStep(ModuleOp module) {
  auto d = module->getAttrOfType<DictionaryAttr>("qsim.training");
  if (!d)
    return 0;
  auto step = d.getAs<IntegerAttr>("step");
  return step ? step.getInt() : 0;
}

namespace {

std::string shapeText(const Shape3 &s) {
  return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
         std::to_string(s.w);
}

std::string headText(const Node &n) {
  std::ostringstream os;
  os << n.label << " " << shapeText(n.out);
  if (n.kind == NodeKind::Yolo)
    os << " (" << n.classes << " classes, " << n.mask.size() << " anchors)";
  else if (n.kind == NodeKind::Region)
    os << " (" << n.classes << " classes, " << n.num << " anchors)";
  return os.str();
}

bool sameHead(const Node &a, const Node &b) {
  if (a.kind != b.kind || a.out.c != b.out.c || a.out.h != b.out.h ||
      a.out.w != b.out.w)
    return false;
  if (a.kind == NodeKind::Yolo)
    return a.classes == b.classes && a.mask.size() == b.mask.size();
  if (a.kind == NodeKind::Region)
    return a.classes == b.classes && a.num == b.num && a.coords == b.coords;
  return true;
}

class TrainJob {
public:
  TrainJob(ModuleOp student, ModuleOp teacher, const TrainOptions &options,
           const TrainCallbacks &callbacks)
      : student(student), teacher(teacher), opts(options),
        callbacks(callbacks) {}
  LogicalResult run(TrainSummary &summary);

private:
  InFlightDiagnostic error() { return student.emitError(); }
  LogicalResult checkOptions();
  LogicalResult readStudent();
  LogicalResult readTeacher();
  LogicalResult resolveLayers(TrainerConfig &config);
  LogicalResult loadData();
  LogicalResult loadEvaluation();
  LogicalResult configure(TrainerConfig &config);
  bool evaluate(const NetSpec &trained, double &map, std::string &err);
  bool checkpoint(const NetSpec &trained, int64_t step,
                  const std::string &state, std::string &err);
  bool runTeacher(const Batch &batch, const std::vector<int64_t> &layers,
                  std::vector<std::vector<float>> &out, std::string &err);
  /// A copy of the student holding `trained`.
  OwningOpRef<ModuleOp> withWeights(const NetSpec &trained, int64_t step);
  void setTrainingAttr(ModuleOp m, int64_t step);

  ModuleOp student, teacher;
  const TrainOptions &opts;
  const TrainCallbacks &callbacks;
  ModuleSpec studentSpec, teacherSpec;
  /// A float student trained for its int8 form (a precision plan).
  bool planQat = false;
  std::unique_ptr<DataLoader> data;
  std::unique_ptr<interp::Executor> teacherExec;
  std::vector<rt::Image> evalImages;
  std::vector<std::vector<rt::GroundTruth>> evalTruth;
};

LogicalResult TrainJob::checkOptions() {
  auto bad = [&](const std::string &what) {
    error() << "qsim-train: " << what;
    return failure();
  };
  if (opts.steps <= 0)
    return bad("the number of steps must be positive");
  if (opts.batch <= 0)
    return bad("the batch size must be positive");
  auto finiteNonNegative = [](double v) { return std::isfinite(v) && v >= 0; };
  if ((opts.lr && !(std::isfinite(*opts.lr) && *opts.lr > 0)))
    return bad("the learning rate must be a positive number");
  if ((opts.momentum &&
       !(finiteNonNegative(*opts.momentum) && *opts.momentum < 1)) ||
      (opts.decay && !finiteNonNegative(*opts.decay)))
    return bad("momentum must be in [0, 1) and decay non-negative");
  if (!finiteNonNegative(opts.distillWeight) ||
      !finiteNonNegative(opts.yoloWeight) ||
      !finiteNonNegative(opts.hintWeight))
    return bad("loss weights must be non-negative numbers");
  if (opts.burnIn && *opts.burnIn < 0)
    return bad("burn-in must be non-negative");
  if (opts.checkpointEvery < 0 || opts.evalEvery < 0 || opts.threads < 0)
    return bad("--checkpoint-every, --eval-every and --threads must be "
               "non-negative");
  if (opts.evalEvery > 0 && opts.evalImages.empty())
    return bad("mAP during training needs labelled evaluation images");
  return success();
}

LogicalResult TrainJob::readStudent() {
  if (failed(readModule(student, studentSpec)))
    return failure();
  NetSpec &spec = studentSpec.spec;
  bool quantized = spec.quantized();
  if (quantized && opts.lsq)
    return error() << "qsim-train: '" << opts.studentName
                   << "' is quantized already: --lsq learns calibrated "
                      "ranges, train the float model with its precision "
                      "plan (before --qsim-quantize) instead";
  if (!opts.qat || quantized)
    return success();
  // The grids --qsim-quantize would give this float model.
  bool anyInt8 = false;
  auto layers = getLayers(getMainFunc(student));
  if (failed(layers))
    return failure();
  for (const Layer &l : *layers)
    anyInt8 |= quantization::getAssignedPrecision(l) == "int8";
  if (!anyInt8)
    return error() << "qsim-train: --qat needs a precision plan with int8 "
                      "layers and calibrated ranges on '"
                   << opts.studentName
                   << "' (--qsim-calibrate, --qsim-assign-precision), or a "
                      "model quantized with --qsim-quantize";
  OwningOpRef<ModuleOp> copy(cast<ModuleOp>(student->clone()));
  quantization::QuantizeOptions qo;
  qo.perChannelWeights = opts.perChannelWeights;
  qo.symmetricActivations = opts.symmetricActivations;
  qo.pow2Scales = opts.pow2Scales;
  if (failed(quantization::quantizeModule(*copy, qo)))
    return failure();
  ModuleSpec quantizedSpec;
  if (failed(readModule(*copy, quantizedSpec, /*withWeights=*/false)) ||
      failed(overlayQuantization(studentSpec, quantizedSpec,
                                 opts.perChannelWeights, opts.pow2Scales)))
    return failure();
  planQat = true;
  if (opts.lsq)
    buildRangeGroups(spec,
                     GridRule{opts.symmetricActivations, opts.pow2Scales});
  return success();
}

LogicalResult TrainJob::readTeacher() {
  if (failed(readModule(teacher, teacherSpec)))
    return failure();
  const NetSpec &s = studentSpec.spec, &t = teacherSpec.spec;
  if (s.input.c != t.input.c || s.input.h != t.input.h ||
      s.input.w != t.input.w)
    return error() << "qsim-train: the teacher '" << opts.teacherName
                   << "' takes " << shapeText(t.input)
                   << " inputs, the student '" << opts.studentName << "' "
                   << shapeText(s.input);
  if (s.outputs.size() != t.outputs.size())
    return error() << "qsim-train: the teacher '" << opts.teacherName
                   << "' has " << t.outputs.size() << " outputs, the student '"
                   << opts.studentName << "' " << s.outputs.size()
                   << ": distillation pairs the outputs in order";
  for (size_t k = 0; k < s.outputs.size(); ++k) {
    const Node &a = s.nodes[s.outputs[k]], &b = t.nodes[t.outputs[k]];
    if (!sameHead(a, b))
      return error() << "qsim-train: output " << k << " of the teacher '"
                     << opts.teacherName << "' is " << headText(b)
                     << ", of the student '" << opts.studentName << "' "
                     << headText(a);
  }
  bool anyHead = false;
  for (int o : s.outputs)
    anyHead |= s.nodes[o].kind == NodeKind::Yolo ||
               s.nodes[o].kind == NodeKind::Region;
  if (!anyHead && opts.distillWeight > 0)
    return error() << "qsim-train: '" << opts.studentName
                   << "' has no [yolo] or [region] head to distil";
  return success();
}

LogicalResult TrainJob::resolveLayers(TrainerConfig &config) {
  const NetSpec &s = studentSpec.spec, &t = teacherSpec.spec;
  for (auto [a, b] : opts.hints) {
    if (a < 0 || a >= (int64_t)s.layerOutputs.size() || b < 0 ||
        b >= (int64_t)t.layerOutputs.size())
      return error() << "qsim-train: --hint " << a << ":" << b
                     << ": the student has layers 0-"
                     << s.layerOutputs.size() - 1 << ", the teacher 0-"
                     << t.layerOutputs.size() - 1;
    HintPair h{s.layerOutputs[a], b,
               "hint " + std::to_string(a) + ":" + std::to_string(b)};
    const Shape3 &sa = s.nodes[h.studentNode].out,
                 &tb = t.nodes[t.layerOutputs[b]].out;
    if (sa.h != tb.h || sa.w != tb.w)
      return error() << "qsim-train: --hint " << a << ":" << b
                     << ": student layer " << a << " is " << shapeText(sa)
                     << ", teacher layer " << b << " " << shapeText(tb)
                     << " (the spatial sizes must match)";
    config.hints.push_back(h);
  }
  std::set<int64_t> frozen;
  if (!opts.freeze.empty()) {
    DiagnosticPrefix prefix(student.getContext(), "qsim-train: --freeze: ");
    if (failed(quantization::parseLayerList(opts.freeze, student, frozen)))
      return failure();
  }
  config.frozen.assign(s.nodes.size(), false);
  for (size_t i = 0; i < s.nodes.size(); ++i)
    config.frozen[i] = frozen.count(s.nodes[i].layer) != 0;
  return success();
}

LogicalResult TrainJob::loadData() {
  const NetSpec &s = studentSpec.spec;
  DataOptions d;
  d.images = opts.images;
  d.labels = opts.labels;
  d.netW = s.input.w;
  d.netH = s.input.h;
  d.letterbox = s.letterBox || s.flavor == train::Flavor::PJReddie;
  d.batch = opts.batch;
  d.seed = opts.seed;
  d.threads = std::max(1, opts.loaderThreads);
  d.augmentation.enabled = opts.augment;
  d.augmentation.hue = cfgNumber(s.net, "hue", 0);
  d.augmentation.saturation = cfgNumber(s.net, "saturation", 1);
  d.augmentation.exposure = cfgNumber(s.net, "exposure", 1);
  d.augmentation.flip = cfgNumber(s.net, "flip", 1) != 0;
  for (int o : s.outputs) {
    const Node &n = s.nodes[o];
    if (n.kind == NodeKind::Yolo || n.kind == NodeKind::Region) {
      d.classes = std::max<int>(d.classes, n.classes);
      d.augmentation.jitter = cfgNumber(n.cfg, "jitter", 0.2);
    }
  }
  std::string err;
  data = DataLoader::create(d, err);
  if (!data)
    return error() << "qsim-train: " << err;
  if (!opts.labels.empty() && data->labeledCount() == 0)
    return error() << "qsim-train: no label file in '" << opts.labels
                   << "' belongs to the training images (<image stem>.txt)";
  return success();
}

LogicalResult TrainJob::loadEvaluation() {
  if (opts.evalEvery <= 0)
    return success();
  std::vector<std::string> files;
  std::string err;
  for (const std::string &dir : opts.evalImages)
    if (!rt::listImageFiles(dir, files, err))
      return error() << "qsim-train: " << err;
  if (files.empty())
    return error() << "qsim-train: no evaluation images";
  for (const std::string &f : files) {
    rt::Image im;
    std::vector<rt::GroundTruth> truth;
    bool missing = false;
    if (!rt::loadImage(f, im, err) ||
        !rt::readYoloLabels(rt::labelPathForImage(f, opts.evalLabels), truth,
                            missing, err))
      return error() << "qsim-train: " << err;
    evalImages.push_back(std::move(im));
    evalTruth.push_back(std::move(truth));
  }
  return success();
}

} // namespace

namespace {

LogicalResult TrainJob::configure(TrainerConfig &config) {
  const NetSpec &s = studentSpec.spec;
  ScheduleRequest request;
  request.lr = opts.lr;
  request.burnIn = opts.burnIn;
  switch (opts.schedule) {
  case TrainOptions::Schedule::Net:
    break;
  case TrainOptions::Schedule::Constant:
    request.policy = Policy::Constant;
    break;
  case TrainOptions::Schedule::Steps:
    request.policy = Policy::Steps;
    break;
  case TrainOptions::Schedule::Cosine:
    request.policy = Policy::Cosine;
    break;
  }
  std::string err;
  if (!scheduleFromNet(s.net, opts.steps, request, config.schedule, err))
    return error() << "qsim-train: " << err;
  config.steps = opts.steps;
  config.startStep = opts.resume ? checkpointStep(student) : 0;
  if (opts.resume && config.startStep == 0)
    return error() << "qsim-train: '" << opts.studentName
                   << "' is not a qsim-train checkpoint (no qsim.training)";
  if (config.startStep >= opts.steps)
    return error() << "qsim-train: '" << opts.studentName
                   << "' was trained to step " << config.startStep
                   << " already (--steps " << opts.steps << ")";
  config.optimizer = opts.optimizer == TrainOptions::Optimizer::Adam
                         ? OptimizerKind::Adam
                         : OptimizerKind::SGD;
  config.momentum = opts.momentum.value_or(cfgNumber(s.net, "momentum", 0.9));
  config.decay = opts.decay.value_or(cfgNumber(s.net, "decay", 0.0005));
  config.distillWeight = opts.distillWeight;
  config.yoloWeight = opts.labels.empty() ? 0 : opts.yoloWeight;
  config.hintWeight = opts.hintWeight;
  config.view.fakeQuant = true;
  config.view.learnRanges = opts.lsq && planQat;
  config.threads = opts.threads;
  config.seed = opts.seed;
  config.checkpointEvery = callbacks.checkpoint ? opts.checkpointEvery : 0;
  config.evalEvery = opts.evalEvery;
  config.optimizerState = opts.optimizerState;
  return resolveLayers(config);
}

void TrainJob::setTrainingAttr(ModuleOp m, int64_t step) {
  Builder b(m.getContext());
  m->setAttr(
      "qsim.training",
      b.getDictionaryAttr(
          {b.getNamedAttr("step", b.getI64IntegerAttr(step)),
           b.getNamedAttr("steps", b.getI64IntegerAttr(opts.steps)),
           b.getNamedAttr("seed", b.getI64IntegerAttr((int64_t)opts.seed))}));
}

OwningOpRef<ModuleOp> TrainJob::withWeights(const NetSpec &trained,
                                            int64_t step) {
  OwningOpRef<ModuleOp> copy(cast<ModuleOp>(student->clone()));
  ModuleSpec target;
  if (failed(readModule(*copy, target, /*withWeights=*/false)) ||
      failed(writeModule(trained, target)))
    return nullptr;
  setTrainingAttr(*copy, step);
  return copy;
}

bool TrainJob::evaluate(const NetSpec &trained, double &map, std::string &err) {
  OwningOpRef<ModuleOp> m = withWeights(trained, 0);
  if (!m) {
    err = "cannot write the trained weights into a copy of the student";
    return false;
  }
  if (planQat) {
    // The model --qsim-quantize will make of it.
    quantization::QuantizeOptions qo;
    qo.perChannelWeights = opts.perChannelWeights;
    qo.symmetricActivations = opts.symmetricActivations;
    qo.pow2Scales = opts.pow2Scales;
    if (failed(quantization::quantizeModule(*m, qo))) {
      err = "the trained model does not quantize";
      return false;
    }
  }
  return eval::evaluateMap(*m, evalImages, evalTruth, map, err);
}

bool TrainJob::checkpoint(const NetSpec &trained, int64_t step,
                          const std::string &state, std::string &err) {
  OwningOpRef<ModuleOp> m = withWeights(trained, step);
  if (!m) {
    err = "cannot write the trained weights into a copy of the student";
    return false;
  }
  if (failed(callbacks.checkpoint(*m, step, state))) {
    err = "writing the checkpoint of step " + std::to_string(step) + " failed";
    return false;
  }
  return true;
}

bool TrainJob::runTeacher(const Batch &batch,
                          const std::vector<int64_t> &layers,
                          std::vector<std::vector<float>> &out,
                          std::string &err) {
  if (!teacherExec) {
    interp::ExecutorOptions eo;
    eo.kernels = interp::KernelSet::Fast;
    eo.threads = opts.threads;
    teacherExec = eval::createExecutor(teacher, err, eo);
    if (!teacherExec)
      return false;
  }
  const auto &steps = teacherExec->steps();
  std::vector<int> wanted(steps.size(), -1);
  out.assign(layers.size(), {});
  for (size_t k = 0; k < layers.size(); ++k)
    for (size_t st = 0; st < steps.size(); ++st)
      if (steps[st].layer == layers[k]) {
        wanted[st] = k;
        out[k].resize((size_t)batch.n * steps[st].output.size());
      }
  const size_t plane = (size_t)3 * batch.h * batch.w;
  for (int b = 0; b < batch.n; ++b) {
    teacherExec->setStepHook([&](size_t st) {
      if (wanted[st] < 0)
        return;
      std::vector<float> v = teacherExec->stepOutput(st).toFloat();
      std::copy(v.begin(), v.end(), out[wanted[st]].begin() + b * v.size());
    });
    rt::Tensor in(rt::DType::F32, 3, batch.h, batch.w);
    std::copy(batch.data.begin() + b * plane,
              batch.data.begin() + (b + 1) * plane, in.f32());
    teacherExec->setInput(in);
    teacherExec->run();
  }
  teacherExec->setStepHook(nullptr);
  return true;
}

LogicalResult TrainJob::run(TrainSummary &summary) {
  TrainerConfig config;
  if (failed(checkOptions()) || failed(readStudent()) ||
      failed(readTeacher()) || failed(configure(config)) ||
      failed(loadData()) || failed(loadEvaluation()))
    return failure();
  summary.schedule = config.schedule.describe();
  summary.firstStep = config.startStep;
  std::string err;
  if (opts.evalEvery > 0) {
    double map = 0;
    if (!evaluate(studentSpec.spec, map, err))
      return error() << "qsim-train: " << err;
    summary.mapBefore = map;
  }
  ProgressBar bar("train", opts.steps, opts.progressBar);
  TrainerHooks hooks;
  hooks.report = [&](const StepReport &r) {
    TrainProgress p;
    p.step = r.step;
    p.steps = r.steps;
    p.loss = r.loss;
    p.distill = r.distill;
    p.yolo = r.yolo;
    p.hint = r.hint;
    p.lr = r.lr;
    p.seconds = r.seconds;
    p.dataSeconds = r.dataSeconds;
    p.teacherSeconds = r.teacherSeconds;
    p.forwardSeconds = r.forwardSeconds;
    p.backwardSeconds = r.backwardSeconds;
    if (r.evaluated)
      p.map = summary.mapAfter = r.map;
    summary.history.push_back(p);
    char note[96];
    snprintf(note, sizeof(note), "loss %.4g lr %.3g", r.loss, r.lr);
    std::string text = note;
    if (p.map)
      text += " mAP " + std::to_string(*p.map).substr(0, 5);
    bar.update(r.step, text);
    if (callbacks.progress)
      callbacks.progress(p);
  };
  hooks.stop = callbacks.stop;
  hooks.teacher = [&](const Batch &b, const std::vector<int64_t> &layers,
                      std::vector<std::vector<float>> &out,
                      std::string &e) { return runTeacher(b, layers, out, e); };
  hooks.checkpoint = [&](const NetSpec &t, int64_t step,
                         const std::string &state, std::string &e) {
    return checkpoint(t, step, state, e);
  };
  hooks.evaluate = [&](const NetSpec &t, double &map, std::string &e) {
    return evaluate(t, map, e);
  };
  TrainerResult result;
  NetSpec trained = studentSpec.spec;
  if (!runTrainer(trained, teacherSpec.spec, *data, config, hooks, result, err))
    return error() << "qsim-train: " << err;
  bar.finish();
  if (failed(writeModule(trained, studentSpec)))
    return error() << "qsim-train: cannot write the trained weights back";
  setTrainingAttr(student, result.endStep);
  summary.lastStep = result.endStep;
  summary.stopped = result.stopped;
  summary.optimizerState = std::move(result.optimizerState);
  return success();
}

} // namespace

LogicalResult qsim::train::trainModule(ModuleOp student, ModuleOp teacher,
                                       const TrainOptions &options,
                                       const TrainCallbacks &callbacks,
                                       TrainSummary *summary) {
  TrainSummary local;
  TrainJob job(student, teacher, options, callbacks);
  return job.run(summary ? *summary : local);
}
