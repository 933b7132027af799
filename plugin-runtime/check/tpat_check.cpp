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
 * kernels never write does not pass by accident.
 *
 * Needs only the CUDA runtime and libdl (no TensorRT).
 */
#include "tpat_launcher_abi.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <memory>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace
{

enum ExitCode
{
    kExitPass = 0,
    kExitMismatch = 1,
    kExitError = 2
};

[[noreturn]] void fatal(const char* fmt, ...)
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

void checkCuda(cudaError_t e, const char* what)
{
    if (e != cudaSuccess)
    {
        fatal("CUDA error in %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    }
}

// ---------------------------------------------------------------------------------------------
// element types
// ---------------------------------------------------------------------------------------------

enum class Kind
{
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool
};

struct DType
{
    const char* name;
    Kind kind;
    size_t size;
};

const DType kDTypes[] = {
    {"float32", Kind::F32, 4},
    {"float16", Kind::F16, 2},
    {"bfloat16", Kind::BF16, 2},
    {"float64", Kind::F64, 8},
    {"int8", Kind::I8, 1},
    {"int16", Kind::I16, 2},
    {"int32", Kind::I32, 4},
    {"int64", Kind::I64, 8},
    {"uint8", Kind::U8, 1},
    {"uint16", Kind::U16, 2},
    {"uint32", Kind::U32, 4},
    {"uint64", Kind::U64, 8},
    {"bool", Kind::Bool, 1},
};

const DType* findDType(const std::string& name)
{
    for (const DType& d : kDTypes)
    {
        if (name == d.name)
        {
            return &d;
        }
    }
    return nullptr;
}

bool isFloat(Kind k)
{
    return k == Kind::F32 || k == Kind::F16 || k == Kind::BF16 || k == Kind::F64;
}

float halfToFloat(uint16_t h)
{
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0)
    {
        if (man == 0)
        {
            bits = sign;
        }
        else
        {
            // subnormal: normalize
            int e = -1;
            do
            {
                ++e;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            man &= 0x3FFu;
            bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (man << 13);
        }
    }
    else if (exp == 0x1F)
    {
        bits = sign | 0x7F800000u | (man << 13);
    }
    else
    {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float bf16ToFloat(uint16_t h)
{
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

template <typename T>
T load(const unsigned char* p, size_t i)
{
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    return v;
}

double toDouble(Kind k, const unsigned char* p, size_t i)
{
    switch (k)
    {
    case Kind::F32: return load<float>(p, i);
    case Kind::F16: return halfToFloat(load<uint16_t>(p, i));
    case Kind::BF16: return bf16ToFloat(load<uint16_t>(p, i));
    case Kind::F64: return load<double>(p, i);
    case Kind::I8: return load<int8_t>(p, i);
    case Kind::I16: return load<int16_t>(p, i);
    case Kind::I32: return load<int32_t>(p, i);
    case Kind::I64: return static_cast<double>(load<int64_t>(p, i));
    case Kind::U8: return load<uint8_t>(p, i);
    case Kind::U16: return load<uint16_t>(p, i);
    case Kind::U32: return load<uint32_t>(p, i);
    case Kind::U64: return static_cast<double>(load<uint64_t>(p, i));
    case Kind::Bool: return load<uint8_t>(p, i);
    }
    return 0.0;
}

std::string valueString(Kind k, const unsigned char* p, size_t i)
{
    char buf[64];
    switch (k)
    {
    case Kind::I64: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(load<int64_t>(p, i))); break;
    case Kind::U64: std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(load<uint64_t>(p, i))); break;
    default:
        if (isFloat(k))
        {
            std::snprintf(buf, sizeof buf, "%.9g", toDouble(k, p, i));
        }
        else
        {
            std::snprintf(buf, sizeof buf, "%.0f", toDouble(k, p, i));
        }
    }
    return buf;
}

// ---------------------------------------------------------------------------------------------
// manifest
// ---------------------------------------------------------------------------------------------

struct Tensor
{
    int index = -1;
    const DType* dtype = nullptr;
    std::vector<int64_t> dims;
    std::string file;
    double atol = 0.0;
    double rtol = 0.0;

    size_t count() const
    {
        size_t n = 1;
        for (int64_t d : dims)
        {
            n *= static_cast<size_t>(d);
        }
        return n;
    }
    size_t bytes() const { return count() * dtype->size; }
};

struct Case
{
    int index = -1;
    std::vector<Tensor> inputs;
    std::vector<Tensor> outputs;
};

struct Manifest
{
    std::string plugin;
    std::string prefix;
    std::string op;
    std::string dir;
    std::vector<Case> cases;
};

std::string dirName(const std::string& path)
{
    const size_t s = path.find_last_of('/');
    if (s == std::string::npos)
    {
        return ".";
    }
    return s == 0 ? "/" : path.substr(0, s);
}

Manifest readManifest(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
    {
        fatal("cannot open manifest %s: %s", path.c_str(), std::strerror(errno));
    }
    Manifest m;
    m.dir = dirName(path);
    std::string line;
    int lineNo = 0;
    Case* cur = nullptr;
    auto bad = [&](const char* why) { fatal("%s:%d: %s: %s", path.c_str(), lineNo, why, line.c_str()); };
    while (std::getline(in, line))
    {
        ++lineNo;
        const size_t hash = line.find('#');
        std::string body = hash == std::string::npos ? line : line.substr(0, hash);
        std::istringstream ss(body);
        std::vector<std::string> tok;
        for (std::string t; ss >> t;)
        {
            tok.push_back(t);
        }
        if (tok.empty())
        {
            continue;
        }
        const std::string& key = tok[0];
        if (key == "format")
        {
            if (tok.size() != 2 || tok[1] != "1")
            {
                bad("unsupported manifest format");
            }
        }
        else if (key == "plugin" && tok.size() == 2)
        {
            m.plugin = tok[1];
        }
        else if (key == "prefix" && tok.size() == 2)
        {
            m.prefix = tok[1];
        }
        else if (key == "op" && tok.size() == 2)
        {
            m.op = tok[1];
        }
        else if (key == "case")
        {
            if (tok.size() != 2 || cur != nullptr)
            {
                bad("bad 'case' line (or previous case not closed by 'end')");
            }
            m.cases.emplace_back();
            cur = &m.cases.back();
            cur->index = std::atoi(tok[1].c_str());
        }
        else if (key == "end")
        {
            if (cur == nullptr)
            {
                bad("'end' without 'case'");
            }
            cur = nullptr;
        }
        else if (key == "input" || key == "output")
        {
            if (cur == nullptr)
            {
                bad("tensor line outside a case");
            }
            const bool isOut = key == "output";
            if (tok.size() < 5)
            {
                bad("too few fields");
            }
            Tensor t;
            char* endp = nullptr;
            t.index = static_cast<int>(std::strtol(tok[1].c_str(), &endp, 10));
            t.dtype = findDType(tok[2]);
            if (t.dtype == nullptr)
            {
                bad("unknown dtype");
            }
            const long rank = std::strtol(tok[3].c_str(), &endp, 10);
            if (*endp != '\0' || rank < 0 || rank > TPAT_MAX_DIMS)
            {
                bad("bad rank (at most TPAT_MAX_DIMS)");
            }
            const size_t want = 4 + static_cast<size_t>(rank) + 1 + (isOut ? 2 : 0);
            if (tok.size() != want)
            {
                bad("wrong number of fields for this rank");
            }
            for (long i = 0; i < rank; ++i)
            {
                const long long d = std::strtoll(tok[4 + i].c_str(), &endp, 10);
                if (*endp != '\0' || d < 0)
                {
                    bad("bad dim");
                }
                t.dims.push_back(d);
            }
            t.file = tok[4 + rank];
            if (isOut)
            {
                t.atol = std::strtod(tok[5 + rank].c_str(), &endp);
                t.rtol = std::strtod(tok[6 + rank].c_str(), &endp);
            }
            auto& list = isOut ? cur->outputs : cur->inputs;
            if (t.index != static_cast<int>(list.size()))
            {
                bad("tensor indices must be 0, 1, ... in order");
            }
            list.push_back(t);
        }
        // other keys (seed, notes, future additions) are ignored
    }
    if (cur != nullptr)
    {
        fatal("%s: last case not closed by 'end'", path.c_str());
    }
    if (m.cases.empty())
    {
        fatal("%s: no cases", path.c_str());
    }
    return m;
}

std::vector<unsigned char> readFile(const std::string& dir, const Tensor& t)
{
    const std::string path = (!t.file.empty() && t.file[0] == '/') ? t.file : dir + "/" + t.file;
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in)
    {
        fatal("cannot open %s: %s", path.c_str(), std::strerror(errno));
    }
    const std::streamoff size = in.tellg();
    if (size < 0 || static_cast<size_t>(size) != t.bytes())
    {
        fatal("%s holds %lld bytes, the manifest's shape needs %zu", path.c_str(), static_cast<long long>(size), t.bytes());
    }
    std::vector<unsigned char> buf(t.bytes());
    in.seekg(0);
    if (!buf.empty() && !in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size())))
    {
        fatal("cannot read %s", path.c_str());
    }
    return buf;
}

std::string shapeString(const int64_t* d, int n)
{
    std::string s = "[";
    for (int i = 0; i < n; ++i)
    {
        s += (i ? "," : "") + std::to_string(d[i]);
    }
    return s + "]";
}

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
    fatal("%s returned TPAT_CUDA_ERROR (CUDA: %s)", fn, e == cudaSuccess ? "no error visible to the checker" : cudaGetErrorString(e));
}

