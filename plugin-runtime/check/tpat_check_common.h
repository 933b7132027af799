/*
 * tpat_check_common.h: what the two reference-data checkers share (check/tpat_check.cpp, the
 * launcher checker, and check/tpat_plugin_check.cpp, the IPluginV3 checker): the element-type
 * table, the manifest parser (docs/reference-data.md), the reference file reader and the
 * comparison with tolerances.
 *
 * Header-only, no TensorRT: only the CUDA runtime header and the C++17 standard library.
 *
 * Each program defines tpat_check::fatal (below) itself: it prints "<program>: error: <message>"
 * and exits with kExitError. The parser and the reader call it on any error.
 */
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace tpat_check
{

enum ExitCode
{
    kExitPass = 0,
    kExitMismatch = 1,
    kExitError = 2
};

// Prints the error (printf-style) and exits with kExitError; defined by each program.
[[noreturn]] void fatal(const char* fmt, ...);

inline void checkCuda(cudaError_t e, const char* what)
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

inline const DType kDTypes[] = {
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

inline const DType* findDType(const std::string& name)
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

inline bool isFloat(Kind k)
{
    return k == Kind::F32 || k == Kind::F16 || k == Kind::BF16 || k == Kind::F64;
}

inline float halfToFloat(uint16_t h)
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

inline float bf16ToFloat(uint16_t h)
{
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

template <typename T>
inline T load(const unsigned char* p, size_t i)
{
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    return v;
}

inline double toDouble(Kind k, const unsigned char* p, size_t i)
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

inline std::string valueString(Kind k, const unsigned char* p, size_t i)
{
    char buf[64];
    switch (k)
    {
    case Kind::I64: std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(load<int64_t>(p, i))); break;
    case Kind::U64:
        std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(load<uint64_t>(p, i)));
        break;
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
// manifest (docs/reference-data.md)
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

inline std::string dirName(const std::string& path)
{
    const size_t s = path.find_last_of('/');
    if (s == std::string::npos)
    {
        return ".";
    }
    return s == 0 ? "/" : path.substr(0, s);
}

// The whitespace-separated fields of a manifest line, without its '#' comment.
inline std::vector<std::string> manifestTokens(const std::string& line)
{
    const size_t hash = line.find('#');
    std::istringstream ss(hash == std::string::npos ? line : line.substr(0, hash));
    std::vector<std::string> tok;
    for (std::string t; ss >> t;)
    {
        tok.push_back(t);
    }
    return tok;
}

// One "input I DTYPE RANK D... FILE" or "output J DTYPE RANK D... FILE ATOL RTOL" line; `bad`
// reports a malformed line and does not return.
template <class Bad>
inline Tensor parseTensorLine(
    const std::vector<std::string>& tok, bool isOut, long maxRank, const char* badRankMessage, Bad&& bad)
{
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
    if (*endp != '\0' || rank < 0 || rank > maxRank)
    {
        bad(badRankMessage);
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
    return t;
}

// Parses a manifest.txt; a tensor of rank above maxRank stops with badRankMessage (each program
// names its own limit: TPAT_MAX_DIMS, Dims::MAX_DIMS).
inline Manifest readManifest(const std::string& path, long maxRank, const char* badRankMessage)
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
        const std::vector<std::string> tok = manifestTokens(line);
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
        else if ((key == "plugin" || key == "prefix" || key == "op") && tok.size() == 2)
        {
            (key == "plugin" ? m.plugin : key == "prefix" ? m.prefix : m.op) = tok[1];
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
            Tensor t = parseTensorLine(tok, isOut, maxRank, badRankMessage, bad);
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

inline std::vector<unsigned char> readFile(const std::string& dir, const Tensor& t)
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
        fatal("%s holds %lld bytes, the manifest's shape needs %zu", path.c_str(), static_cast<long long>(size),
            t.bytes());
    }
    std::vector<unsigned char> buf(t.bytes());
    in.seekg(0);
    if (!buf.empty() && !in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size())))
    {
        fatal("cannot read %s", path.c_str());
    }
    return buf;
}

inline std::string shapeString(const int64_t* d, int n)
{
    std::string s = "[";
    for (int i = 0; i < n; ++i)
    {
        s += (i ? "," : "") + std::to_string(d[i]);
    }
    return s + "]";
}

inline std::string shapeString(const std::vector<int64_t>& d)
{
    return shapeString(d.data(), static_cast<int>(d.size()));
}

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

// |got - expected| <= atol + rtol * |expected| for floats (float16/bfloat16 converted on the
// host), NaN matches NaN, infinities must match exactly; integers and bool bit-exactly.
inline CompareResult compare(const Tensor& t, const unsigned char* got, const unsigned char* want)
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

inline std::string multiIndex(const std::vector<int64_t>& dims, size_t flat)
{
    std::vector<int64_t> idx(dims.size());
    for (size_t j = dims.size(); j-- > 0;)
    {
        idx[j] = dims[j] ? static_cast<int64_t>(flat % static_cast<size_t>(dims[j])) : 0;
        flat = dims[j] ? flat / static_cast<size_t>(dims[j]) : 0;
    }
    return shapeString(idx.data(), static_cast<int>(idx.size()));
}

}  // namespace tpat_check
