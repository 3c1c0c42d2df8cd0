//===- Tensor.cpp - host tensors of the interpreter ----------------------===//

#include "qsim/Runtime/Tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

using namespace qsim::rt;

size_t qsim::rt::dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
    return 2;
  case DType::I8:
    return 1;
  }
  return 4;
}

const char *qsim::rt::dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::I8:
    return "i8";
  case DType::I16:
    return "i16";
  case DType::I32:
    return "i32";
  }
  return "?";
}

uint16_t qsim::rt::floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7FFFFFu;
  int32_t exp = (int32_t)((x >> 23) & 0xFF);
  if (exp == 0xFF) // inf / nan
    return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 0x1F)
    return (uint16_t)(sign | 0x7C00u); // overflow -> inf
  if (e <= 0) {
    if (e < -10)
      return (uint16_t)sign; // underflow -> signed zero
    // Subnormal: shift the mantissa (with the implicit 1) into place and
    // round to nearest even.
    mant |= 0x800000u;
    int shift = 14 - e;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      ++half;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
    ++half; // may carry into the exponent, which is correct
  return (uint16_t)half;
}

uint16_t qsim::rt::floatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep sign, make it quiet
    return (uint16_t)((bits >> 16) | 0x0040u);
  // Round to nearest even on the 16 dropped bits; a carry into the exponent
  // is correct (up to infinity for values past the largest bf16).
  uint32_t lsb = (bits >> 16) & 1u;
  return (uint16_t)((bits + 0x7fffu + lsb) >> 16);
}

float qsim::rt::bf16ToFloat(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

float qsim::rt::halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FFu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else { // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FFu;
      x = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    x = sign | 0x7F800000u | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

Tensor::Tensor(DType dtype, int64_t c, int64_t h, int64_t w)
    : dtype_(dtype), c_(c), h_(h), w_(w) {
  size_t n = std::max<size_t>(bytes(), 1);
  size_t rounded = (n + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, rounded);
  if (!p)
    throw std::bad_alloc();
  std::memset(p, 0, rounded);
  storage_ = std::shared_ptr<void>(p, std::free);
  data_ = p;
}

Tensor Tensor::view(DType dtype, int64_t c, int64_t h, int64_t w, void *data) {
  Tensor t;
  t.dtype_ = dtype;
  t.c_ = c;
  t.h_ = h;
  t.w_ = w;
  t.data_ = data;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, c_, h_, w_);
  if (data_)
    std::memcpy(t.data_, data_, bytes());
  t.quant = quant;
  return t;
}

float Tensor::valueAt(int64_t i) const {
  switch (dtype_) {
  case DType::F32:
    return f32()[i];
  case DType::F16:
    return halfToFloat(f16()[i]);
  case DType::BF16:
    return bf16ToFloat(f16()[i]);
  case DType::I8:
    return quant.scale * (float)((int32_t)i8()[i] - quant.zeroPoint);
  case DType::I16:
    return quant.scale * (float)((int32_t)i16()[i] - quant.zeroPoint);
  case DType::I32:
    return quant.scale * (float)((int64_t)i32()[i] - quant.zeroPoint);
  }
  return 0;
}

std::vector<float> Tensor::toFloat() const {
  std::vector<float> out(numel());
  if (dtype_ == DType::F32) {
    std::memcpy(out.data(), data_, bytes());
    return out;
  }
  for (int64_t i = 0; i < numel(); ++i)
    out[i] = valueAt(i);
  return out;
}
