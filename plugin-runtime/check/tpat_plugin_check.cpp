/*
 * tpat_plugin_check: runs every plugin of a generated project through libtpat_plugins.so the way
 * TensorRT's runtime does, on the plugins' reference data, and compares the results.
 *
 *   tpat_plugin_check LIBPLUGINS PROJECT_DIR [--verbose]
 *
 *   LIBPLUGINS   libtpat_plugins.so (dlopen'ed; getCreators / setLoggerFinder are dlsym'ed)
 *   PROJECT_DIR  the generated project (OUT/plugins): <P>/reference/manifest.txt for every plugin P
 *                (format in docs/reference-data.md)
 *
 * For every creator (IPluginCreatorV3One, namespace "tpat") and every case of its manifest:
 *   runtime      createPlugin(name, {tactic: int32 0}, TensorRTPhase::kRUNTIME); core/build/runtime
 *                capabilities; getNbOutputs / getOutputDataTypes against the manifest;
 *                supportsFormatCombination on the concrete linear descriptors; attachToContext
 *                (a minimal IPluginResourceContext); onShapeChange; getWorkspaceSize (build
 *                capability, min = opt = max = the case's shapes); enqueue on a stream; compare.
 *   clone        the attached plugin's clone() enqueued once (no attachToContext); compare.
 *   deserialized setTactic(last tactic) on the runtime plugin, getFieldsToSerialize, the fields
 *                deep-copied and given to createPlugin(..., kRUNTIME) (TensorRT's engine
 *                deserialization path); the tactic must survive; attach, onShapeChange, enqueue;
 *                compare.
 * Outputs are filled with 0x7F bytes before every enqueue, so an output never written fails.
 * Plugin outputs past the manifest's must be int64 size tensors (data-dependent outputs, 0-D,
 * one int64 each); a data-dependent output is compared on its first volume(reference) elements.
 *
 * Output: one line per plugin/case/variant/output with max abs / max rel error and PASS/FAIL,
 * then exactly "N passed, M failed". Exit code 0 when everything passes, 1 on any mismatch or
 * plugin API failure, 2 on usage, loading, manifest, or CUDA errors (no device included).
 *
 * Comparison (same as tpat_check): |got - expected| <= atol + rtol * |expected| for floats
 * (float16/bfloat16 converted on the host), NaN matches NaN, infinities must match exactly;
 * integers and bool bit-exactly.
 *
 * Needs the TensorRT headers (NvInfer.h) at build time only, the CUDA runtime and libdl; no
 * TensorRT library (libtpat_plugins.so needs none either).
 */
#include "NvInfer.h"
#include "tpat_check_common.h"

#include <cuda_runtime_api.h>
#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace nvinfer1;
using namespace tpat_check;  // tpat_check_common.h: dtypes, manifest, comparison