struct DeviceBuffer
{
    void* ptr = nullptr;
    size_t bytes = 0;
    explicit DeviceBuffer(size_t n, const char* what) : bytes(n)
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

// ---------------------------------------------------------------------------------------------
// comparison
// ---------------------------------------------------------------------------------------------

struct CompareResult
{
    size_t bad = 0;
    double maxAbs = 0.0;
    double maxRel = 0.0;
    std::vector<size_t> firstBad;
};

CompareResult compare(const Tensor& t, const unsigned char* got, const unsigned char* want)
{
    CompareResult r;
    const size_t n = t.count();
    const Kind k = t.dtype->kind;
    const bool fl = isFloat(k);
    for (size_t i = 0; i < n; ++i)
    {
        bool ok;
        double absErr = 0.0;
        double relErr = 0.0;
        if (fl)
        {
            const double a = toDouble(k, got, i);
            const double b = toDouble(k, want, i);
            if (std::isnan(b))
            {
                ok = std::isnan(a);
                absErr = ok ? 0.0 : std::numeric_limits<double>::infinity();
            }
            else if (std::isinf(b) || std::isinf(a) || std::isnan(a))
            {
                ok = a == b;
                absErr = ok ? 0.0 : std::numeric_limits<double>::infinity();
            }
            else
            {
                absErr = std::fabs(a - b);
                ok = absErr <= t.atol + t.rtol * std::fabs(b);
            }
            relErr = absErr == 0.0 ? 0.0 : absErr / std::max(std::fabs(toDouble(k, want, i)), 1e-30);
        }
        else
        {
            ok = std::memcmp(got + i * t.dtype->size, want + i * t.dtype->size, t.dtype->size) == 0;
            if (!ok)
            {
                const double a = toDouble(k, got, i);
                const double b = toDouble(k, want, i);
                absErr = std::fabs(a - b);
                if (absErr == 0.0)
                {
                    absErr = 1.0;  // bool bytes other than 0/1, or unrepresentable 64-bit differences
                }
                relErr = absErr / std::max(std::fabs(b), 1.0);
            }
        }
        if (absErr > r.maxAbs || std::isnan(absErr))
        {
            r.maxAbs = absErr;
        }
        if (relErr > r.maxRel)
        {
            r.maxRel = relErr;
        }
        if (!ok)
        {
            if (r.firstBad.size() < 5)
            {
                r.firstBad.push_back(i);
            }
            ++r.bad;
        }
    }
    return r;
}

std::string multiIndex(const std::vector<int64_t>& dims, size_t flat)
{
    std::vector<int64_t> idx(dims.size());
    for (size_t j = dims.size(); j-- > 0;)
    {
        idx[j] = dims[j] ? static_cast<int64_t>(flat % static_cast<size_t>(dims[j])) : 0;
        flat = dims[j] ? flat / static_cast<size_t>(dims[j]) : 0;
    }
    return shapeString(idx.data(), static_cast<int>(idx.size()));
}

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

}  // namespace

