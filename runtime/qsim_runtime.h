/*===- qsim_runtime.h - run a qsim-compiled model on the device -*- C -*-===*
 *
 * The whole device-side runtime of a model compiled by qsim-compile: plain
 * C99, no allocation, no MLIR. The generated object (model.o) provides one
 * function, <prefix>_step(arena, scratch, layer); the generated header
 * (model.h) describes the layers and the memory they need. This runtime
 * holds the position in the run, converts the input image to the model's
 * layout, and gives access to every layer's output, so that an application
 * can run the whole model or step through it layer by layer.
 *
 *   static unsigned char memory[MODEL_MEMORY_BYTES];
 *   qsim_context ctx;
 *   qsim_init(&ctx, &model_desc, memory, sizeof memory);
 *   qsim_set_input_chw(&ctx, image);     // 3 x H x W floats in [0, 1]
 *   while (qsim_step(&ctx) >= 0) { ... qsim_layer_output(&ctx, i) ... }
 *
 * Threads: a model compiled with `qsim-compile --threads N` runs each
 * layer's work on N threads from qsim_init (MODEL_MEMORY_BYTES counts a
 * scratch buffer per thread); qsim_init_threads chooses the count at run
 * time. The workers wait on a condition variable between layers (no
 * spinning), qsim_step still runs one whole layer, and the result is
 * bit-exact to one thread. qsim_release stops the workers. Built with
 * -DQSIM_RUNTIME_NO_THREADS (bare-metal, no pthreads), every count runs on
 * the calling thread.
 *
 * docs/deploy.md describes the whole flow.
 *===----------------------------------------------------------------------===*/

#ifndef QSIM_RUNTIME_H
#define QSIM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QSIM_F32 = 0, QSIM_F16 = 1, QSIM_I8 = 2 } qsim_dtype;

/* Memory beyond arena + scratch: aligning both to 64 bytes. */
#define QSIM_MEMORY_SLACK 128
/* Per thread, beyond its scratch buffer: the workers' shared state. */
#define QSIM_THREAD_BYTES 256
/* Memory for a model of these arena and scratch sizes on n threads. */
#define QSIM_MEMORY_BYTES_FOR(arena, scratch, n)                               \
  ((size_t)(arena) + (size_t)(n) * (size_t)(scratch) + QSIM_MEMORY_SLACK +     \
   (size_t)(n)*QSIM_THREAD_BYTES)

/* One Darknet layer of the compiled model. Shapes are NHWC (the layout the
 * generated code computes in); `offset` is the output's place in the arena. */
typedef struct {
  int32_t index;
  const char *kind; /* Darknet section name: "convolutional", "yolo", ... */
  qsim_dtype dtype;
  int32_t shape[4]; /* N, H, W, C */
  float scale;      /* int8: real = scale * (q - zero_point) */
  int32_t zero_point;
  size_t offset, bytes;
  int32_t num_inputs;
  const int32_t *inputs; /* producing layers; -1 = the network input */
  /* -1; or, in a run-only build (qsim-compile --reuse-buffers), the layer
   * whose output overwrites this one: once it has run, this output is gone
   * (qsim_layer_output gives data == NULL). */
  int32_t overwritten_by;
  /* 1: the layer's work is split between the threads; 0: it runs on the
   * calling thread alone. */
  int32_t parallel;
} qsim_layer_info;

/* A [yolo] detection head: what box decoding needs (as Darknet's cfg). */
typedef struct {
  int32_t layer;        /* index into the model's layers */
  int32_t classes, num; /* num: total anchors of the cfg */
  int32_t num_mask;
  const int32_t *mask;  /* the anchors this head uses */
  const float *anchors; /* 2 * num values, network-input pixels */
  int32_t new_coords;
  int32_t nms_kind; /* 0 default, 1 greedy, 2 diou, 3 corners */
  float beta_nms;
} qsim_yolo_head;

