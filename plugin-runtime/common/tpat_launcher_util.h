// Helpers of TPAT's generated launchers: the integer semantics of kernel-plan expressions
// (tpat::dimexpr, tpat_dimexpr.h) and argument passing to TVM's kernels.
#pragma once
#include "tpat_dimexpr.h"
#include "tpat_launcher_abi.h"

#include <cuda_runtime.h>
#include <stdint.h>

// A kernel argument of C type T: false when the int64 value does not fit (e.g. an int32 index
// parameter of a kernel TVM narrowed to 32-bit arithmetic, fed a tensor of 2^31 elements).
template <class T>
static inline bool tpat_fits(int64_t v)
{
    if (static_cast<T>(-1) > static_cast<T>(0))  // unsigned
        return v >= 0 && (sizeof(T) >= sizeof(int64_t) || v <= static_cast<int64_t>(static_cast<T>(-1)));
    return sizeof(T) >= sizeof(int64_t)
        || (v >= -(int64_t(1) << (8 * sizeof(T) - 1)) && v < (int64_t(1) << (8 * sizeof(T) - 1)));
}

// A launch CUDA accepts: grid.x < 2^31, grid.y/z <= 65535, a block of at most 1024 threads
// (z <= 64), dynamic shared memory within 227 KiB (sm_80..sm_90). Dims <= 0 launch as 1.
static inline bool tpat_launch_ok(int64_t gx, int64_t gy, int64_t gz, int64_t bx, int64_t by, int64_t bz, int64_t smem)
{
    auto one = [](int64_t v) { return v > 0 ? v : int64_t(1); };
    gx = one(gx), gy = one(gy), gz = one(gz), bx = one(bx), by = one(by), bz = one(bz);
    return gx <= INT64_C(2147483647) && gy <= 65535 && gz <= 65535 && bx <= 1024 && by <= 1024 && bz <= 64
        && bx * by * bz <= 1024 && smem >= 0 && smem <= 227 * 1024;
}

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
#define TPAT_DECLARE_TACTIC(T)                                                                                         \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_output_dims(tpat_dims const* inputs, tpat_dims* outputs);                    \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_workspace_size(tpat_dims const* inputs, size_t* bytes);                      \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_initialize(void);                                                            \
    TPAT_EXTERN_C TPAT_TACTIC_API int T##_enqueue(tpat_dims const* inputs, void const* const* in_ptrs,                 \
        void* const* out_ptrs, void* workspace, cudaStream_t stream);                                                  \
    TPAT_EXTERN_C TPAT_TACTIC_API void T##_terminate(void)
