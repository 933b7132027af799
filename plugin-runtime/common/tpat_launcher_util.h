// Helpers of TPAT's generated launchers: the integer semantics of kernel-plan expressions
// (schemas/kernel-plan.schema.json) and argument passing to TVM's kernels.
#pragma once
#include "tpat_launcher_abi.h"

#include <cuda_runtime.h>
#include <stdint.h>

// Floor division and modulo (round toward -infinity), as TVM's floordiv/floormod.
static inline int64_t tpat_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t tpat_floormod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t tpat_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t tpat_max(int64_t a, int64_t b) { return a > b ? a : b; }

// A launch dimension that evaluates to <= 0 is launched as 1 (TVM runtime behaviour).
static inline dim3 tpat_dim3(int64_t x, int64_t y, int64_t z)
{
    return dim3(x > 0 ? static_cast<unsigned>(x) : 1u, y > 0 ? static_cast<unsigned>(y) : 1u,
        z > 0 ? static_cast<unsigned>(z) : 1u);
}

static inline char* tpat_align(char* p, uintptr_t alignment)
{
    uintptr_t v = reinterpret_cast<uintptr_t>(p);
    return reinterpret_cast<char*>((v + alignment - 1) / alignment * alignment);
}

// A device pointer that converts to whatever element pointer type the TVM kernel declares.
struct tpat_ptr
{
    void* p;
    template <class T>
    operator T*() const
    {
        return static_cast<T*>(p);
    }
};

// One tactic of a plugin: a complete kernel plan in its own translation unit, called by the
// plugin's launcher (<P>_launcher.cu) and hidden from the library's exports.
#define TPAT_TACTIC_API __attribute__((visibility("hidden")))
#define TPAT_DECLARE_TACTIC(T)                                                                            \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_output_dims(tpat_dims const* inputs, tpat_dims* outputs);        \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_workspace_size(tpat_dims const* inputs, size_t* bytes);          \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_initialize(void);                                               \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_enqueue(tpat_dims const* inputs, void const* const* in_ptrs,    \
        void* const* out_ptrs, void* workspace, cudaStream_t stream);                                     \
    TPAT_EXTERN_C TPAT_TACTIC_API void T##_terminate(void)
