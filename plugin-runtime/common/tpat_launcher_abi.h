/*
 * TPAT launcher C ABI.
 *
 * Every generated plugin P ships a launcher (P/P_launcher.cu, compiled into libtpat_kernels.so)
 * that exports the functions below with C linkage, prefixed tpat_<P>_. The launcher has no
 * TensorRT dependency: the TensorRT plugin (libtpat_plugins.so, common/tpat_plugin.cpp), the
 * Python plugin (python/tpat_trt_plugin.py, through ctypes) and the standalone checker all call it
 * the same way.
 *
 *   int  tpat_P_output_dims(const tpat_dims* inputs, tpat_dims* outputs);
 *        Concrete output shapes for concrete input shapes. TPAT_BAD_DIMS when the inputs are
 *        not acceptable (wrong rank, mismatched dims, a dim the kernels were not built for).
 *   int  tpat_P_workspace_size(const tpat_dims* inputs, size_t* bytes);
 *        Scratch bytes enqueue needs for these input shapes (it must be monotone: the size for
 *        the largest shapes covers every smaller problem).
 *   int  tpat_P_initialize(void);
 *        Uploads constant tensors once. Idempotent and thread-safe; may allocate and synchronize.
 *   int  tpat_P_enqueue(const tpat_dims* inputs, const void* const* in_ptrs, void* const* out_ptrs,
 *                       void* workspace, int32_t tactic, cudaStream_t stream);
 *        Launches the kernels on `stream`. No allocation, no synchronization (CUDA-graph safe).
 *        `tactic` is 0-based, in [0, tpat_P_num_tactics()).
 *   void tpat_P_terminate(void);
 *        Frees what initialize allocated. Idempotent.
 *   int  tpat_P_num_tactics(void);
 *        Number of kernel variants (>= 1).
 *   int  tpat_P_output_kind(int32_t output, int32_t* size_output, int32_t* dim);
 *        TPAT_OUTPUT_FIXED, TPAT_OUTPUT_DATA_DEPENDENT (dim *dim is the value of output
 *        *size_output; output_dims gives the upper bound) or TPAT_OUTPUT_SIZE (a 0-D int64 size
 *        tensor, *size_output = output); -1 past the last output. Either pointer may be null.
 *        Size tensors follow the node's own outputs; enqueue writes them on the device, no sync.
 *
 * The other int-returning functions return TPAT_OK (0) or one of the TPAT_* error codes.
 * Tensors are dense, row-major (TensorRT kLINEAR), with the element types the plugin declares.
 */
#ifndef TPAT_LAUNCHER_ABI_H
#define TPAT_LAUNCHER_ABI_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#define TPAT_MAX_DIMS 8

typedef struct
{
    int32_t nb_dims;
    int64_t d[TPAT_MAX_DIMS];
} tpat_dims;

enum
{
    TPAT_OK = 0,
    TPAT_BAD_DIMS = 1,
    TPAT_CUDA_ERROR = 2,
    TPAT_BAD_TACTIC = 3
};

/* What tpat_<P>_output_kind says of an output (IPluginV3 size tensors, docs/plugin-runtime.md):
   FIXED: its shape is what output_dims gives; DATA_DEPENDENT: dim `dim` holds the value of output
   `size_output` at run time, output_dims gives its upper bound (the buffer's size) and the data is
   row-major for the actual shape; SIZE: a 0-D int64 size tensor, written on the device by enqueue. */
enum
{
    TPAT_OUTPUT_FIXED = 0,
    TPAT_OUTPUT_DATA_DEPENDENT = 1,
    TPAT_OUTPUT_SIZE = 2
};

#if defined(_WIN32)
#define TPAT_LAUNCHER_API __declspec(dllexport)
#else
#define TPAT_LAUNCHER_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define TPAT_EXTERN_C extern "C"
#else
#define TPAT_EXTERN_C extern
#endif

/* Declares the seven launcher functions of plugin P (use in the launcher itself, with
   TPAT_LAUNCHER_API on the definitions, and in the code that calls it). */
#define TPAT_DECLARE_LAUNCHER(P)                                                                                       \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_output_dims(const tpat_dims* inputs, tpat_dims* outputs);           \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_workspace_size(const tpat_dims* inputs, size_t* bytes);             \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_initialize(void);                                                   \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_enqueue(const tpat_dims* inputs, const void* const* in_ptrs,        \
        void* const* out_ptrs, void* workspace, int32_t tactic, cudaStream_t stream);                                  \
    TPAT_EXTERN_C TPAT_LAUNCHER_API void tpat_##P##_terminate(void);                                                   \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_num_tactics(void);                                                  \
    TPAT_EXTERN_C TPAT_LAUNCHER_API int tpat_##P##_output_kind(int32_t output, int32_t* size_output, int32_t* dim)

/* Number of elements of a shape (1 for rank 0). */
static inline int64_t tpat_volume(const tpat_dims* s)
{
    int64_t v = 1;
    for (int32_t i = 0; i < s->nb_dims; ++i)
    {
        v *= s->d[i];
    }
    return v;
}

#endif /* TPAT_LAUNCHER_ABI_H */
