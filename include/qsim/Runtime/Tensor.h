//===- Tensor.h - host tensors of the interpreter ---------------*- C++ -*-===//
//
// A dense C x H x W tensor (batch 1) in Darknet's layout (index =
// c*H*W + y*W + x), with f32, f16 (binary16 bits), bf16, i8 or i32 storage and,
// for quantized values, a per-tensor scale and zero point. No MLIR here: the
// runtime library is shared by qsim-run, the studio and the ARM example.
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_RUNTIME_TENSOR_H
#define QSIM_RUNTIME_TENSOR_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qsim::rt {

/// I16: int16 activations of W8A16 layers (symmetric, zero point 0).
/// BF16: bfloat16 bits (the high half of a binary32).
enum class DType : uint8_t { F32, F16, I8, I32, I16, BF16 };
size_t dtypeSize(DType t);
const char *dtypeName(DType t);

/// real = scale * (q - zeroPoint)
struct QuantParams {
  float scale = 1.0f;
  int32_t zeroPoint = 0;
};

/// IEEE binary16 conversions (round to nearest even).
uint16_t floatToHalf(float f);
float halfToFloat(uint16_t h);
/// bfloat16 conversions. floatToBF16 rounds to nearest, ties to even, as
/// oneDNN and Armv8.6 BFCVT do; infinities stay infinite, a NaN stays a
/// (quiet) NaN with its sign. Subnormals are rounded like any other value
/// (bf16 has binary32's exponent range), not flushed to zero: x86's
/// VCVTNEPS2BF16 flushes them, a difference below 1.2e-38
/// (docs/quantization.md, "bf16"). bf16ToFloat is exact.
uint16_t floatToBF16(float f);
float bf16ToFloat(uint16_t h);

class Tensor {
public:
  Tensor() = default;
  /// Allocates zero-initialised, 64-byte aligned storage.
  Tensor(DType dtype, int64_t c, int64_t h, int64_t w);
  /// A non-owning view of `data` (which must outlive the view).
  static Tensor view(DType dtype, int64_t c, int64_t h, int64_t w, void *data);

  DType dtype() const { return dtype_; }
  int64_t c() const { return c_; }
  int64_t h() const { return h_; }
  int64_t w() const { return w_; }
  int64_t numel() const { return c_ * h_ * w_; }
  size_t bytes() const { return numel() * dtypeSize(dtype_); }
  bool empty() const { return data_ == nullptr; }

  void *raw() { return data_; }
  const void *raw() const { return data_; }
  float *f32() { return static_cast<float *>(data_); }
  const float *f32() const { return static_cast<const float *>(data_); }
  uint16_t *f16() { return static_cast<uint16_t *>(data_); }
  const uint16_t *f16() const { return static_cast<const uint16_t *>(data_); }
  int8_t *i8() { return static_cast<int8_t *>(data_); }
  const int8_t *i8() const { return static_cast<const int8_t *>(data_); }
  int16_t *i16() { return static_cast<int16_t *>(data_); }
  const int16_t *i16() const { return static_cast<const int16_t *>(data_); }
  int32_t *i32() { return static_cast<int32_t *>(data_); }
  const int32_t *i32() const { return static_cast<const int32_t *>(data_); }

  /// Deep copy with its own storage.
  Tensor clone() const;
  /// Values as real numbers: f32 as is, f16 and bf16 widened, i8/i16/i32
  /// dequantized with `quant` (i32 with scale only).
  std::vector<float> toFloat() const;
  float valueAt(int64_t i) const;

  QuantParams quant;

private:
  DType dtype_ = DType::F32;
  int64_t c_ = 0, h_ = 0, w_ = 0;
  std::shared_ptr<void> storage_;
  void *data_ = nullptr;
};

/// Writes `t` as a NumPy .npy file, dtype <f4, shape (C, H, W), C order
/// (quantized and f16 tensors are written as their real values). The file
/// appears only when complete.
bool writeNpy(const std::string &path, const Tensor &t, std::string &error);
/// Writes a float32 .npy of any shape (C order), atomically.
bool writeNpyArray(const std::string &path, const std::vector<int64_t> &dims,
                   const float *data, std::string &error);
/// Reads a little-endian float32 .npy of 1 to 8 dimensions.
bool readNpyArray(const std::string &path, std::vector<int64_t> &dims,
                  std::vector<float> &data, std::string &error);
/// Reads a little-endian float32 .npy of 1 to 3 dimensions into a C x H x W
/// f32 tensor ((N,) -> N x 1 x 1, (H, W) -> 1 x H x W).
bool readNpy(const std::string &path, Tensor &out, std::string &error);

} // namespace qsim::rt

#endif
