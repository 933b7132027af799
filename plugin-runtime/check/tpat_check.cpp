/*
 * tpat_check: runs a TPAT plugin's launcher on its reference data and compares the results.
 *
 *   tpat_check LIB MANIFEST [--tactic N | --all-tactics] [--repeat N] [--prefix NAME] [--verbose]
 *
 *   LIB       libtpat_kernels.so (dlopen'ed; the launcher functions tpat_<P>_* are dlsym'ed)
 *   MANIFEST  manifest.txt written by the bridge's "reference" command (docs/reference-data.md)
 *   --tactic N      run tactic N only (default 0)
 *   --all-tactics   run every tactic in [0, num_tactics)
 *   --repeat N      enqueue N times per tactic before comparing (timed with CUDA events)
 *   --prefix NAME   launcher symbol prefix (default: the manifest's "prefix" line)
 *
 * Output: one line per case, tactic and output with max abs / max rel error and PASS/FAIL, then
 * exactly "N passed, M failed". Exit code 0 when everything passes, 1 on any mismatch (including
 * wrong output shapes or a launcher refusing a case), 2 on usage, I/O or CUDA errors.
 *
 * Comparison: |got - expected| <= atol + rtol * |expected| for floats (float16/bfloat16 converted
 * to float on the host), NaN matches NaN, infinities must match exactly; integers and bool are
 * compared bit-exactly. Outputs are filled with 0x7F bytes before every tactic, so an output the
 * kernels never write does not pass by accident. A data-dependent output (tpat_<P>_output_kind) is
 * allocated for its upper bound; its size tensor must hold the reference's dim, and the first
 * volume(reference) elements are compared.
 *
 * Needs only the CUDA runtime and libdl (no TensorRT).
 */
#include "tpat_check_common.h"
#include "tpat_launcher_abi.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace tpat_check;  // tpat_check_common.h: dtypes, manifest, comparison

[[noreturn]] void tpat_check::fatal(const char* fmt, ...)
{
    std::fprintf(stderr, "tpat_check: error: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    std::fflush(stdout);
    std::exit(kExitError);
}

namespace
{

// ---------------------------------------------------------------------------------------------
// launcher
// ---------------------------------------------------------------------------------------------

struct Launcher
{
    int (*outputDims)(const tpat_dims*, tpat_dims*) = nullptr;
    int (*workspaceSize)(const tpat_dims*, size_t*) = nullptr;
    int (*initialize)() = nullptr;
    int (*enqueue)(const tpat_dims*, const void* const*, void* const*, void*, int32_t, cudaStream_t) = nullptr;
    void (*terminate)() = nullptr;
    int (*numTactics)() = nullptr;
    int (*outputKind)(int32_t, int32_t*, int32_t*) = nullptr;  // optional (older launchers: all fixed)

    int kind(int32_t j, int32_t* sizeOutput, int32_t* dim) const
    {
        *sizeOutput = -1;
        *dim = -1;
        return outputKind != nullptr ? outputKind(j, sizeOutput, dim) : (j >= 0 ? TPAT_OUTPUT_FIXED : -1);
    }
};

void* sym(void* lib, const std::string& name)
{
    dlerror();
    void* p = dlsym(lib, name.c_str());
    const char* err = dlerror();
    if (err != nullptr || p == nullptr)
    {
        fatal("symbol %s not found: %s", name.c_str(), err ? err : "null");
    }
    return p;
}

Launcher loadLauncher(const std::string& libPath, const std::string& prefix)
{
    std::string path = libPath;
    if (path.find('/') == std::string::npos)
    {
        path = "./" + path;  // dlopen searches the library path for bare names
    }
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        fatal("dlopen %s: %s", libPath.c_str(), dlerror());
    }
    Launcher l;
    l.outputDims = reinterpret_cast<decltype(l.outputDims)>(sym(lib, prefix + "_output_dims"));
    l.workspaceSize = reinterpret_cast<decltype(l.workspaceSize)>(sym(lib, prefix + "_workspace_size"));
    l.initialize = reinterpret_cast<decltype(l.initialize)>(sym(lib, prefix + "_initialize"));
    l.enqueue = reinterpret_cast<decltype(l.enqueue)>(sym(lib, prefix + "_enqueue"));
    l.terminate = reinterpret_cast<decltype(l.terminate)>(sym(lib, prefix + "_terminate"));
    l.numTactics = reinterpret_cast<decltype(l.numTactics)>(sym(lib, prefix + "_num_tactics"));
    dlerror();
    l.outputKind = reinterpret_cast<decltype(l.outputKind)>(dlsym(lib, (prefix + "_output_kind").c_str()));
    return l;  // the library stays loaded until exit
}

const char* statusName(int rc)
{
    switch (rc)
    {
    case TPAT_OK: return "TPAT_OK";
    case TPAT_BAD_DIMS: return "TPAT_BAD_DIMS";
    case TPAT_CUDA_ERROR: return "TPAT_CUDA_ERROR";
    case TPAT_BAD_TACTIC: return "TPAT_BAD_TACTIC";
    default: return "unknown status";
    }
}

// A launcher reporting TPAT_CUDA_ERROR: find the CUDA error (the launcher may link its own CUDA
// runtime, so ask the context through a synchronization as well) and stop.
[[noreturn]] void launcherCudaError(const char* fn)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
    {
        e = cudaDeviceSynchronize();
    }
    fatal("%s returned TPAT_CUDA_ERROR (CUDA: %s)", fn,
        e == cudaSuccess ? "no error visible to the checker" : cudaGetErrorString(e));
}

