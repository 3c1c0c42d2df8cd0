//===- BandedConvInt8.cpp - int8 convolution in bands of output rows -----===//
//
// oneDNN computes the int32 accumulators of an int8 convolution (s8 x s8 ->
// s32 with the input zero point); the requantization is qsim's fixed-point
// one (ref::Requant), which oneDNN cannot express, so the accumulators are
// written and read back. For a whole layer they are 4 bytes per output value
// (12.6M values per image on yolo-fastest-1.1-xl): memory traffic that made
// int8 slower than fp32. Here the convolution runs in bands of output rows
// whose accumulators fit in the core's L2 cache, each band requantized right
// after it is computed, one band per thread at a time (oneDNN runs each band
// on the thread that owns it). The arithmetic is unchanged (integer
// accumulation, the same requantization), so the result stays bit-exact to
// the reference kernel.
//
//===----------------------------------------------------------------------===//

#include "BandedConvInt8.h"
#include "FastRequant.h"
#include "Plan.h"
#include "QuantKernels.h"
#include "ReferenceKernels.h"
#include "qsim/Dialect/QSim/IR/Layers.h"

#include <map>
#include <omp.h>
#include <tuple>

using namespace mlir;
using namespace qsim;
using namespace qsim::interp;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

/// Accumulator bytes of one band: well inside a core's L2 (1 MB on the
/// AVX-512 machines measured, 256 KB-2 MB elsewhere) with room for its input
/// rows and weights.
constexpr int64_t kBandAccBytes = 128 << 10;
int64_t bandAccBytes = kBandAccBytes;

/// The geometry of an int8 convolution (paddings as oneDNN wants them).
struct ConvGeometry {
  CHW in, out;
  int64_t F, G, kh, kw, sy, sx, d, padTop, padLeft, padRight;
};

/// One convolution primitive for a band shape (first, middle, last band).
struct BandPrimitive {
  dnnl::convolution_forward prim;
  dnnl::memory::desc srcMd, accMd, scratchMd;
  dnnl::memory weights;
};

/// One band: output rows [outRow, outRow + rows) from input rows from
/// srcRow, with primitive `prim`.
struct Band {
  int prim;
  int64_t srcRow, outRow, rows;
};

/// Per thread: its stream, accumulator and scratchpad buffers and the
/// memory objects pointing into them (their handles are set per band).
struct ThreadState {
  dnnl::stream stream;
  std::vector<int32_t> acc;
  std::vector<char> scratch;
  std::vector<dnnl::memory> src, accMem, scratchMem;
};

class BandedConvInt8Kernel : public Kernel {
public:
  std::vector<BandPrimitive> prims;
  std::vector<Band> bands;
  std::vector<ThreadState> threads;
  dnnl::memory zeroPoint;
  std::shared_ptr<RequantTables> tables;
  int src = -1, dst = -1;
  int64_t srcRowBytes = 0, outW = 0, F = 0;

  void run(Plan &plan) override {
    auto *in = static_cast<int8_t *>(plan.ptr(src));
    auto *out = static_cast<int8_t *>(plan.ptr(dst));
    int64_t n = bands.size();
    int team = std::min<int64_t>(
        {(int64_t)omp_get_max_threads(), (int64_t)threads.size(), n});
    if (team <= 1) {
      for (const Band &band : bands)
        runBand(band, threads[0], in, out);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t b = 0; b < n; ++b)
      runBand(bands[b], threads[omp_get_thread_num()], in, out);
  }

private:
  void runBand(const Band &band, ThreadState &ts, int8_t *in, int8_t *out) {
    const BandPrimitive &bp = prims[band.prim];
    dnnl::memory &s = ts.src[band.prim];
    s.set_data_handle(in + band.srcRow * srcRowBytes);
    bp.prim.execute(ts.stream,
                    {{DNNL_ARG_SRC, s},
                     {DNNL_ARG_WEIGHTS, bp.weights},
                     {DNNL_ARG_DST, ts.accMem[band.prim]},
                     {DNNL_ARG_SCRATCHPAD, ts.scratchMem[band.prim]},
                     {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zeroPoint}});
    ts.stream.wait();
    requantizeChannelsLastSerial(ts.acc.data(), band.rows * outW, F, *tables,
                                 out + band.outRow * outW * F);
  }
};

