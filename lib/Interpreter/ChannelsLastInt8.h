//===- ChannelsLastInt8.h - fast int8 kernels, channels last ----*- C++ -*-===//
//
// The fast kernels of the int8 layers other than convolutions: max pooling,
// route (concatenation, group slices, requantization), shortcut (rescale +
// add + activation) and nearest upsampling over H x W x C tensors, the layout
// the int8 convolutions read and write, so an int8 network runs without
// layout conversions between its layers. Each computes exactly what its
// reference kernel in QuantKernels.h computes (the per-value arithmetic is
// tabulated from the same functions), so results are bit-identical.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_LIB_INTERPRETER_CHANNELSLASTINT8_H
#define QSIM_LIB_INTERPRETER_CHANNELSLASTINT8_H

#include "QuantKernels.h"

#include <array>

namespace qsim::interp::cl {

using shapes::CHW;

/// Max pooling as a row pass then a column pass (max is separable; taps
/// outside the input are skipped, an empty window gives -128 as in
/// ref::maxPoolInt8). `rows` holds inShape.h x outShape.w x C bytes.
void maxPoolInt8(const int8_t *in, const CHW &inShape, int64_t size, int64_t sy,
                 int64_t sx, int64_t padding, int8_t *rows, int8_t *out,
                 const CHW &outShape);

/// A value map int8 -> int8 (a route input's requantization).
using Int8Table = std::array<int8_t, 256>;
/// The requantization ref::routeSliceInt8 applies, as a table.
Int8Table routeTable(int32_t zpIn, int32_t zpOut, rt::FixedPoint m,
                     rt::Rounding rounding);

/// One input of a route: channels [first, first + count) of a tensor with
/// `channels` channels, copied (table empty) or mapped through `table`.
struct RoutePart {
  const int8_t *data = nullptr;
  int64_t channels = 0, first = 0, count = 0;
  const Int8Table *table = nullptr;
};
void routeInt8(const std::vector<RoutePart> &parts, int64_t pixels,
               int64_t outChannels, int8_t *out);

/// The shortcut of ref::shortcutInt8 over inputs of one shape: each input's
/// rescaled term is tabulated (256 values per input); with two inputs the
/// whole function is a 256 x 256 table.
class ShortcutInt8 {
public:
  ShortcutInt8(const ref::ShortcutInt8Params &p, size_t inputs);
  void run(const std::vector<const int8_t *> &ins, int64_t n,
           int8_t *out) const;

private:
  ref::ShortcutInt8Params params;
  std::vector<std::array<int32_t, 256>> terms;
  std::vector<int8_t> pairTable; // [a + 128][b + 128] when two inputs
};

/// ref::quantize with 16 values per instruction where the CPU has AVX-512.
void quantize(const float *in, int64_t n, float scale, int32_t zp, int8_t *out);

/// Nearest upsampling by `stride` (ref::upsampleInt8).
void upsampleInt8(const int8_t *in, const CHW &inShape, int64_t stride,
                  int8_t *out, const CHW &outShape);

} // namespace qsim::interp::cl

#endif
