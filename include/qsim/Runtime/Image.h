//===- Image.h - Darknet's image pipeline -----------------------*- C++ -*-===//
//
// Loading and resizing exactly as Darknet does (docs/darknet.md §R9): stb
// decode to RGB, value = u8 / 255, planar CHW;
// resize_image = two-pass bilinear with corner-aligned sampling; letterbox
// on a 0.5 canvas; AlexeyAB classifier crop (resize_min + centre crop).
//
//===----------------------------------------------------------------------===//

#ifndef QSIM_RUNTIME_IMAGE_H
#define QSIM_RUNTIME_IMAGE_H

#include "qsim/Runtime/Tensor.h"

#include <string>
#include <vector>

namespace qsim::rt {

/// A float image in Darknet's layout: data[c*h*w + y*w + x], values in [0,1].
struct Image {
  int w = 0, h = 0, c = 0;
  std::vector<float> data;
  float &at(int x, int y, int ch) {
    return data[(size_t)ch * h * w + (size_t)y * w + x];
  }
  float at(int x, int y, int ch) const {
    return data[(size_t)ch * h * w + (size_t)y * w + x];
  }
};

/// Darknet's load_image_color: any format stb reads (jpg, png, bmp, ...),
/// forced to 3 channels. Fails with a message for a missing or corrupt file
/// or an image larger than `maxPixels` (0 = no limit).
bool loadImage(const std::string &path, Image &out, std::string &error,
               int64_t maxPixels = 0);
/// The image files (jpg, jpeg, png, bmp, tga, gif, ppm, pgm) of a
/// directory, sorted, or `path` itself when it is a file; appended to `out`.
bool listImageFiles(const std::string &path, std::vector<std::string> &out,
                    std::string &error);

/// Darknet's resize_image (bit-exact).
Image resizeImage(const Image &im, int w, int h);
/// Darknet's letterbox_image: aspect-preserving resize pasted centred on a
/// w x h canvas of 0.5.
Image letterboxImage(const Image &im, int w, int h);
/// AlexeyAB's resize_min: shorter side to `min`, longer side = long*min/short.
Image resizeMin(const Image &im, int min);
/// Darknet's crop_image (pixels outside the source read as 0... as Darknet:
/// clamped to the border).
Image cropImage(const Image &im, int dx, int dy, int w, int h);
/// resizeImage(cropImage(image, dx, dy, cropW, cropH), w, h), bit for bit,
/// of the srcW x srcH x c image whose planes hold the bytes u8 (the value
/// u8 / 255, as loadImage), without building the float image or the crop:
/// the training loader's augmentation reads its cached bytes this way.
Image cropResizeBytes(const uint8_t *planes, int srcW, int srcH, int c, int dx,
                      int dy, int cropW, int cropH, int w, int h);

enum class Preprocess {
  Resize,     ///< resize_image to the net size (AlexeyAB detector test/map)
  Letterbox,  ///< letterbox_image (pjreddie detector, letter_box=1 cfgs)
  CenterCrop, ///< AlexeyAB classifier: resize_min(net_w), centre crop
};

/// What Darknet's detector does to an image: pjreddie always letterboxes,
/// AlexeyAB only when the cfg says letter_box=1.
Preprocess detectorPreprocess(bool pjreddie, bool letterBoxCfg);

/// The network input tensor (3 x netH x netW, f32) for `im`.
Tensor makeNetworkInput(const Image &im, int netW, int netH, Preprocess p);

/// Writes an 8-bit RGB PNG (values clamped to [0,1]); atomically.
bool writePng(const std::string &path, const Image &im, std::string &error);

/// Draws a rectangle outline of `thickness` pixels and a filled label bar
/// with `text` (built-in 5x7 font) in colour (r,g,b) in [0,1].
void drawBox(Image &im, int left, int top, int right, int bottom, int thickness,
             float r, float g, float b);
void drawLabel(Image &im, int left, int top, const std::string &text, float r,
               float g, float b);
/// Darknet's class colour for class `cls` of `classes` (get_color).
void classColor(int cls, int classes, float &r, float &g, float &b);

} // namespace qsim::rt

#endif