/// Band heights: accumulators within kBandAccBytes, at least one band per
/// thread when the layer has the rows, and a multiple of the threads so the
/// static schedule is balanced.
int64_t bandRows(const CHW &out, int64_t F, int threads) {
  int64_t rowBytes = out.w * F * 4;
  int64_t rows = std::clamp<int64_t>(bandAccBytes / rowBytes, 1, out.h);
  int64_t n = (out.h + rows - 1) / rows;
  if (threads > 1 && out.h >= threads)
    n = std::min<int64_t>(out.h, (n + threads - 1) / threads * threads);
  return (out.h + n - 1) / n;
}

/// The primitive for output rows [y0, y0 + rows); its index in `k.prims`
/// (shared between bands of the same shape). Throws dnnl::error when oneDNN
/// has no implementation.
int bandPrimitive(BandedConvInt8Kernel &k, Plan &plan, const ConvGeometry &g,
                  const dnnl::memory &userW, int64_t y0, int64_t rows,
                  int64_t &srcRow,
                  std::map<std::tuple<int64_t, int64_t, int64_t>, int> &seen) {
  int64_t first = y0 * g.sy - g.padTop;
  int64_t last = (y0 + rows - 1) * g.sy + (g.kh - 1) * g.d - g.padTop;
  int64_t top = std::max<int64_t>(0, -first);
  int64_t bottom = std::max<int64_t>(0, last + 1 - g.in.h);
  srcRow = std::max<int64_t>(0, first);
  int64_t srcRows = std::min<int64_t>(g.in.h, last + 1) - srcRow;
  auto key = std::make_tuple(rows, top, bottom);
  if (auto it = seen.find(key); it != seen.end())
    return it->second;
  dnnl::memory::dims wDims =
      g.G == 1 ? dnnl::memory::dims{g.F, g.in.c, g.kh, g.kw}
               : dnnl::memory::dims{g.G, g.F / g.G, g.in.c / g.G, g.kh, g.kw};
  BandPrimitive bp;
  bp.srcMd =
      dnnl::memory::desc({1, g.in.c, srcRows, g.in.w}, dt::s8, tag::nhwc);
  bp.accMd = dnnl::memory::desc({1, g.F, rows, g.out.w}, dt::s32, tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto desc = dnnl::convolution_forward::desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      bp.srcMd, dnnl::memory::desc(wDims, dt::s8, tag::any), bp.accMd,
      {g.sy, g.sx}, {g.d - 1, g.d - 1}, {top, g.padLeft}, {bottom, g.padRight});
  dnnl::convolution_forward::primitive_desc pd(desc, attr, plan.engine);
  bp.prim = dnnl::convolution_forward(pd);
  bp.scratchMd = pd.scratchpad_desc();
  for (const BandPrimitive &other : k.prims)
    if (other.weights.get_desc() == pd.weights_desc())
      bp.weights = other.weights;
  if (!bp.weights) {
    bp.weights = dnnl::memory(pd.weights_desc(), plan.engine);
    dnnl::memory user = userW;
    dnnl::reorder(user, bp.weights).execute(plan.stream, user, bp.weights);
    plan.stream.wait();
  }
  k.prims.push_back(std::move(bp));
  return seen[key] = k.prims.size() - 1;
}

/// Per-thread streams and buffers sized for the largest band.
void allocateThreads(BandedConvInt8Kernel &k, Plan &plan, int threads) {
  size_t accBytes = 0, scratchBytes = 0;
  for (const BandPrimitive &bp : k.prims) {
    accBytes = std::max(accBytes, bp.accMd.get_size());
    scratchBytes = std::max(scratchBytes, bp.scratchMd.get_size());
  }
  k.threads.resize(threads);
  for (ThreadState &ts : k.threads) {
    ts.stream = dnnl::stream(plan.engine);
    ts.acc.resize((accBytes + 3) / 4);
    ts.scratch.resize(std::max<size_t>(scratchBytes, 1));
    for (const BandPrimitive &bp : k.prims) {
      ts.src.emplace_back(bp.srcMd, plan.engine, nullptr);
      ts.accMem.emplace_back(bp.accMd, plan.engine, ts.acc.data());
      ts.scratchMem.emplace_back(bp.scratchMd, plan.engine, ts.scratch.data());
    }
  }
}