[[noreturn]] void tpat_check::fatal(const char* fmt, ...)
{
    std::fflush(stdout);
    std::fprintf(stderr, "tpat_plugin_check: error: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "\n");
    std::exit(kExitError);
}

namespace
{

constexpr int kMaxDims = Dims::MAX_DIMS;

// ---------------------------------------------------------------------------------------------
// element types: the TensorRT side (the dtype table itself is in tpat_check_common.h)
// ---------------------------------------------------------------------------------------------

struct TrtType
{
    bool has;       // a TensorRT DataType exists for it
    DataType type;  // kFLOAT where none does
};

TrtType trtTypeOf(const DType& d)
{
    switch (d.kind)
    {
    case Kind::F32: return {true, DataType::kFLOAT};
    case Kind::F16: return {true, DataType::kHALF};
    case Kind::BF16: return {true, DataType::kBF16};
    case Kind::I8: return {true, DataType::kINT8};
    case Kind::I32: return {true, DataType::kINT32};
    case Kind::I64: return {true, DataType::kINT64};
    case Kind::U8: return {true, DataType::kUINT8};
    case Kind::Bool: return {true, DataType::kBOOL};
    case Kind::F64:
    case Kind::I16:
    case Kind::U16:
    case Kind::U32:
    case Kind::U64: break;
    }
    return {false, DataType::kFLOAT};
}

const char* trtTypeName(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT: return "kFLOAT";
    case DataType::kHALF: return "kHALF";
    case DataType::kINT8: return "kINT8";
    case DataType::kINT32: return "kINT32";
    case DataType::kBOOL: return "kBOOL";
    case DataType::kUINT8: return "kUINT8";
    case DataType::kFP8: return "kFP8";
    case DataType::kBF16: return "kBF16";
    case DataType::kINT64: return "kINT64";
    case DataType::kINT4: return "kINT4";
    default: return "other";
    }
}

// ---------------------------------------------------------------------------------------------
// reference data (manifest parser and comparison: tpat_check_common.h)
// ---------------------------------------------------------------------------------------------

bool fileExists(const std::string& path)
{
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// ---------------------------------------------------------------------------------------------
// TensorRT stand-ins: logger, logger finder, resource context
// ---------------------------------------------------------------------------------------------

struct Logger : ILogger
{
    bool verbose = false;
    std::vector<std::string> errors;  // since the last take()
    void log(Severity s, AsciiChar const* msg) noexcept override
    {
        if (s <= Severity::kERROR)
        {
            try
            {
                errors.emplace_back(msg != nullptr ? msg : "");
            }
            catch (...)
            {
            }
        }
        if (s <= Severity::kWARNING || verbose)
        {
            std::printf("  log[%s] %s\n",
                s <= Severity::kERROR         ? "error"
                    : s == Severity::kWARNING ? "warning"
                                              : "info",
                msg != nullptr ? msg : "");
        }
    }
    std::string take()
    {
        std::string s;
        for (const std::string& e : errors)
        {
            s += (s.empty() ? "" : "; ") + e;
        }
        errors.clear();
        return s;
    }
};

struct Finder : ILoggerFinder
{
    ILogger* logger;
    explicit Finder(ILogger* l)
        : logger(l)
    {
    }
    ILogger* findLogger() override { return logger; }
};

// What attachToContext receives from TensorRT's execution context. The TPAT plugin uses neither
// the allocator nor the error recorder; both are null here.
class ResourceContext : public IPluginResourceContext
{
public:
    IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
};

// ---------------------------------------------------------------------------------------------
// device buffers
// ---------------------------------------------------------------------------------------------

struct DeviceBuffer
{
    void* ptr = nullptr;
    size_t bytes = 0;
    DeviceBuffer(size_t n, const char* what)
        : bytes(n)
    {
        if (n > 0)
        {
            checkCuda(cudaMalloc(&ptr, n), what);
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

// Plugin objects, deleted in reverse order of creation (TensorRT owns them the same way).
struct PluginDeleter
{
    void operator()(IPluginV3* p) const { delete p; }
};
using PluginPtr = std::unique_ptr<IPluginV3, PluginDeleter>;

struct Caps
{
    IPluginV3OneCore* core = nullptr;
    IPluginV3OneBuild* build = nullptr;
    IPluginV3OneRuntime* rt = nullptr;
};

// An owned deep copy of a PluginFieldCollection (what TensorRT writes into the engine and gives
// back to createPlugin on deserialization).
struct OwnedFields
{
    std::vector<std::string> names;
    std::vector<std::vector<unsigned char>> data;
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};
};

size_t fieldElementSize(PluginFieldType t)
{
    switch (t)
    {
    case PluginFieldType::kFLOAT16: return 2;
    case PluginFieldType::kFLOAT32: return 4;
    case PluginFieldType::kFLOAT64: return 8;
    case PluginFieldType::kINT8: return 1;
    case PluginFieldType::kINT16: return 2;
    case PluginFieldType::kINT32: return 4;
    case PluginFieldType::kCHAR: return 1;
    case PluginFieldType::kDIMS: return sizeof(Dims);
    case PluginFieldType::kUNKNOWN: return 1;
    case PluginFieldType::kBF16: return 2;
    case PluginFieldType::kINT64: return 8;
    case PluginFieldType::kFP8: return 1;
    default: return 0;
    }
}

bool copyFields(const PluginFieldCollection* src, OwnedFields& dst, std::string& why)
{
    if (src == nullptr || src->nbFields < 0 || (src->nbFields > 0 && src->fields == nullptr))
    {
        why = "getFieldsToSerialize returned no collection";
        return false;
    }
    dst.names.resize(static_cast<size_t>(src->nbFields));
    dst.data.resize(static_cast<size_t>(src->nbFields));
    for (int32_t i = 0; i < src->nbFields; ++i)
    {
        const PluginField& f = src->fields[i];
        const size_t es = fieldElementSize(f.type);
        if (f.name == nullptr || es == 0 || f.length < 0 || (f.length > 0 && f.data == nullptr))
        {
            why = "getFieldsToSerialize: field " + std::to_string(i) + " is malformed";
            return false;
        }
        dst.names[static_cast<size_t>(i)] = f.name;
        const size_t bytes = es * static_cast<size_t>(f.length);
        dst.data[static_cast<size_t>(i)].assign(
            static_cast<const unsigned char*>(f.data), static_cast<const unsigned char*>(f.data) + bytes);
    }
    for (int32_t i = 0; i < src->nbFields; ++i)
    {
        const PluginField& f = src->fields[i];
        dst.fields.emplace_back(
            dst.names[static_cast<size_t>(i)].c_str(), dst.data[static_cast<size_t>(i)].data(), f.type, f.length);
    }
    dst.fc.nbFields = static_cast<int32_t>(dst.fields.size());
    dst.fc.fields = dst.fields.data();
    return true;
}

bool readTacticField(const PluginFieldCollection* fc, int32_t& tactic)
{
    if (fc == nullptr || fc->fields == nullptr)
    {
        return false;
    }
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        const PluginField& f = fc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, "tactic") == 0 && f.type == PluginFieldType::kINT32
            && f.length == 1 && f.data != nullptr)
        {
            std::memcpy(&tactic, f.data, sizeof(int32_t));
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// one case's tensors: descriptors, reference data, device buffers
// ---------------------------------------------------------------------------------------------

// Concrete shapes, linear format; the dynamic descriptors have min = opt = max = the shapes.
// `nSize` trailing outputs past the manifest's are size tensors (0-D int64).
struct Descriptors
{
    std::vector<PluginTensorDesc> in;
    std::vector<PluginTensorDesc> out;
    std::vector<DynamicPluginTensorDesc> dynAll;  // inputs then outputs
    std::vector<DynamicPluginTensorDesc> dynIn;
    std::vector<DynamicPluginTensorDesc> dynOut;

    static PluginTensorDesc desc(const Tensor& t)
    {
        PluginTensorDesc d{};
        d.type = trtTypeOf(*t.dtype).type;
        d.format = TensorFormat::kLINEAR;
        d.scale = -1.0F;  // not INT8-quantized
        d.dims.nbDims = static_cast<int32_t>(t.dims.size());
        for (size_t i = 0; i < t.dims.size(); ++i)
        {
            d.dims.d[i] = t.dims[i];
        }
        return d;
    }

    Descriptors(const Case& c, int32_t nSize)
    {
        for (const Tensor& t : c.inputs)
        {
            in.push_back(desc(t));
        }
        for (const Tensor& t : c.outputs)
        {
            out.push_back(desc(t));
        }
        for (int32_t j = 0; j < nSize; ++j)
        {
            PluginTensorDesc d{};
            d.type = DataType::kINT64;
            d.format = TensorFormat::kLINEAR;
            d.scale = -1.0F;
            d.dims.nbDims = 0;  // a size tensor is 0-D
            out.push_back(d);
        }
        for (const PluginTensorDesc& d : in)
        {
            dynAll.push_back(DynamicPluginTensorDesc{d, d.dims, d.dims, d.dims});
        }
        for (const PluginTensorDesc& d : out)
        {
            dynAll.push_back(DynamicPluginTensorDesc{d, d.dims, d.dims, d.dims});
        }
        dynIn.assign(dynAll.begin(), dynAll.begin() + static_cast<std::ptrdiff_t>(in.size()));
        dynOut.assign(dynAll.begin() + static_cast<std::ptrdiff_t>(in.size()), dynAll.end());
    }
};

// The case's inputs and expected outputs, read from its files.
struct Reference
{
    std::vector<std::vector<unsigned char>> in;
    std::vector<std::vector<unsigned char>> want;

    Reference(const Manifest& m, const Case& c)
    {
        for (const Tensor& t : c.inputs)
        {
            in.push_back(readFile(m.dir, t));
        }
        for (const Tensor& t : c.outputs)
        {
            want.push_back(readFile(m.dir, t));
        }
    }
};

// Device copies of the inputs and outputs filled with 0x7F bytes (an output never written fails);
// `nSize` more outputs are size tensors (one int64 each, written on the device).
struct Buffers
{
    std::vector<std::unique_ptr<DeviceBuffer>> in;
    std::vector<std::unique_ptr<DeviceBuffer>> out;
    std::vector<const void*> inPtrs;
    std::vector<void*> outPtrs;

    Buffers(const Reference& ref, size_t nSize)
        : inPtrs(ref.in.size() + 1, nullptr)
        , outPtrs(ref.want.size() + nSize + 1, nullptr)
    {
        for (size_t i = 0; i < ref.in.size(); ++i)
        {
            in.emplace_back(new DeviceBuffer(ref.in[i].size(), "cudaMalloc (input)"));
            if (in.back()->bytes)
            {
                checkCuda(cudaMemcpy(in.back()->ptr, ref.in[i].data(), in.back()->bytes, cudaMemcpyHostToDevice),
                    "cudaMemcpy (input)");
            }
            inPtrs[i] = in.back()->ptr;
        }
        for (size_t j = 0; j < ref.want.size() + nSize; ++j)
        {
            const size_t bytes = j < ref.want.size() ? ref.want[j].size() : sizeof(int64_t);
            out.emplace_back(new DeviceBuffer(bytes, "cudaMalloc (output)"));
            if (out.back()->bytes)
            {
                checkCuda(cudaMemset(out.back()->ptr, 0x7F, out.back()->bytes), "cudaMemset (poison outputs)");
            }
            outPtrs[j] = out.back()->ptr;
        }
    }
};

// ---------------------------------------------------------------------------------------------
// the checker
// ---------------------------------------------------------------------------------------------

struct Checker
{
    Logger& logger;
    bool verbose = false;
    cudaStream_t stream = nullptr;
    int passed = 0;
    int failed = 0;

    explicit Checker(Logger& l)
        : logger(l)
    {
    }

    // A failure that is not a numeric comparison: one FAIL line per output (so the count matches
    // what a comparison would have given) with the reason and anything the plugin logged.
    void failOutputs(const std::string& label, const Case& c, const std::string& why)
    {
        std::string logged = logger.take();
        for (size_t j = 0; j < c.outputs.size(); ++j)
        {
            std::printf("%s out%zu %s %s: %s%s%s FAIL\n", label.c_str(), j, c.outputs[j].dtype->name,
                shapeString(c.outputs[j].dims).c_str(), why.c_str(),
                logged.empty() ? "" : " (plugin: ", logged.empty() ? "" : (logged + ")").c_str());
            ++failed;
        }
        if (c.outputs.empty())
        {
            std::printf("%s: %s FAIL\n", label.c_str(), why.c_str());
            ++failed;
        }
    }

    static Caps caps(IPluginV3* p)
    {
        Caps k;
        k.core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
        k.build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
        k.rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        return k;
    }

    static bool kindIs(IPluginCapability* c, const char* kind)
    {
        return c != nullptr && c->getInterfaceInfo().kind != nullptr
            && std::strcmp(c->getInterfaceInfo().kind, kind) == 0;
    }

    // Capability and identity checks; empty string when fine.
    static std::string checkIdentity(IPluginV3* p, IPluginCreatorV3One* creator, Caps& k)
    {
        if (p == nullptr)
        {
            return "null plugin";
        }
        k = caps(p);
        if (!kindIs(k.core, "PLUGIN_V3ONE_CORE") || !kindIs(k.build, "PLUGIN_V3ONE_BUILD")
            || !kindIs(k.rt, "PLUGIN_V3ONE_RUNTIME"))
        {
            return "getCapabilityInterface: missing or wrong core/build/runtime capability";
        }
        if (std::strcmp(k.core->getPluginName(), creator->getPluginName()) != 0
            || std::strcmp(k.core->getPluginVersion(), creator->getPluginVersion()) != 0
            || std::strcmp(k.core->getPluginNamespace(), creator->getPluginNamespace()) != 0)
        {
            return "plugin name/version/namespace differ from the creator's";
        }
        return "";
    }

    // Runs one plugin object on case c: onShapeChange (unless skipped), workspace, enqueue,
    // compare. The plugin must already be attached (or be a clone of an attached one).
    void run(const std::string& label, IPluginV3* p, const Case& c, const Descriptors& d, const Reference& ref,
        bool shapeChange)
    {
        const int32_t nIn = static_cast<int32_t>(d.in.size());
        const int32_t nOut = static_cast<int32_t>(d.out.size());
        Caps k = caps(p);
        if (k.rt == nullptr || k.build == nullptr)
        {
            failOutputs(label, c, "no runtime/build capability");
            return;
        }
        if (shapeChange && k.rt->onShapeChange(d.in.data(), nIn, d.out.data(), nOut) != 0)
        {
            failOutputs(label, c, "onShapeChange failed");
            return;
        }
        const size_t ws = k.build->getWorkspaceSize(d.dynIn.data(), nIn, d.dynOut.data(), nOut);
        std::string logged = logger.take();
        if (!logged.empty())
        {
            failOutputs(label, c, "getWorkspaceSize reported an error: " + logged);
            return;
        }
        Buffers buf(ref, d.out.size() - c.outputs.size());
        DeviceBuffer workspace(ws, "cudaMalloc (workspace)");
        if (verbose)
        {
            std::printf("%s: workspace %zu bytes\n", label.c_str(), ws);
        }
        const int32_t erc
            = k.rt->enqueue(d.in.data(), d.out.data(), buf.inPtrs.data(), buf.outPtrs.data(), workspace.ptr, stream);
        checkCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (after enqueue: kernel fault?)");
        checkCuda(cudaGetLastError(), "kernel launch");
        if (erc != 0)
        {
            failOutputs(label, c, "enqueue returned " + std::to_string(erc));
            return;
        }
        compareOutputs(label, c, ref, buf);
    }

    // One line per output with the errors and PASS/FAIL, the first bad elements under it.
    // A data-dependent output holds its actual shape's elements first (compact); size tensors
    // (past the manifest's outputs) are not compared here.
    void compareOutputs(const std::string& label, const Case& c, const Reference& ref, const Buffers& buf)
    {
        for (size_t j = 0; j < c.outputs.size(); ++j)
        {
            const Tensor& o = c.outputs[j];
            std::vector<unsigned char> got(ref.want[j].size());
            if (!got.empty())
            {
                checkCuda(
                    cudaMemcpy(got.data(), buf.out[j]->ptr, got.size(), cudaMemcpyDeviceToHost), "cudaMemcpy (output)");
            }
            const CompareResult r = compare(o, got.data(), ref.want[j].data());
            const bool ok = r.bad == 0;
            std::printf("%s out%d %s %s: max_abs %.3g max_rel %.3g bad %zu/%zu (atol %g rtol %g) %s\n", label.c_str(),
                static_cast<int32_t>(j), o.dtype->name, shapeString(o.dims).c_str(), r.maxAbs, r.maxRel, r.bad,
                o.count(), o.atol, o.rtol, ok ? "PASS" : "FAIL");
            for (size_t i : r.firstBad)
            {
                std::printf("    at %s: got %s expected %s\n", multiIndex(o.dims, i).c_str(),
                    valueString(o.dtype->kind, got.data(), i).c_str(),
                    valueString(o.dtype->kind, ref.want[j].data(), i).c_str());
            }
            ok ? ++passed : ++failed;
        }
    }

    // Declared outputs against the manifest: their number and data types, plus up to 8 trailing
    // int64 size tensors (data-dependent outputs; their count in nSize); empty string when fine.
    static std::string checkDeclaredOutputs(const Caps& k, const Case& c, int32_t& nSize)
    {
        const int32_t nIn = static_cast<int32_t>(c.inputs.size());
        const int32_t nOut = static_cast<int32_t>(c.outputs.size());
        const int32_t nPlug = k.build->getNbOutputs();
        if (nPlug < nOut || nPlug > nOut + 8)
        {
            return "getNbOutputs " + std::to_string(nPlug) + ", the manifest has " + std::to_string(nOut);
        }
        nSize = nPlug - nOut;
        std::vector<DataType> inTypes;
        for (const Tensor& t : c.inputs)
        {
            const TrtType tt = trtTypeOf(*t.dtype);
            if (!tt.has)
            {
                return std::string("input dtype ") + t.dtype->name + " has no TensorRT DataType";
            }
            inTypes.push_back(tt.type);
        }
        std::vector<DataType> outTypes(static_cast<size_t>(nPlug), DataType::kINT4);
        if (k.build->getOutputDataTypes(outTypes.data(), nPlug, inTypes.data(), nIn) != 0)
        {
            return "getOutputDataTypes failed";
        }
        for (int32_t j = nOut; j < nPlug; ++j)
        {
            if (outTypes[static_cast<size_t>(j)] != DataType::kINT64)
            {
                return "output " + std::to_string(j) + " (past the manifest's) is not an int64 size tensor";
            }
        }
        for (int32_t j = 0; j < nOut; ++j)
        {
            const DType* want = c.outputs[static_cast<size_t>(j)].dtype;
            const TrtType wantTrt = trtTypeOf(*want);
            if (!wantTrt.has || outTypes[static_cast<size_t>(j)] != wantTrt.type)
            {
                return "getOutputDataTypes: out" + std::to_string(j) + " is "
                    + trtTypeName(outTypes[static_cast<size_t>(j)]) + ", the manifest has " + want->name;
            }
        }
        return "";
    }

    // The engine could only hold this combination if the plugin accepted it at build time;
    // empty string when every linear input and output of the manifest's types is supported.
    static std::string checkFormats(const Caps& k, const Descriptors& d)
    {
        const int32_t nIn = static_cast<int32_t>(d.in.size());
        const int32_t nOut = static_cast<int32_t>(d.out.size());
        for (int32_t pos = 0; pos < nIn + nOut; ++pos)
        {
            if (!k.build->supportsFormatCombination(pos, d.dynAll.data(), nIn, nOut))
            {
                return "supportsFormatCombination rejects the linear " + std::string(pos < nIn ? "input " : "output ")
                    + std::to_string(pos < nIn ? pos : pos - nIn) + " of the manifest's types";
            }
        }
        return "";
    }

    // 1. the runtime plugin attached to an execution context, 2. a clone of it enqueued as is.
    void runAttachedAndClone(IPluginCreatorV3One* creator, const std::string& base, const Caps& k,
        ResourceContext& context, const Case& c, const Descriptors& d, const Reference& ref)
    {
        const std::string label = base + " runtime tactic 0";
        PluginPtr attached(k.rt->attachToContext(&context));
        Caps ka;
        std::string why = checkIdentity(attached.get(), creator, ka);
        if (!why.empty())
        {
            failOutputs(label, c, "attachToContext: " + why);
            return;
        }
        run(label, attached.get(), c, d, ref, true);
        const std::string cl = base + " clone tactic 0";
        PluginPtr cloned(attached->clone());
        Caps kc;
        why = checkIdentity(cloned.get(), creator, kc);
        if (!why.empty())
        {
            failOutputs(cl, c, "clone: " + why);
            return;
        }
        run(cl, cloned.get(), c, d, ref, false);
    }

    // 3. serialize (the last tactic when the plugin has several: the fields must carry it
    // over), recreate from the fields as engine deserialization does, attach, run.
    void runDeserialized(IPluginCreatorV3One* creator, const std::string& name, const std::string& base, const Caps& k,
        ResourceContext& context, const Case& c, const Descriptors& d, const Reference& ref)
    {
        const int32_t nbTactics = k.build->getNbTactics();
        const int32_t tactic = nbTactics > 0 ? nbTactics : 0;
        const std::string label = base + " deserialized tactic " + std::to_string(tactic);
        if (k.rt->setTactic(tactic) != 0)
        {
            failOutputs(label, c, "setTactic(" + std::to_string(tactic) + ") failed");
            return;
        }
        OwnedFields owned;
        std::string why;
        if (!copyFields(k.rt->getFieldsToSerialize(), owned, why))
        {
            failOutputs(label, c, why);
            return;
        }
        PluginPtr restored(creator->createPlugin(name.c_str(), &owned.fc, TensorRTPhase::kRUNTIME));
        Caps kr;
        why = checkIdentity(restored.get(), creator, kr);
        if (!why.empty())
        {
            failOutputs(label, c, "createPlugin(serialized fields, kRUNTIME): " + why);
            return;
        }
        int32_t back = -1;
        if (!readTacticField(kr.rt->getFieldsToSerialize(), back) || back != tactic)
        {
            failOutputs(label, c,
                "the recreated plugin serializes tactic " + std::to_string(back) + ", not " + std::to_string(tactic));
            return;
        }
        PluginPtr attached(kr.rt->attachToContext(&context));
        Caps ka;
        why = checkIdentity(attached.get(), creator, ka);
        if (!why.empty())
        {
            failOutputs(label, c, "attachToContext: " + why);
            return;
        }
        run(label, attached.get(), c, d, ref, true);
    }

    void checkCase(IPluginCreatorV3One* creator, const Manifest& m, const Case& c)
    {
        const std::string name = creator->getPluginName();
        const std::string base = name + " case " + std::to_string(c.index);
        logger.take();

        // runtime phase creation, as TensorRT does when it deserializes an engine
        int32_t tactic0 = 0;
        PluginField f0[] = {PluginField("tactic", &tactic0, PluginFieldType::kINT32, 1)};
        PluginFieldCollection fc0{1, f0};
        PluginPtr plugin(creator->createPlugin(name.c_str(), &fc0, TensorRTPhase::kRUNTIME));
        Caps k;
        std::string why = checkIdentity(plugin.get(), creator, k);
        if (!why.empty())
        {
            failOutputs(base, c, "createPlugin(kRUNTIME): " + why);
            return;
        }
        int32_t nSize = 0;
        why = checkDeclaredOutputs(k, c, nSize);
        if (!why.empty())
        {
            failOutputs(base, c, why);
            return;
        }
        const Descriptors d(c, nSize);
        why = checkFormats(k, d);
        if (!why.empty())
        {
            failOutputs(base, c, why);
            return;
        }
        const Reference ref(m, c);
        ResourceContext context;
        runAttachedAndClone(creator, base, k, context, c, d, ref);
        runDeserialized(creator, name, base, k, context, c, d, ref);
    }
};

void usage()
{
    std::fprintf(stderr,
        "usage: tpat_plugin_check LIBPLUGINS PROJECT_DIR [--verbose]\n"
        "  LIBPLUGINS   libtpat_plugins.so of the generated project\n"
        "  PROJECT_DIR  the generated project folder (OUT/plugins), holding <P>/reference/manifest.txt\n");
    std::exit(kExitError);
}

// Plugin folders of the project: every PROJECT_DIR/<P>/reference/manifest.txt.
std::set<std::string> pluginFolders(const std::string& dir)
{
    std::set<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr)
    {
        fatal("cannot open project folder %s: %s", dir.c_str(), std::strerror(errno));
    }
    while (dirent* e = ::readdir(d))
    {
        const std::string n = e->d_name;
        if (n == "." || n == ".." || n == "build")
        {
            continue;
        }
        if (fileExists(dir + "/" + n + "/reference/manifest.txt"))
        {
            names.insert(n);
        }
    }
    ::closedir(d);
    return names;
}

using GetCreatorsFn = IPluginCreatorInterface* const* (*)(int32_t&);
using SetLoggerFinderFn = void (*)(ILoggerFinder*);

// ---------------------------------------------------------------------------------------------
// steps of main: parse args, load the library, pair creators with reference data, open the
// device, check every case, report
// ---------------------------------------------------------------------------------------------

struct Options
{
    std::string libPath;
    std::string projectDir;
    bool verbose = false;
};

Options parseArgs(int argc, char** argv)
{
    Options o;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i)
    {
        const std::string a = argv[i];
        if (a == "--verbose" || a == "-v")
        {
            o.verbose = true;
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
    if (positional.size() != 2)
    {
        usage();
    }
    o.libPath = positional[0];
    o.projectDir = positional[1];
    while (o.projectDir.size() > 1 && o.projectDir.back() == '/')
    {
        o.projectDir.pop_back();
    }
    if (o.libPath.find('/') == std::string::npos)
    {
        o.libPath = "./" + o.libPath;  // dlopen searches the library path for bare names
    }
    return o;
}

// The library, as IPluginRegistry::loadLibrary opens it: the logger finder set, the creators.
IPluginCreatorInterface* const* loadLibrary(const std::string& libPath, Finder& finder, int32_t& nbCreators)
{
    void* lib = ::dlopen(libPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        fatal("dlopen %s: %s", libPath.c_str(), ::dlerror());
    }
    auto getCreators = reinterpret_cast<GetCreatorsFn>(::dlsym(lib, "getCreators"));
    auto setLoggerFinder = reinterpret_cast<SetLoggerFinderFn>(::dlsym(lib, "setLoggerFinder"));
    if (getCreators == nullptr || setLoggerFinder == nullptr)
    {
        fatal("%s does not export getCreators and setLoggerFinder", libPath.c_str());
    }
    setLoggerFinder(&finder);
    nbCreators = 0;
    IPluginCreatorInterface* const* creators = getCreators(nbCreators);
    if (creators == nullptr || nbCreators <= 0)
    {
        fatal("getCreators returned no creators (%d)", nbCreators);
    }
    return creators;
}

// A creator and the reference data of its plugin folder (if any).
struct Entry
{
    IPluginCreatorV3One* creator;
    std::string manifestPath;
    bool hasManifest;
    Manifest manifest;
};

// Every creator must be an IPluginCreatorV3One in namespace "tpat"; a bad manifest stops here,
// before the device.
std::vector<Entry> pairCreators(
    IPluginCreatorInterface* const* creators, int32_t nbCreators, const std::string& projectDir)
{
    std::vector<Entry> entries;
    for (int32_t i = 0; i < nbCreators; ++i)
    {
        IPluginCreatorInterface* ci = creators[i];
        if (ci == nullptr)
        {
            fatal("getCreators: creator %d is null", i);
        }
        const InterfaceInfo info = ci->getInterfaceInfo();
        if (info.kind == nullptr || std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0)
        {
            fatal("getCreators: creator %d is a %s, not an IPluginCreatorV3One", i, info.kind ? info.kind : "(null)");
        }
        auto* creator = static_cast<IPluginCreatorV3One*>(ci);
        const char* ns = creator->getPluginNamespace();
        if (ns == nullptr || std::strcmp(ns, "tpat") != 0)
        {
            fatal(
                "getCreators: creator %s has namespace '%s', not 'tpat'", creator->getPluginName(), ns ? ns : "(null)");
        }
        Entry e{creator, projectDir + "/" + creator->getPluginName() + "/reference/manifest.txt", false, Manifest{}};
        e.hasManifest = fileExists(e.manifestPath);
        if (e.hasManifest)
        {
            e.manifest = readManifest(e.manifestPath, kMaxDims, "bad rank (at most Dims::MAX_DIMS)");
            if (!e.manifest.plugin.empty() && e.manifest.plugin != creator->getPluginName())
            {
                fatal("%s is for plugin %s, not %s", e.manifestPath.c_str(), e.manifest.plugin.c_str(),
                    creator->getPluginName());
            }
        }
        entries.push_back(std::move(e));
    }
    return entries;
}

void printInventory(const std::string& libPath, int32_t nbCreators, const std::vector<Entry>& entries)
{
    std::printf("tpat_plugin_check: %s: %d creator(s)\n", libPath.c_str(), nbCreators);
    for (const Entry& e : entries)
    {
        if (e.hasManifest)
        {
            std::printf("  %s::%s v%s%s%s: %zu case(s)\n", e.creator->getPluginNamespace(), e.creator->getPluginName(),
                e.creator->getPluginVersion(), e.manifest.op.empty() ? "" : ", op ", e.manifest.op.c_str(),
                e.manifest.cases.size());
        }
        else
        {
            std::printf("  %s::%s v%s: no reference data (%s)\n", e.creator->getPluginNamespace(),
                e.creator->getPluginName(), e.creator->getPluginVersion(), e.manifestPath.c_str());
        }
    }
}

// Plugin folders holding reference data that the library does not provide.
std::vector<std::string> orphanFolders(const std::string& projectDir, const std::vector<Entry>& entries)
{
    std::set<std::string> withCreator;
    for (const Entry& e : entries)
    {
        withCreator.insert(e.creator->getPluginName());
    }
    std::vector<std::string> orphans;
    for (const std::string& n : pluginFolders(projectDir))
    {
        if (withCreator.count(n) == 0)
        {
            orphans.push_back(n);
        }
    }
    return orphans;
}

void openDevice()
{
    int devices = 0;
    const cudaError_t de = cudaGetDeviceCount(&devices);
    if (de != cudaSuccess || devices == 0)
    {
        fatal("no CUDA device (cudaGetDeviceCount: %s): the plugins cannot be enqueued here",
            de != cudaSuccess ? cudaGetErrorString(de) : "0 devices");
    }
    int device = 0;
    checkCuda(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    checkCuda(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    std::printf("tpat_plugin_check: device %s (sm_%d%d), TensorRT headers %d.%d.%d\n", prop.name, prop.major,
        prop.minor, NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, NV_TENSORRT_PATCH);
}

// Every case of every plugin with reference data; orphans fail. Returns the plugins skipped.
int checkAll(Checker& checker, const std::vector<Entry>& entries, const std::vector<std::string>& orphans,
    const std::string& libPath)
{
    int skipped = 0;
    for (const Entry& e : entries)
    {
        if (!e.hasManifest)
        {
            std::printf("plugin %s: no reference data: SKIPPED\n", e.creator->getPluginName());
            ++skipped;
            continue;
        }
        for (const Case& c : e.manifest.cases)
        {
            checker.checkCase(e.creator, e.manifest, c);
        }
    }
    for (const std::string& n : orphans)
    {
        std::printf("plugin %s: reference data but no creator in %s FAIL\n", n.c_str(), libPath.c_str());
        ++checker.failed;
    }
    return skipped;
}

}  // namespace

int main(int argc, char** argv)
{
    const Options opts = parseArgs(argc, argv);
    Logger logger;
    logger.verbose = opts.verbose;
    Finder finder(&logger);
    int32_t nbCreators = 0;
    IPluginCreatorInterface* const* creators = loadLibrary(opts.libPath, finder, nbCreators);
    const std::vector<Entry> entries = pairCreators(creators, nbCreators, opts.projectDir);
    printInventory(opts.libPath, nbCreators, entries);
    const std::vector<std::string> orphans = orphanFolders(opts.projectDir, entries);
    openDevice();

    Checker checker(logger);
    checker.verbose = opts.verbose;
    checkCuda(cudaStreamCreateWithFlags(&checker.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    const int skipped = checkAll(checker, entries, orphans, opts.libPath);
    if (skipped > 0)
    {
        std::printf("%d plugin(s) without reference data skipped\n", skipped);
    }
    cudaStreamDestroy(checker.stream);
    std::printf("%d passed, %d failed\n", checker.passed, checker.failed);
    std::fflush(stdout);
    if (checker.passed + checker.failed == 0)
    {
        std::fprintf(stderr, "tpat_plugin_check: error: nothing was checked (no plugin has reference data)\n");
        return kExitError;
    }
    return checker.failed == 0 ? kExitPass : kExitMismatch;
}
