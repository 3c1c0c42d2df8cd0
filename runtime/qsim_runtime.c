/*===- qsim_runtime.c - run a qsim-compiled model on the device ---------===*/

#include "qsim_runtime.h"

#include <stdio.h>
#include <string.h>

#ifndef QSIM_RUNTIME_NO_THREADS
#include <pthread.h>
#endif

static uint8_t *align64(uint8_t *p) {
  return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

static int default_threads(const qsim_model *m) {
  return m->threads > 0 ? m->threads : 1;
}

size_t qsim_memory_bytes_threads(const qsim_model *m, int threads) {
  return QSIM_MEMORY_BYTES_FOR(m->arena_bytes, m->scratch_bytes,
                               threads > 0 ? threads : 1);
}

size_t qsim_memory_bytes(const qsim_model *m) {
  return qsim_memory_bytes_threads(m, default_threads(m));
}

#ifndef QSIM_RUNTIME_NO_THREADS
/* The workers: part 1.. of every parallel layer, each with its own scratch
 * buffer. They sleep on `start` between layers (passive waiting: a shared
 * machine or a second model must not lose a core to spinning), and the
 * caller, having run part 0, sleeps on `done` until all have finished. */
struct qsim_worker {
  struct qsim_pool *pool;
  int32_t part;
  pthread_t thread;
};

struct qsim_pool {
  pthread_mutex_t mutex;
  pthread_cond_t start, done;
  unsigned generation; /* bumped for each layer handed out */
  int32_t pending;     /* workers still running it */
  int32_t stop;
  int32_t layer, parts, workers;
  qsim_step_fn step;
  uint8_t *arena, *scratch;
  size_t scratch_stride;
  struct qsim_worker worker[]; /* workers of them */
};

/* The pool and its workers fit in QSIM_THREAD_BYTES per thread. */
typedef char
    qsim_pool_fits[sizeof(struct qsim_pool) <= QSIM_THREAD_BYTES &&
                           sizeof(struct qsim_worker) <= QSIM_THREAD_BYTES
                       ? 1
                       : -1];

static void *worker_main(void *arg) {
  struct qsim_worker *w = (struct qsim_worker *)arg;
  struct qsim_pool *p = w->pool;
  unsigned seen = 0;
  pthread_mutex_lock(&p->mutex);
  for (;;) {
    while (!p->stop && p->generation == seen)
      pthread_cond_wait(&p->start, &p->mutex);
    if (p->stop)
      break;
    seen = p->generation;
    int32_t layer = p->layer, parts = p->parts;
    pthread_mutex_unlock(&p->mutex);
    p->step(p->arena, p->scratch + (size_t)w->part * p->scratch_stride, layer,
            w->part, parts);
    pthread_mutex_lock(&p->mutex);
    if (--p->pending == 0)
      pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mutex);
  return NULL;
}

/* Starts up to threads - 1 workers in `memory`; returns the pool (NULL if
 * none could be started). */
static struct qsim_pool *start_pool(qsim_context *ctx, int threads,
                                    uint8_t *memory) {
  struct qsim_pool *p = (struct qsim_pool *)memory;
  memset(p, 0, sizeof *p);
  if (pthread_mutex_init(&p->mutex, NULL) != 0)
    return NULL;
  if (pthread_cond_init(&p->start, NULL) != 0) {
    pthread_mutex_destroy(&p->mutex);
    return NULL;
  }
  if (pthread_cond_init(&p->done, NULL) != 0) {
    pthread_cond_destroy(&p->start);
    pthread_mutex_destroy(&p->mutex);
    return NULL;
  }
  p->step = ctx->model->step;
  p->arena = ctx->arena;
  p->scratch = ctx->scratch;
  p->scratch_stride = ctx->model->scratch_bytes;
  for (int i = 1; i < threads; ++i) {
    struct qsim_worker *w = &p->worker[p->workers];
    w->pool = p;
    w->part = i;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
      break; /* fewer threads: still correct */
    ++p->workers;
  }
  if (p->workers == 0) {
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->start);
    pthread_mutex_destroy(&p->mutex);
    return NULL;
  }
  return p;
}

static void run_parallel(qsim_context *ctx, int32_t layer) {
  struct qsim_pool *p = ctx->pool;
  int32_t parts = p->workers + 1;
  pthread_mutex_lock(&p->mutex);
  p->layer = layer;
  p->parts = parts;
  p->pending = p->workers;
  ++p->generation;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mutex);
  p->step(ctx->arena, ctx->scratch, layer, 0, parts);
  pthread_mutex_lock(&p->mutex);
  while (p->pending > 0)
    pthread_cond_wait(&p->done, &p->mutex);
  pthread_mutex_unlock(&p->mutex);
}
#endif

int qsim_init_threads(qsim_context *ctx, const qsim_model *m, int threads,
                      void *memory, size_t bytes) {
  if (threads < 1)
    threads = 1;
  if (!ctx || !m || !memory || bytes < qsim_memory_bytes_threads(m, threads))
    return -1;
  ctx->model = m;
  ctx->arena = align64((uint8_t *)memory);
  ctx->scratch = align64(ctx->arena + m->arena_bytes);
  ctx->next = 0;
  ctx->threads = 1;
  ctx->pool = NULL;
  memset(ctx->arena, 0, m->arena_bytes);
#ifndef QSIM_RUNTIME_NO_THREADS
  if (threads > 1) {
    uint8_t *pool = align64(ctx->scratch + (size_t)threads * m->scratch_bytes);
    ctx->pool = start_pool(ctx, threads, pool);
    if (ctx->pool)
      ctx->threads = ctx->pool->workers + 1;
  }
#endif
  return 0;
}

int qsim_init(qsim_context *ctx, const qsim_model *m, void *memory,
              size_t bytes) {
  return qsim_init_threads(ctx, m, m ? default_threads(m) : 1, memory, bytes);
}

int qsim_threads(const qsim_context *ctx) { return ctx->threads; }

void qsim_release(qsim_context *ctx) {
#ifndef QSIM_RUNTIME_NO_THREADS
  struct qsim_pool *p = ctx->pool;
  if (!p)
    return;
  pthread_mutex_lock(&p->mutex);
  p->stop = 1;
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mutex);
  for (int32_t i = 0; i < p->workers; ++i)
    pthread_join(p->worker[i].thread, NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->start);
  pthread_mutex_destroy(&p->mutex);
  ctx->pool = NULL;
#endif
  ctx->threads = 1;
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
#ifndef QSIM_RUNTIME_NO_THREADS
  if (ctx->pool && ctx->model->layers[layer].parallel) {
    run_parallel(ctx, layer);
    return layer;
  }
#endif
  ctx->model->step(ctx->arena, ctx->scratch, layer, 0, 1);
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