/* Runs part `part` of `parts` of a layer, with that part's own scratch. */
typedef void (*qsim_step_fn)(uint8_t *arena, uint8_t *scratch, int32_t layer,
                             int32_t part, int32_t parts);

/* A compiled model (defined in its generated header). */
typedef struct {
  const char *name;
  int32_t num_layers;
  const qsim_layer_info *layers;
  size_t arena_bytes, scratch_bytes;
  int32_t input_shape[4]; /* N, H, W, C of the network input (f32) */
  qsim_step_fn step;
  int32_t num_heads;
  const qsim_yolo_head *heads;
  int32_t flavor;    /* 0 AlexeyAB, 1 pjreddie (Darknet's conventions) */
  int32_t letterbox; /* the cfg's letter_box (AlexeyAB) */
  int32_t threads;   /* qsim_init's thread count (qsim-compile --threads) */
} qsim_model;

struct qsim_pool;

typedef struct {
  const qsim_model *model;
  uint8_t *arena, *scratch; /* scratch: one buffer per thread */
  int32_t next;             /* the next layer to run */
  int32_t threads;
  struct qsim_pool *pool; /* the workers (in the caller's memory), or NULL */
} qsim_context;

/* A layer's output as stored (no copy). */
typedef struct {
  const void *data;
  qsim_dtype dtype;
  int32_t n, h, w, c;
  float scale;
  int32_t zero_point;
  int32_t layer;
  const char *kind;
} qsim_tensor;

/* Memory one context needs (arena + scratch + alignment slack) with the
 * model's default thread count, or with `threads`. */
size_t qsim_memory_bytes(const qsim_model *model);
size_t qsim_memory_bytes_threads(const qsim_model *model, int threads);
/* Binds a context to caller-provided memory, with the model's default
 * thread count; 0 on success, -1 if too small. */
int qsim_init(qsim_context *ctx, const qsim_model *model, void *memory,
              size_t bytes);
/* The same with `threads` threads (>= 1; fewer if the system cannot start
 * them, see qsim_threads); -1 if the memory is too small for them. */
int qsim_init_threads(qsim_context *ctx, const qsim_model *model, int threads,
                      void *memory, size_t bytes);
/* The threads a context runs on (the caller's included). */
int qsim_threads(const qsim_context *ctx);
/* Stops and joins the context's worker threads (the memory can then be
 * reused, or the context initialised again); a no-op with one thread. A
 * context with workers must be released before it is initialised again. */
void qsim_release(qsim_context *ctx);
/* The network input from a 3 x H x W (Darknet) float image; or NHWC. Both
 * restart the run at layer 0. */
void qsim_set_input_chw(qsim_context *ctx, const float *chw);
void qsim_set_input_nhwc(qsim_context *ctx, const float *nhwc);
/* A quantized 3 x H x W input (real = scale * (q - zero_point)), e.g. from
 * a camera pipeline that already produces int8. */
void qsim_set_input_int8_chw(qsim_context *ctx, const int8_t *chw, float scale,
                             int32_t zero_point);
/* Runs the next layer and returns its index, or -1 when all have run. */
int qsim_step(qsim_context *ctx);
/* Runs every remaining layer. */
void qsim_run(qsim_context *ctx);
/* Back to layer 0 (same input). */
void qsim_restart(qsim_context *ctx);
int qsim_num_layers(const qsim_context *ctx);
int qsim_next_layer(const qsim_context *ctx);
/* The output of layer `layer` (valid once it has run); data is NULL for a
 * layer out of range or overwritten (run-only builds, see overwritten_by). */
qsim_tensor qsim_layer_output(const qsim_context *ctx, int layer);
/* Writes "layer 12 (convolutional)" into buf. */
const char *qsim_layer_name(const qsim_context *ctx, int layer, char *buf,
                            size_t size);
/* A tensor as real values in Darknet's C x H x W order (n = 1). */
void qsim_tensor_to_chw(const qsim_tensor *t, float *chw);
/* IEEE binary16 to float. */
float qsim_half_to_float(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif
