/*===- qsim_runtime.c - run a qsim-compiled model on the device ---------===*/

#include "qsim_runtime.h"

#include <stdio.h>
#include <string.h>

static uint8_t *align64(uint8_t *p) {
  return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

size_t qsim_memory_bytes(const qsim_model *m) {
  return m->arena_bytes + m->scratch_bytes + QSIM_MEMORY_SLACK;
}

int qsim_init(qsim_context *ctx, const qsim_model *m, void *memory,
              size_t bytes) {
  if (!ctx || !m || !memory || bytes < qsim_memory_bytes(m))
    return -1;
  ctx->model = m;
  ctx->arena = align64((uint8_t *)memory);
  ctx->scratch = align64(ctx->arena + m->arena_bytes);
  ctx->next = 0;
  memset(ctx->arena, 0, m->arena_bytes);
  return 0;
}

void qsim_set_input_nhwc(qsim_context *ctx, const float *nhwc) {
  const int32_t *s = ctx->model->input_shape;
  memcpy(ctx->arena, nhwc, (size_t)s[1] * s[2] * s[3] * sizeof(float));
  ctx->next = 0;
}

void qsim_set_input_chw(qsim_context *ctx, const float *chw) {
  /* The one layout change of the run: Darknet's CHW to NHWC. */
  const int32_t *s = ctx->model->input_shape;
  int32_t h = s[1], w = s[2], c = s[3];
  float *dst = (float *)ctx->arena;
  for (int32_t y = 0; y < h; ++y)
    for (int32_t x = 0; x < w; ++x)
      for (int32_t k = 0; k < c; ++k)
        dst[((size_t)y * w + x) * c + k] = chw[((size_t)k * h + y) * w + x];
  ctx->next = 0;
}

void qsim_set_input_int8_chw(qsim_context *ctx, const int8_t *chw, float scale,
                             int32_t zero_point) {
  const int32_t *s = ctx->model->input_shape;
  int32_t h = s[1], w = s[2], c = s[3];
  float *dst = (float *)ctx->arena;
  for (int32_t y = 0; y < h; ++y)
    for (int32_t x = 0; x < w; ++x)
      for (int32_t k = 0; k < c; ++k)
        dst[((size_t)y * w + x) * c + k] =
            scale *
            (float)((int32_t)chw[((size_t)k * h + y) * w + x] - zero_point);
  ctx->next = 0;
}

int qsim_step(qsim_context *ctx) {
  if (ctx->next >= ctx->model->num_layers)
    return -1;
  int32_t layer = ctx->next++;
  ctx->model->step(ctx->arena, ctx->scratch, layer);
  return layer;
}

void qsim_run(qsim_context *ctx) {
  while (qsim_step(ctx) >= 0) {
  }
}

void qsim_restart(qsim_context *ctx) { ctx->next = 0; }
int qsim_num_layers(const qsim_context *ctx) { return ctx->model->num_layers; }
int qsim_next_layer(const qsim_context *ctx) { return ctx->next; }

qsim_tensor qsim_layer_output(const qsim_context *ctx, int layer) {
  qsim_tensor t;
  memset(&t, 0, sizeof t);
  if (layer < 0 || layer >= ctx->model->num_layers)
    return t;
  const qsim_layer_info *l = &ctx->model->layers[layer];
  if (l->overwritten_by >= 0 && ctx->next > l->overwritten_by)
    t.data = NULL;
  else
    t.data = ctx->arena + l->offset;
  t.dtype = l->dtype;
  t.n = l->shape[0];
  t.h = l->shape[1];
  t.w = l->shape[2];
  t.c = l->shape[3];
  t.scale = l->scale;
  t.zero_point = l->zero_point;
  t.layer = l->index;
  t.kind = l->kind;
  return t;
}

const char *qsim_layer_name(const qsim_context *ctx, int layer, char *buf,
                            size_t size) {
  if (layer < 0 || layer >= ctx->model->num_layers)
    snprintf(buf, size, "no layer %d", layer);
  else
    snprintf(buf, size, "layer %d (%s)", (int)ctx->model->layers[layer].index,
             ctx->model->layers[layer].kind);
  return buf;
}

float qsim_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13); /* inf, nan */
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { /* subnormal: normalize */
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while (!(mant & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

void qsim_tensor_to_chw(const qsim_tensor *t, float *chw) {
  for (int32_t y = 0; y < t->h; ++y)
    for (int32_t x = 0; x < t->w; ++x)
      for (int32_t k = 0; k < t->c; ++k) {
        size_t src = ((size_t)y * t->w + x) * t->c + k;
        float v;
        if (t->dtype == QSIM_I8)
          v = t->scale *
              (float)((int32_t)((const int8_t *)t->data)[src] - t->zero_point);
        else if (t->dtype == QSIM_F16)
          v = qsim_half_to_float(((const uint16_t *)t->data)[src]);
        else
          v = ((const float *)t->data)[src];
        chw[((size_t)k * t->h + y) * t->w + x] = v;
      }
}