struct DeviceBuffer
{
    void* ptr = nullptr;
    size_t bytes = 0;
    explicit DeviceBuffer(size_t n, const char* what)
        : bytes(n)
    {
        if (n > 0)
        {
            checkCuda(cudaMalloc(&ptr, n), what);
            if (reinterpret_cast<uintptr_t>(ptr) % 256 != 0)
            {
                fatal("%s: cudaMalloc returned a pointer not 256-byte aligned", what);
            }
        }
    }
    ~DeviceBuffer()
    {
        if (ptr != nullptr)
        {
            cudaFree(ptr);
        }
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

void usage()
{
    std::fprintf(stderr,
        "usage: tpat_check LIB MANIFEST [--tactic N | --all-tactics] [--repeat N] [--prefix NAME] [--verbose]\n"
        "  LIB       libtpat_kernels.so holding the plugin's launcher\n"
        "  MANIFEST  manifest.txt of the plugin's reference data\n");
    std::exit(kExitError);
}

bool parseInt(const char* s, long& out)
{
    char* end = nullptr;
    errno = 0;
    out = std::strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

// ---------------------------------------------------------------------------------------------
// steps: parse args, load the launcher, per case: shapes, data, run each tactic, compare
// ---------------------------------------------------------------------------------------------

struct Options
{
    std::string libPath;
    std::string manifestPath;
    std::string prefixOverride;
    long tactic = 0;
    bool allTactics = false;
    long repeat = 1;
    bool verbose = false;
};

Options parseArgs(int argc, char** argv)
{
    Options o;
    bool tacticGiven = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i)
    {
        const std::string a = argv[i];
        if (a == "--tactic" && i + 1 < argc)
        {
            if (!parseInt(argv[++i], o.tactic) || o.tactic < 0)
            {
                usage();
            }
            tacticGiven = true;
        }
        else if (a == "--all-tactics")
        {
            o.allTactics = true;
        }
        else if (a == "--repeat" && i + 1 < argc)
        {
            if (!parseInt(argv[++i], o.repeat) || o.repeat < 1)
            {
                usage();
            }
        }
        else if (a == "--prefix" && i + 1 < argc)
        {
            o.prefixOverride = argv[++i];
        }
        else if (a == "--verbose" || a == "-v")
        {
            o.verbose = true;
        }
        else if (a == "-h" || a == "--help" || (!a.empty() && a[0] == '-'))
        {
            usage();
        }
        else
        {
            positional.push_back(a);
        }
    }
    if (positional.size() != 2 || (o.allTactics && tacticGiven))
    {
        usage();
    }
    o.libPath = positional[0];
    o.manifestPath = positional[1];
    return o;
}

// The tactics to run: every one, or the one asked for (which must exist).
std::vector<int> chooseTactics(const Options& o, int nTactics)
{
    std::vector<int> tactics;
    if (o.allTactics)
    {
        for (int t = 0; t < nTactics; ++t)
        {
            tactics.push_back(t);
        }
        return tactics;
    }
    if (o.tactic >= nTactics)
    {
        fatal("--tactic %ld: the plugin has %d tactic(s)", o.tactic, nTactics);
    }
    tactics.push_back(static_cast<int>(o.tactic));
    return tactics;
}

// Everything the per-case steps share, and the running tally.
struct Run
{
    const Options& opts;
    const Launcher& L;
    std::vector<int> tactics;
    cudaStream_t stream = nullptr;
    cudaEvent_t evStart = nullptr;
    cudaEvent_t evStop = nullptr;
    int passed = 0;
    int failed = 0;
};

std::string outLabel(const Case& c, int t, size_t j)
{
    const Tensor& o = c.outputs[j];
    char head[64];
    std::snprintf(head, sizeof head, "case %d tactic %d out%zu ", c.index, t, j);
    return head + std::string(o.dtype->name) + " " + shapeString(o.dims.data(), static_cast<int>(o.dims.size()));
}

// Every output of every tactic of the case fails for the same reason.
void failCase(Run& run, const Case& c, const std::string& why)
{
    for (int t : run.tactics)
    {
        for (size_t j = 0; j < c.outputs.size(); ++j)
        {
            std::printf("%s: %s FAIL\n", outLabel(c, t, j).c_str(), why.c_str());
            ++run.failed;
        }
    }
}

void checkStatus(int rc, const char* fn)
{
    if (rc == TPAT_CUDA_ERROR)
    {
        launcherCudaError(fn);
    }
}

// Data-dependent outputs (tpat_launcher_abi.h): per output its size output and dim (-1: fixed),
// and the count of all outputs, the trailing size tensors included.
struct OutputKinds
{
    std::vector<int32_t> sizeOf;
    std::vector<int32_t> dynDim;
    size_t nAll = 0;
};

OutputKinds outputKinds(const Launcher& L, size_t nOut)
{
    OutputKinds k;
    k.sizeOf.assign(nOut, -1);
    k.dynDim.assign(nOut, -1);
    for (size_t j = 0; j < nOut; ++j)
    {
        if (L.kind(static_cast<int32_t>(j), &k.sizeOf[j], &k.dynDim[j]) != TPAT_OUTPUT_DATA_DEPENDENT)
        {
            k.sizeOf[j] = k.dynDim[j] = -1;
        }
    }
    k.nAll = nOut;
    for (int32_t so = 0, dd = 0;
        k.nAll < nOut + TPAT_MAX_DIMS && L.kind(static_cast<int32_t>(k.nAll), &so, &dd) == TPAT_OUTPUT_SIZE;)
    {
        ++k.nAll;
    }
    return k;
}

// Shapes step: the launcher's output dims must be the reference's (a data-dependent dim: at least
// the reference's, its upper bound); returns them and the workspace size, or false (the case
// failed, already reported).
bool caseShapes(Run& run, const Case& c, const OutputKinds& kinds, const std::vector<tpat_dims>& inDims,
    std::vector<tpat_dims>& outDims, size_t& wsBytes)
{
    outDims.assign(kinds.nAll + TPAT_MAX_DIMS, tpat_dims{});  // slack for a launcher writing too many
    std::memset(outDims.data(), 0, outDims.size() * sizeof(tpat_dims));
    int rc = run.L.outputDims(inDims.data(), outDims.data());
    checkStatus(rc, "output_dims");
    if (rc != TPAT_OK)
    {
        failCase(run, c, std::string("output_dims returned ") + statusName(rc));
        return false;
    }
    std::string shapeErr;
    for (size_t j = 0; j < c.outputs.size(); ++j)
    {
        const Tensor& t = c.outputs[j];
        bool same = outDims[j].nb_dims == static_cast<int32_t>(t.dims.size());
        for (size_t d = 0; same && d < t.dims.size(); ++d)
        {
            // a data-dependent dim: output_dims gives its upper bound
            same = static_cast<int32_t>(d) == kinds.dynDim[j] ? t.dims[d] <= outDims[j].d[d]
                                                              : outDims[j].d[d] == t.dims[d];
        }
        if (!same)
        {
            const int nb = std::max(0, std::min<int>(outDims[j].nb_dims, TPAT_MAX_DIMS));
            shapeErr += std::string(shapeErr.empty() ? "" : "; ") + "out" + std::to_string(j) + " shape "
                + shapeString(outDims[j].d, nb) + " expected "
                + shapeString(t.dims.data(), static_cast<int>(t.dims.size()));
        }
    }
    if (!shapeErr.empty())
    {
        failCase(run, c, "output_dims mismatch: " + shapeErr);
        return false;
    }
    rc = run.L.workspaceSize(inDims.data(), &wsBytes);
    checkStatus(rc, "workspace_size");
    if (rc != TPAT_OK)
    {
        failCase(run, c, std::string("workspace_size returned ") + statusName(rc));
        return false;
    }
    return true;
}

// Data step: the case's inputs on the device, expected outputs on the host, output buffers.
struct CaseData
{
    std::vector<std::vector<unsigned char>> hostWant;
    std::vector<std::unique_ptr<DeviceBuffer>> dIn;
    std::vector<std::unique_ptr<DeviceBuffer>> dOut;
    std::vector<const void*> inPtrs;
    std::vector<void*> outPtrs;
};

void loadCaseData(
    const std::string& dir, const Case& c, const OutputKinds& kinds, const std::vector<tpat_dims>& outDims, CaseData& d)
{
    const size_t nIn = c.inputs.size();
    const size_t nOut = c.outputs.size();
    std::vector<std::vector<unsigned char>> hostIn(nIn);
    d.hostWant.resize(nOut);
    for (size_t i = 0; i < nIn; ++i)
    {
        hostIn[i] = readFile(dir, c.inputs[i]);
    }
    for (size_t j = 0; j < nOut; ++j)
    {
        d.hostWant[j] = readFile(dir, c.outputs[j]);
    }
    d.inPtrs.assign(nIn + 1, nullptr);
    d.outPtrs.assign(kinds.nAll + 1, nullptr);
    for (size_t i = 0; i < nIn; ++i)
    {
        d.dIn.emplace_back(new DeviceBuffer(hostIn[i].size(), "cudaMalloc (input)"));
        if (!hostIn[i].empty())
        {
            checkCuda(cudaMemcpy(d.dIn.back()->ptr, hostIn[i].data(), hostIn[i].size(), cudaMemcpyHostToDevice),
                "cudaMemcpy (input)");
        }
        d.inPtrs[i] = d.dIn.back()->ptr;
    }
    for (size_t j = 0; j < kinds.nAll; ++j)
    {
        // data-dependent outputs get their upper bound, size tensors one int64
        const size_t bytes = j >= nOut ? sizeof(int64_t)
            : kinds.sizeOf[j] >= 0     ? static_cast<size_t>(tpat_volume(&outDims[j])) * c.outputs[j].dtype->size
                                       : d.hostWant[j].size();
        d.dOut.emplace_back(new DeviceBuffer(bytes, "cudaMalloc (output)"));
        d.outPtrs[j] = d.dOut.back()->ptr;
    }
}

// Run step: poison the outputs, enqueue `repeat` times between two events; returns the status.
int runTactic(Run& run, int t, const std::vector<tpat_dims>& inDims, CaseData& d, void* workspace)
{
    for (size_t j = 0; j < d.dOut.size(); ++j)
    {
        if (d.dOut[j]->bytes)
        {
            checkCuda(cudaMemsetAsync(d.dOut[j]->ptr, 0x7F, d.dOut[j]->bytes, run.stream),
                "cudaMemsetAsync (poison outputs)");
        }
    }
    checkCuda(cudaStreamSynchronize(run.stream), "cudaStreamSynchronize (before enqueue)");
    checkCuda(cudaEventRecord(run.evStart, run.stream), "cudaEventRecord");
    int erc = TPAT_OK;
    for (long r = 0; r < run.opts.repeat && erc == TPAT_OK; ++r)
    {
        erc = run.L.enqueue(inDims.data(), d.inPtrs.data(), d.outPtrs.data(), workspace, t, run.stream);
    }
    checkCuda(cudaEventRecord(run.evStop, run.stream), "cudaEventRecord");
    checkStatus(erc, "enqueue");
    checkCuda(cudaStreamSynchronize(run.stream), "cudaStreamSynchronize (after enqueue: kernel fault?)");
    checkCuda(cudaGetLastError(), "kernel launch");
    return erc;
}

// Compare and report step: one line per output, the first bad elements under it. A data-dependent
// output's size tensor must hold the reference's dim; then its first volume(reference) elements
// (row-major for the actual shape) are compared.
void compareOutputs(Run& run, const Case& c, int t, const OutputKinds& kinds, const CaseData& d)
{
    for (size_t j = 0; j < c.outputs.size(); ++j)
    {
        const Tensor& o = c.outputs[j];
        if (kinds.sizeOf[j] >= 0)
        {
            int64_t count = -1;
            if (kinds.sizeOf[j] < static_cast<int32_t>(kinds.nAll))
            {
                checkCuda(cudaMemcpy(&count, d.dOut[static_cast<size_t>(kinds.sizeOf[j])]->ptr, sizeof(count),
                              cudaMemcpyDeviceToHost),
                    "cudaMemcpy (size tensor)");
            }
            const int64_t want = o.dims[static_cast<size_t>(kinds.dynDim[j])];
            if (count != want)
            {
                std::printf("%s: size tensor (out%d) holds %lld, expected %lld FAIL\n", outLabel(c, t, j).c_str(),
                    kinds.sizeOf[j], static_cast<long long>(count), static_cast<long long>(want));
                ++run.failed;
                continue;
            }
        }
        std::vector<unsigned char> got(d.hostWant[j].size());
        if (!got.empty())
        {
            checkCuda(
                cudaMemcpy(got.data(), d.dOut[j]->ptr, got.size(), cudaMemcpyDeviceToHost), "cudaMemcpy (output)");
        }
        const CompareResult r = compare(o, got.data(), d.hostWant[j].data());
        const bool ok = r.bad == 0;
        std::printf("%s: max_abs %.3g max_rel %.3g bad %zu/%zu (atol %g rtol %g) %s\n", outLabel(c, t, j).c_str(),
            r.maxAbs, r.maxRel, r.bad, o.count(), o.atol, o.rtol, ok ? "PASS" : "FAIL");
        for (size_t i : r.firstBad)
        {
            std::printf("    at %s: got %s expected %s\n", multiIndex(o.dims, i).c_str(),
                valueString(o.dtype->kind, got.data(), i).c_str(),
                valueString(o.dtype->kind, d.hostWant[j].data(), i).c_str());
        }
        ok ? ++run.passed : ++run.failed;
    }
}

void checkCase(Run& run, const Manifest& m, const Case& c)
{
    std::vector<tpat_dims> inDims(c.inputs.size());
    std::memset(inDims.data(), 0, inDims.size() * sizeof(tpat_dims));
    for (size_t i = 0; i < c.inputs.size(); ++i)
    {
        inDims[i].nb_dims = static_cast<int32_t>(c.inputs[i].dims.size());
        for (size_t d = 0; d < c.inputs[i].dims.size(); ++d)
        {
            inDims[i].d[d] = c.inputs[i].dims[d];
        }
    }
    const OutputKinds kinds = outputKinds(run.L, c.outputs.size());
    std::vector<tpat_dims> outDims;
    size_t wsBytes = 0;
    if (!caseShapes(run, c, kinds, inDims, outDims, wsBytes))
    {
        return;
    }
    CaseData data;
    loadCaseData(m.dir, c, kinds, outDims, data);
    DeviceBuffer workspace(wsBytes, "cudaMalloc (workspace)");
    if (run.opts.verbose)
    {
        std::printf("case %d: workspace %zu bytes\n", c.index, wsBytes);
    }
    for (int t : run.tactics)
    {
        const int erc = runTactic(run, t, inDims, data, workspace.ptr);
        if (erc != TPAT_OK)
        {
            for (size_t j = 0; j < c.outputs.size(); ++j)
            {
                std::printf("%s: enqueue returned %s FAIL\n", outLabel(c, t, j).c_str(), statusName(erc));
                ++run.failed;
            }
            continue;
        }
        if (run.opts.repeat > 1)
        {
            float ms = 0.f;
            checkCuda(cudaEventElapsedTime(&ms, run.evStart, run.evStop), "cudaEventElapsedTime");
            std::printf("case %d tactic %d: %.4f ms per enqueue (average of %ld)\n", c.index, t, ms / run.opts.repeat,
                run.opts.repeat);
        }
        compareOutputs(run, c, t, kinds, data);
    }
}

}  // namespace

int main(int argc, char** argv)
{
    const Options opts = parseArgs(argc, argv);
    const Manifest m = readManifest(opts.manifestPath, TPAT_MAX_DIMS, "bad rank (at most TPAT_MAX_DIMS)");
    const std::string prefix = !opts.prefixOverride.empty() ? opts.prefixOverride : m.prefix;
    if (prefix.empty())
    {
        fatal("no symbol prefix: the manifest has no 'prefix' line and --prefix was not given");
    }

    int device = 0;
    checkCuda(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    checkCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");

    const Launcher L = loadLauncher(opts.libPath, prefix);
    const int nTactics = L.numTactics();
    if (nTactics < 1)
    {
        fatal("%s_num_tactics returned %d", prefix.c_str(), nTactics);
    }
    Run run{opts, L, chooseTactics(opts, nTactics)};
    std::printf("tpat_check: plugin %s (%s%s%s), %zu case(s), %d tactic(s), device %s (sm_%d%d)\n", m.plugin.c_str(),
        prefix.c_str(), m.op.empty() ? "" : ", op ", m.op.c_str(), m.cases.size(), nTactics, prop.name, prop.major,
        prop.minor);

    const int rc = L.initialize();
    checkStatus(rc, "initialize");
    if (rc != TPAT_OK)
    {
        fatal("%s_initialize returned %d (%s)", prefix.c_str(), rc, statusName(rc));
    }
    checkCuda(cudaStreamCreateWithFlags(&run.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    checkCuda(cudaEventCreate(&run.evStart), "cudaEventCreate");
    checkCuda(cudaEventCreate(&run.evStop), "cudaEventCreate");

    for (const Case& c : m.cases)
    {
        checkCase(run, m, c);
    }

    L.terminate();
    cudaEventDestroy(run.evStart);
    cudaEventDestroy(run.evStop);
    cudaStreamDestroy(run.stream);
    std::printf("%d passed, %d failed\n", run.passed, run.failed);
    std::fflush(stdout);
    return run.failed == 0 ? kExitPass : kExitMismatch;
}