/// The bands and their primitives; false when oneDNN cannot run one.
bool planBands(BandedConvInt8Kernel &k, Plan &plan, const ConvGeometry &g,
               const std::vector<int8_t> &weights, int threads) {
  dnnl::memory::dims wDims =
      g.G == 1 ? dnnl::memory::dims{g.F, g.in.c, g.kh, g.kw}
               : dnnl::memory::dims{g.G, g.F / g.G, g.in.c / g.G, g.kh, g.kw};
  std::vector<int8_t> w = weights;
  dnnl::memory userW(
      dnnl::memory::desc(wDims, dt::s8, g.G == 1 ? tag::oihw : tag::goihw),
      plan.engine, w.data());
  // Each band runs on one thread inside the kernel's parallel loop: its
  // primitive is created for one thread.
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  std::map<std::tuple<int64_t, int64_t, int64_t>, int> seen;
  int64_t rows = bandRows(g.out, g.F, threads);
  bool ok = true;
  try {
    for (int64_t y0 = 0; y0 < g.out.h; y0 += rows) {
      Band band;
      band.outRow = y0;
      band.rows = std::min(rows, g.out.h - y0);
      band.prim =
          bandPrimitive(k, plan, g, userW, y0, band.rows, band.srcRow, seen);
      k.bands.push_back(band);
    }
  } catch (const dnnl::error &) {
    ok = false;
  }
  omp_set_num_threads(saved);
  if (ok)
    allocateThreads(k, plan, threads);
  return ok;
}

} // namespace

void qsim::interp::setInt8ConvBandBytes(int64_t bytes) {
  bandAccBytes = bytes > 0 ? bytes : kBandAccBytes;
}

int qsim::interp::buildDnnlConvInt8(Plan &plan, int step, Conv2DOp conv,
                                    int inSlot, const void *params) {
  const auto &p = *static_cast<const ref::ConvInt8Params *>(params);
  ConvGeometry g;
  g.in = chwOf(conv.getInput());
  g.out = chwOf(conv.getResult());
  g.F = p.conv.filters;
  g.G = p.conv.groups;
  g.kh = p.conv.kh;
  g.kw = p.conv.kw;
  g.sy = p.conv.sy;
  g.sx = p.conv.sx;
  g.d = p.conv.dilation;
  g.padTop = p.conv.py * g.d;
  g.padLeft = p.conv.px * g.d;
  int64_t padBottom =
      (g.out.h - 1) * g.sy + (g.kh - 1) * g.d + 1 - g.in.h - g.padTop;
  g.padRight = (g.out.w - 1) * g.sx + (g.kw - 1) * g.d + 1 - g.in.w - g.padLeft;
  if (padBottom < 0 || g.padRight < 0)
    return -1;
  auto k = std::make_unique<BandedConvInt8Kernel>();
  if (!planBands(*k, plan, g, p.weight, plan.steps[step].threads))
    return -1;
  k->zeroPoint = dnnl::memory({{1}, dt::s32, tag::x}, plan.engine);
  *static_cast<int32_t *>(k->zeroPoint.get_data_handle()) = p.zpIn;
  k->tables = std::make_shared<RequantTables>(p.requant, g.F);
  // Each product is w * (x - zp): |w| <= 128, |x - zp| <= 255.
  k->tables->setAccumulatorBound((g.in.c / g.G) * g.kh * g.kw * 128 * 255);
  k->srcRowBytes = g.in.w * g.in.c;
  k->outW = g.out.w;
  k->F = g.F;

  auto srcMd =
      dnnl::memory::desc({1, g.in.c, g.in.h, g.in.w}, dt::s8, tag::nhwc);
  k->src = plan.dnnlOf(inSlot, srcMd, step);
  auto outMd =
      dnnl::memory::desc({1, g.F, g.out.h, g.out.w}, dt::s8, tag::nhwc);
  k->dst = plan.newDnnlSlot(g.out, outMd, step);
  auto q = cast<mlir::quant::UniformQuantizedType>(
      getElementTypeOrSelf(conv.getResult().getType()));
  plan.slots[k->dst].quant = {(float)q.getScale(), (int32_t)q.getZeroPoint()};
  k->inputs = {k->src};
  k->outputs = {k->dst};
  int dst = k->dst;
  plan.addKernel(step, std::move(k));
  return dst;
}
