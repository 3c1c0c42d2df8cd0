//===- Trainer.cpp - the training loop -----------------------------------===//

#include "Trainer.h"
#include "Losses.h"
#include "TorchNet.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <sstream>
#ifdef __GLIBC__
#include <malloc.h>
#endif

using namespace qsim;
using namespace qsim::train;

namespace {

class Trainer {
public:
  Trainer(NetSpec &student, const NetSpec &teacher, DataLoader &data,
          const TrainerConfig &config, const TrainerHooks &hooks)
      : studentSpec(student), teacher(teacher), data(data), config(config),
        hooks(hooks), studentNet(student, config.view) {}
  bool run(TrainerResult &result, std::string &error);

private:
  bool setUp(std::string &error);
  bool teacherOutputs(const Batch &batch, std::vector<torch::Tensor> &out,
                      std::string &error);
  bool step(int64_t s, StepReport &report, std::string &error);
  torch::Tensor hintLoss(const std::vector<torch::Tensor> &student,
                         const std::vector<torch::Tensor> &teacher,
                         double &reported);
  bool afterStep(int64_t s, StepReport &report, std::string &error);
  void setLearningRate(double lr);
  std::string saveOptimizer() const;
  bool loadOptimizer(const std::string &state, std::string &error);
  NetSpec exported() const {
    NetSpec copy = studentSpec;
    studentNet.exportTo(copy);
    return copy;
  }