int main(int argc, char** argv)
{
    std::string libPath;
    std::string manifestPath;
    std::string prefixOverride;
    long tactic = 0;
    bool allTactics = false;
    bool tacticGiven = false;
    long repeat = 1;
    bool verbose = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i)
    {
        const std::string a = argv[i];
        if (a == "--tactic" && i + 1 < argc)
        {
            if (!parseInt(argv[++i], tactic) || tactic < 0)
            {
                usage();
            }
            tacticGiven = true;
        }
        else if (a == "--all-tactics")
        {
            allTactics = true;
        }
        else if (a == "--repeat" && i + 1 < argc)
        {
            if (!parseInt(argv[++i], repeat) || repeat < 1)
            {
                usage();
            }
        }
        else if (a == "--prefix" && i + 1 < argc)
        {
            prefixOverride = argv[++i];
        }
        else if (a == "--verbose" || a == "-v")
        {
            verbose = true;
        }
        else if (a == "-h" || a == "--help")
        {
            usage();
        }
        else if (!a.empty() && a[0] == '-')
        {
            usage();
        }
        else
        {
            positional.push_back(a);
        }
    }
    if (positional.size() != 2 || (allTactics && tacticGiven))
    {
        usage();
    }
    libPath = positional[0];
    manifestPath = positional[1];

    const Manifest m = readManifest(manifestPath);
    const std::string prefix = !prefixOverride.empty() ? prefixOverride : m.prefix;
    if (prefix.empty())
    {
        fatal("no symbol prefix: the manifest has no 'prefix' line and --prefix was not given");
    }

    int device = 0;
    checkCuda(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    checkCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");

    const Launcher L = loadLauncher(libPath, prefix);
    const int nTactics = L.numTactics();
    if (nTactics < 1)
    {
        fatal("%s_num_tactics returned %d", prefix.c_str(), nTactics);
    }
    std::vector<int> tactics;
    if (allTactics)
    {
        for (int t = 0; t < nTactics; ++t)
        {
            tactics.push_back(t);
        }
    }
    else
    {
        if (tactic >= nTactics)
        {
            fatal("--tactic %ld: the plugin has %d tactic(s)", tactic, nTactics);
        }
        tactics.push_back(static_cast<int>(tactic));
    }
    std::printf("tpat_check: plugin %s (%s%s%s), %zu case(s), %d tactic(s), device %s (sm_%d%d)\n",
        m.plugin.c_str(), prefix.c_str(), m.op.empty() ? "" : ", op ", m.op.c_str(), m.cases.size(), nTactics, prop.name,
        prop.major, prop.minor);

    int rc = L.initialize();
    if (rc == TPAT_CUDA_ERROR)
    {
        launcherCudaError("initialize");
    }
    if (rc != TPAT_OK)
    {
        fatal("%s_initialize returned %d (%s)", prefix.c_str(), rc, statusName(rc));
    }

    cudaStream_t stream = nullptr;
    checkCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    cudaEvent_t evStart = nullptr;
    cudaEvent_t evStop = nullptr;
    checkCuda(cudaEventCreate(&evStart), "cudaEventCreate");
    checkCuda(cudaEventCreate(&evStop), "cudaEventCreate");

    int passed = 0;
    int failed = 0;
    for (const Case& c : m.cases)
    {
        const size_t nIn = c.inputs.size();
        const size_t nOut = c.outputs.size();
        std::vector<tpat_dims> inDims(nIn);
        std::vector<tpat_dims> outDims(nOut + TPAT_MAX_DIMS);  // slack for a launcher writing too many
        std::memset(inDims.data(), 0, inDims.size() * sizeof(tpat_dims));
        std::memset(outDims.data(), 0, outDims.size() * sizeof(tpat_dims));
        for (size_t i = 0; i < nIn; ++i)
        {
            inDims[i].nb_dims = static_cast<int32_t>(c.inputs[i].dims.size());
            for (size_t d = 0; d < c.inputs[i].dims.size(); ++d)
            {
                inDims[i].d[d] = c.inputs[i].dims[d];
            }
        }
        auto failCase = [&](const std::string& why) {
            for (int t : tactics)
            {
                for (size_t j = 0; j < nOut; ++j)
                {
                    std::printf("case %d tactic %d out%zu %s %s: %s FAIL\n", c.index, t, j, c.outputs[j].dtype->name,
                        shapeString(c.outputs[j].dims.data(), static_cast<int>(c.outputs[j].dims.size())).c_str(), why.c_str());
                    ++failed;
                }
            }
        };

        // shapes
        rc = L.outputDims(inDims.data(), outDims.data());
        if (rc == TPAT_CUDA_ERROR)
        {
            launcherCudaError("output_dims");
        }
        if (rc != TPAT_OK)
        {
            failCase(std::string("output_dims returned ") + statusName(rc));
            continue;
        }
        std::string shapeErr;
        for (size_t j = 0; j < nOut; ++j)
        {
            const Tensor& t = c.outputs[j];
            bool same = outDims[j].nb_dims == static_cast<int32_t>(t.dims.size());
            for (size_t d = 0; same && d < t.dims.size(); ++d)
            {
                same = outDims[j].d[d] == t.dims[d];
            }
            if (!same)
            {
                const int nb = std::max(0, std::min<int>(outDims[j].nb_dims, TPAT_MAX_DIMS));
                shapeErr += std::string(shapeErr.empty() ? "" : "; ") + "out" + std::to_string(j) + " shape "
                    + shapeString(outDims[j].d, nb) + " expected " + shapeString(t.dims.data(), static_cast<int>(t.dims.size()));
            }
        }
        if (!shapeErr.empty())
        {
            failCase("output_dims mismatch: " + shapeErr);
            continue;
        }

        size_t wsBytes = 0;
        rc = L.workspaceSize(inDims.data(), &wsBytes);
        if (rc == TPAT_CUDA_ERROR)
        {
            launcherCudaError("workspace_size");
        }
        if (rc != TPAT_OK)
        {
            failCase(std::string("workspace_size returned ") + statusName(rc));
            continue;
        }

        // data
        std::vector<std::vector<unsigned char>> hostIn(nIn);
        std::vector<std::vector<unsigned char>> hostWant(nOut);
        for (size_t i = 0; i < nIn; ++i)
        {
            hostIn[i] = readFile(m.dir, c.inputs[i]);
        }
        for (size_t j = 0; j < nOut; ++j)
        {
            hostWant[j] = readFile(m.dir, c.outputs[j]);
        }
        std::vector<std::unique_ptr<DeviceBuffer>> dIn;
        std::vector<std::unique_ptr<DeviceBuffer>> dOut;
        std::vector<const void*> inPtrs(nIn + 1, nullptr);
        std::vector<void*> outPtrs(nOut + 1, nullptr);
        for (size_t i = 0; i < nIn; ++i)
        {
            dIn.emplace_back(new DeviceBuffer(hostIn[i].size(), "cudaMalloc (input)"));
            if (!hostIn[i].empty())
            {
                checkCuda(cudaMemcpy(dIn.back()->ptr, hostIn[i].data(), hostIn[i].size(), cudaMemcpyHostToDevice), "cudaMemcpy (input)");
            }
            inPtrs[i] = dIn.back()->ptr;
        }
        for (size_t j = 0; j < nOut; ++j)
        {
            dOut.emplace_back(new DeviceBuffer(hostWant[j].size(), "cudaMalloc (output)"));
            outPtrs[j] = dOut.back()->ptr;
        }
        DeviceBuffer workspace(wsBytes, "cudaMalloc (workspace)");
        if (verbose)
        {
            std::printf("case %d: workspace %zu bytes\n", c.index, wsBytes);
        }

        for (int t : tactics)
        {
            for (size_t j = 0; j < nOut; ++j)
            {
                if (dOut[j]->bytes)
                {
                    checkCuda(cudaMemsetAsync(dOut[j]->ptr, 0x7F, dOut[j]->bytes, stream), "cudaMemsetAsync (poison outputs)");
                }
            }
            checkCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (before enqueue)");
            checkCuda(cudaEventRecord(evStart, stream), "cudaEventRecord");
            int erc = TPAT_OK;
            for (long r = 0; r < repeat && erc == TPAT_OK; ++r)
            {
                erc = L.enqueue(inDims.data(), inPtrs.data(), outPtrs.data(), workspace.ptr, t, stream);
            }
            checkCuda(cudaEventRecord(evStop, stream), "cudaEventRecord");
            if (erc == TPAT_CUDA_ERROR)
            {
                launcherCudaError("enqueue");
            }
            checkCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (after enqueue: kernel fault?)");
            checkCuda(cudaGetLastError(), "kernel launch");
            if (erc != TPAT_OK)
            {
                for (size_t j = 0; j < nOut; ++j)
                {
                    std::printf("case %d tactic %d out%zu %s %s: enqueue returned %s FAIL\n", c.index, t, j, c.outputs[j].dtype->name,
                        shapeString(c.outputs[j].dims.data(), static_cast<int>(c.outputs[j].dims.size())).c_str(), statusName(erc));
                    ++failed;
                }
                continue;
            }
            if (repeat > 1)
            {
                float ms = 0.f;
                checkCuda(cudaEventElapsedTime(&ms, evStart, evStop), "cudaEventElapsedTime");
                std::printf("case %d tactic %d: %.4f ms per enqueue (average of %ld)\n", c.index, t, ms / repeat, repeat);
            }
            for (size_t j = 0; j < nOut; ++j)
            {
                const Tensor& o = c.outputs[j];
                std::vector<unsigned char> got(hostWant[j].size());
                if (!got.empty())
                {
                    checkCuda(cudaMemcpy(got.data(), dOut[j]->ptr, got.size(), cudaMemcpyDeviceToHost), "cudaMemcpy (output)");
                }
                const CompareResult r = compare(o, got.data(), hostWant[j].data());
                const bool ok = r.bad == 0;
                std::printf("case %d tactic %d out%zu %s %s: max_abs %.3g max_rel %.3g bad %zu/%zu (atol %g rtol %g) %s\n", c.index, t, j,
                    o.dtype->name, shapeString(o.dims.data(), static_cast<int>(o.dims.size())).c_str(), r.maxAbs, r.maxRel, r.bad,
                    o.count(), o.atol, o.rtol, ok ? "PASS" : "FAIL");
                for (size_t i : r.firstBad)
                {
                    std::printf("    at %s: got %s expected %s\n", multiIndex(o.dims, i).c_str(),
                        valueString(o.dtype->kind, got.data(), i).c_str(), valueString(o.dtype->kind, hostWant[j].data(), i).c_str());
                }
                ok ? ++passed : ++failed;
            }
        }
    }

    L.terminate();
    cudaEventDestroy(evStart);
    cudaEventDestroy(evStop);
    cudaStreamDestroy(stream);
    std::printf("%d passed, %d failed\n", passed, failed);
    std::fflush(stdout);
    return failed == 0 ? kExitPass : kExitMismatch;
}