  NetSpec &studentSpec;
  const NetSpec &teacher;
  DataLoader &data;
  const TrainerConfig &config;
  const TrainerHooks &hooks;
  TorchNet studentNet;
  /// The teacher layers the losses read: each head's input, then the hints.
  std::vector<int64_t> teacherLayers;
  /// Output positions that are detection heads.
  std::vector<size_t> heads;
  std::vector<torch::Tensor> adapterWeight, adapterBias;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

bool Trainer::setUp(std::string &error) {
  torch::manual_seed(config.seed);
  for (size_t k = 0; k < studentSpec.outputs.size(); ++k) {
    int node = studentSpec.outputs[k];
    NodeKind kind = studentSpec.nodes[node].kind;
    if (kind != NodeKind::Yolo && kind != NodeKind::Region)
      continue;
    heads.push_back(k);
    int raw = teacher.nodes[teacher.outputs[k]].inputs[0];
    auto it = std::find(teacher.layerOutputs.begin(),
                        teacher.layerOutputs.end(), raw);
    if (raw < 0 || it == teacher.layerOutputs.end()) {
      error = "the teacher's " + teacher.nodes[teacher.outputs[k]].label +
              " does not read a layer's output";
      return false;
    }
    teacherLayers.push_back(it - teacher.layerOutputs.begin());
  }
  std::vector<torch::Tensor> decayed, plain, ranges;
  for (TorchNet::Param &p : studentNet.parameters()) {
    bool frozen = p.node >= 0 && (size_t)p.node < config.frozen.size() &&
                  config.frozen[p.node];
    p.tensor.set_requires_grad(!frozen);
    if (frozen)
      continue;
    if (p.role == TorchNet::Role::Weight)
      decayed.push_back(p.tensor);
    else if (p.role == TorchNet::Role::RangeLo ||
             p.role == TorchNet::Role::RangeHi)
      ranges.push_back(p.tensor);
    else
      plain.push_back(p.tensor);
  }
  for (const HintPair &h : config.hints) {
    int64_t cs = studentSpec.nodes[h.studentNode].out.c;
    int64_t ct = teacher.nodes[teacher.layerOutputs[h.teacherLayer]].out.c;
    teacherLayers.push_back(h.teacherLayer);
    if (cs == ct) {
      adapterWeight.emplace_back();
      adapterBias.emplace_back();
      continue;
    }
    adapterWeight.push_back(
        (torch::randn({ct, cs, 1, 1}) / std::sqrt((double)cs))
            .to(studentNet.dtype())
            .set_requires_grad(true));
    adapterBias.push_back(
        torch::zeros({ct}, studentNet.dtype()).set_requires_grad(true));
    decayed.push_back(adapterWeight.back());
    plain.push_back(adapterBias.back());
  }
  const double lr = config.schedule.rate(config.startStep);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto add = [&](std::vector<torch::Tensor> &ps, double decay) {
    if (ps.empty())
      return;
    if (config.optimizer == OptimizerKind::SGD)
      groups.emplace_back(ps, std::make_unique<torch::optim::SGDOptions>(
                                  torch::optim::SGDOptions(lr)
                                      .momentum(config.momentum)
                                      .weight_decay(decay)));
    else
      groups.emplace_back(
          ps, std::make_unique<torch::optim::AdamOptions>(
                  torch::optim::AdamOptions(lr).weight_decay(decay)));
  };
  add(decayed, config.decay);
  add(plain, 0);
  add(ranges, 0);
  if (config.optimizer == OptimizerKind::SGD)
    optimizer = std::make_unique<torch::optim::SGD>(
        groups, torch::optim::SGDOptions(lr).momentum(config.momentum));
  else
    optimizer = std::make_unique<torch::optim::Adam>(
        groups, torch::optim::AdamOptions(lr));
  return true;
}

bool Trainer::teacherOutputs(const Batch &batch,
                             std::vector<torch::Tensor> &out,
                             std::string &error) {
  std::vector<std::vector<float>> values;
  if (!hooks.teacher(batch, teacherLayers, values, error))
    return false;
  for (size_t k = 0; k < teacherLayers.size(); ++k) {
    const Shape3 &s = teacher.nodes[teacher.layerOutputs[teacherLayers[k]]].out;
    out.push_back(torch::from_blob(values[k].data(), {batch.n, s.c, s.h, s.w},
                                   torch::kFloat)
                      .to(studentNet.dtype())
                      .clone());
  }
  return true;
}

void Trainer::setLearningRate(double lr) {
  for (auto &g : optimizer->param_groups()) {
    if (config.optimizer == OptimizerKind::SGD)
      static_cast<torch::optim::SGDOptions &>(g.options()).lr(lr);
    else
      static_cast<torch::optim::AdamOptions &>(g.options()).lr(lr);
  }
}

std::string Trainer::saveOptimizer() const {
  torch::serialize::OutputArchive archive;
  optimizer->save(archive);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

bool Trainer::loadOptimizer(const std::string &state, std::string &error) {
  try {
    std::istringstream is(state);
    torch::serialize::InputArchive archive;
    archive.load_from(is);
    optimizer->load(archive);
  } catch (const c10::Error &e) {
    error = "the optimizer state saved with the checkpoint does not fit this "
            "training (other options or layers?): " +
            std::string(e.what_without_backtrace());
    return false;
  }
  return true;
}

torch::Tensor Trainer::hintLoss(const std::vector<torch::Tensor> &student,
                                const std::vector<torch::Tensor> &teacher,
                                double &reported) {
  torch::Tensor total = torch::zeros({}, studentNet.dtype());
  for (size_t k = 0; k < config.hints.size(); ++k) {
    torch::Tensor s = student[config.hints[k].studentNode];
    if (adapterWeight[k].defined())
      s = torch::conv2d(s, adapterWeight[k], adapterBias[k]);
    torch::Tensor t = teacher[heads.size() + k];
    total = total + (s - t).pow(2).mean();
  }
  reported = total.item<double>();
  return total;
}

static double secondsSince(std::chrono::steady_clock::time_point &t) {
  auto now = std::chrono::steady_clock::now();
  double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

bool Trainer::step(int64_t s, StepReport &report, std::string &error) {
  auto clock = std::chrono::steady_clock::now();
  Batch batch;
  if (!data.get(s, batch, error))
    return false;
  report.dataSeconds = secondsSince(clock);
  torch::Tensor x =
      torch::from_blob(batch.data.data(), {batch.n, 3, batch.h, batch.w},
                       torch::kFloat)
          .clone();
  report.lr = config.schedule.rate(s);
  setLearningRate(report.lr);
  std::vector<torch::Tensor> teacherOuts;
  if (!teacherOutputs(batch, teacherOuts, error))
    return false;
  report.teacherSeconds = secondsSince(clock);
  std::vector<torch::Tensor> outs = studentNet.forward(x);
  torch::Tensor loss = torch::zeros({}, studentNet.dtype());
  bool anyLabeled = false;
  for (char l : batch.labeled)
    anyLabeled |= l != 0;
  for (size_t h = 0; h < heads.size(); ++h) {
    const Node &head = studentSpec.nodes[studentSpec.outputs[heads[h]]];
    const torch::Tensor &raw = outs[head.inputs[0]];
    const torch::Tensor &tRaw = teacherOuts[h];
    if (config.distillWeight > 0) {
      LossTerm d = distillationLoss(head, studentSpec.flavor, raw, tRaw);
      loss = loss + config.distillWeight * d.loss;
      report.distill += d.reported;
    }
    if (config.yoloWeight > 0 && anyLabeled && head.kind == NodeKind::Yolo) {
      LossTerm y =
          yoloLoss(head, batch.w, batch.h, raw, batch.truth, batch.labeled);
      loss = loss + config.yoloWeight * y.loss;
      report.yolo += y.reported;
    }
  }
  if (!config.hints.empty() && config.hintWeight > 0)
    loss = loss + config.hintWeight * hintLoss(outs, teacherOuts, report.hint);
  report.loss = config.distillWeight * report.distill +
                config.yoloWeight * report.yolo +
                config.hintWeight * report.hint;
  if (!std::isfinite(loss.item<double>()) || !std::isfinite(report.loss)) {
    error = "training diverged at step " + std::to_string(s + 1) +
            " (the loss is not finite): lower the learning rate (--lr)";
    return false;
  }
  report.forwardSeconds = secondsSince(clock);
  optimizer->zero_grad();
  loss.backward();
  optimizer->step();
  studentNet.clampRanges();
  report.backwardSeconds = secondsSince(clock);
  return true;
}

bool Trainer::afterStep(int64_t s, StepReport &report, std::string &error) {
  int64_t done = s + 1;
  bool last = done == config.steps;
  if (hooks.evaluate && config.evalEvery > 0 &&
      (done % config.evalEvery == 0 || last)) {
    if (!hooks.evaluate(exported(), report.map, error))
      return false;
    report.evaluated = true;
  }
  if (hooks.checkpoint && config.checkpointEvery > 0 && !last &&
      done % config.checkpointEvery == 0)
    if (!hooks.checkpoint(exported(), done, saveOptimizer(), error))
      return false;
  return true;
}

/// Keeps freed tensor memory in the heap for the next step. glibc serves
/// allocations above its mmap threshold (at most 32 MiB; a batch's
/// activations are larger) with fresh mappings that every step faults in and
/// zeroes page by page again: a fifth of a step went to page faults (perf,
/// yolov3-tiny-aix2022 pruned 30 %, batch 8, 2 threads), and without mmap a
/// step took 0.41 s instead of 0.51 s (medians of 4 interleaved runs). The
/// process keeps its peak heap, which a training process reaches at the
/// first step anyway.
static void keepTensorMemoryInTheHeap() {
#ifdef __GLIBC__
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

bool Trainer::run(TrainerResult &result, std::string &error) {
  if (config.threads > 0)
    torch::set_num_threads(config.threads);
  keepTensorMemoryInTheHeap();
  if (!setUp(error))
    return false;
  if (!config.optimizerState.empty() &&
      !loadOptimizer(config.optimizerState, error))
    return false;
  studentNet.clampRanges();
  result.endStep = config.startStep;
  for (int64_t s = config.startStep; s < config.steps; ++s) {
    auto start = std::chrono::steady_clock::now();
    StepReport report;
    report.step = s + 1;
    report.steps = config.steps;
    if (!step(s, report, error))
      return false;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (!afterStep(s, report, error))
      return false;
    result.endStep = s + 1;
    result.history.push_back(report);
    if (hooks.report)
      hooks.report(report);
    if (hooks.stop && hooks.stop() && s + 1 < config.steps) {
      result.stopped = true;
      break;
    }
  }
  studentNet.exportTo(studentSpec);
  result.optimizerState = saveOptimizer();
  return true;
}

} // namespace

bool qsim::train::runTrainer(NetSpec &student, const NetSpec &teacher,
                             DataLoader &data, const TrainerConfig &config,
                             const TrainerHooks &hooks, TrainerResult &result,
                             std::string &error) {
  try {
    Trainer trainer(student, teacher, data, config, hooks);
    return trainer.run(result, error);
  } catch (const c10::Error &e) {
    error = std::string("libtorch: ") + e.what_without_backtrace();
  } catch (const std::exception &e) {
    error = e.what();
  }
  return false;
}
