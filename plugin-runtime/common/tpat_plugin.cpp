/*
 * TPAT generic TensorRT plugin (see tpat_plugin.h and docs/plugin-runtime.md).
 */
#include "tpat_plugin.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

using namespace nvinfer1;

namespace tpat
{

// ---------------------------------------------------------------------------------------------
// Logging

namespace
{
std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

// Launcher constants are process-wide per plugin spec: initialize() on the first plugin object
// that needs them, terminate() when the last such object goes away.
std::mutex gInitMutex;
std::map<PluginSpec const*, int32_t>& initCounts()
{
    // Leaked on purpose: plugin objects may be destroyed during static destruction at exit.
    static auto* counts = new std::map<PluginSpec const*, int32_t>();
    return *counts;
}

char const* codeName(int code) noexcept
{
    switch (code)
    {
    case TPAT_OK: return "TPAT_OK";
    case TPAT_BAD_DIMS: return "TPAT_BAD_DIMS";
    case TPAT_CUDA_ERROR: return "TPAT_CUDA_ERROR";
    case TPAT_BAD_TACTIC: return "TPAT_BAD_TACTIC";
    default: return "unknown launcher error";
    }
}

std::string describe(char const* what, int code)
{
    return std::string(what) + " failed: " + codeName(code) + " (" + std::to_string(code) + ")";
}
}  // namespace

void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    if (gLoggerFinder == nullptr && finder != nullptr)
    {
        gLoggerFinder = finder;
    }
}

ILogger* getLogger() noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    return gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
}

void log(ILogger::Severity severity, char const* plugin, char const* msg) noexcept
{
    try
    {
        std::string line
            = std::string("[tpat] ") + (plugin != nullptr ? plugin : "?") + ": " + (msg != nullptr ? msg : "");
        if (ILogger* logger = getLogger())
        {
            logger->log(severity, line.c_str());
        }
        else if (severity <= ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", line.c_str());
        }
    }
    catch (...)
    {
    }
}

bool toTpatDims(Dims const& in, tpat_dims& out) noexcept
{
    if (in.nbDims < 0 || in.nbDims > TPAT_MAX_DIMS)
    {
        return false;
    }
    out.nb_dims = in.nbDims;
    for (int32_t i = 0; i < TPAT_MAX_DIMS; ++i)
    {
        out.d[i] = i < in.nbDims ? static_cast<int64_t>(in.d[i]) : 0;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Plugin

Plugin::Plugin(PluginSpec const& spec, int32_t tactic)
    : mSpec(spec)
    , mTactic(tactic)
    , mInputDims(static_cast<size_t>(spec.nbInputs > 0 ? spec.nbInputs : 0), tpat_dims{})
    , mScratch(mInputDims.size(), tpat_dims{})
    , mMetadata(std::string(spec.pluginNamespace) + "::" + spec.name + " v" + spec.version)
{
}

Plugin::Plugin(Plugin const& other)
    : IPluginV3(other)
    , IPluginV3OneCore(other)
    , IPluginV3OneBuild(other)
    , IPluginV3OneRuntime(other)
    , mSpec(other.mSpec)
    , mTactic(other.mTactic)
    , mInitialized(false)  // a clone takes its own reference when it needs the constants
    , mInputDims(other.mInputDims)
    , mScratch(other.mScratch)
    , mMetadata(other.mMetadata)
{
}

Plugin::~Plugin()
{
    if (!mInitialized)
    {
        return;
    }
    std::lock_guard<std::mutex> lock(gInitMutex);
    auto& counts = initCounts();
    auto it = counts.find(&mSpec);
    if (it != counts.end() && --it->second <= 0)
    {
        counts.erase(it);
        if (mSpec.terminate != nullptr)
        {
            mSpec.terminate();
        }
    }
}

bool Plugin::ensureInitialized() noexcept
{
    if (mInitialized)
    {
        return true;
    }
    try
    {
        std::lock_guard<std::mutex> lock(gInitMutex);
        int code = mSpec.initialize != nullptr ? mSpec.initialize() : TPAT_OK;
        if (code != TPAT_OK)
        {
            error(describe("initialize", code).c_str());
            return false;
        }
        ++initCounts()[&mSpec];
        mInitialized = true;
        return true;
    }
    catch (...)
    {
        error("initialize failed: exception");
        return false;
    }
}

void Plugin::error(char const* msg) const noexcept
{
    log(ILogger::Severity::kERROR, mSpec.name, msg);
}

IPluginCapability* Plugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* Plugin::clone() noexcept
{
    try
    {
        return new Plugin(*this);
    }
    catch (...)
    {
        error("clone failed: out of memory");
        return nullptr;
    }
}

char const* Plugin::getPluginName() const noexcept
{
    return mSpec.name;
}

char const* Plugin::getPluginVersion() const noexcept
{
    return mSpec.version;
}

char const* Plugin::getPluginNamespace() const noexcept
{
    return mSpec.pluginNamespace;
}

int32_t Plugin::getNbOutputs() const noexcept
{
    return mSpec.nbOutputs;
}

int32_t Plugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* /*inputTypes*/, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || nbOutputs != mSpec.nbOutputs || nbInputs != mSpec.nbInputs)
    {
        error("getOutputDataTypes: unexpected number of inputs or outputs");
        return -1;
    }
    for (int32_t i = 0; i < nbOutputs; ++i)
    {
        outputTypes[i] = mSpec.outputTypes[i];
    }
    return 0;
}

int32_t Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    try
    {
        if (inputs == nullptr || outputs == nullptr || nbInputs != mSpec.nbInputs || nbOutputs != mSpec.nbOutputs)
        {
            error("getOutputShapes: unexpected number of inputs or outputs");
            return -1;
        }
        if (mSpec.outputShapes == nullptr || !mSpec.outputShapes(inputs, nbInputs, outputs, exprBuilder))
        {
            error("getOutputShapes: input shapes not accepted by the plugin");
            return -1;
        }
        return 0;
    }
    catch (...)
    {
        error("getOutputShapes: exception");
        return -1;
    }
}

bool Plugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != mSpec.nbInputs || nbOutputs != mSpec.nbOutputs || pos < 0
        || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    DataType const want = pos < nbInputs ? mSpec.inputTypes[pos] : mSpec.outputTypes[pos - nbInputs];
    PluginTensorDesc const& desc = inOut[pos].desc;
    return desc.type == want && desc.format == TensorFormat::kLINEAR;
}

int32_t Plugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || nbInputs != mSpec.nbInputs || nbOutputs != mSpec.nbOutputs)
    {
        error("configurePlugin: unexpected number of inputs or outputs");
        return -1;
    }
    (void)out;
    // Shapes may still hold -1 for dynamic dims here; keep the max dims (all concrete) for the
    // workspace query and check the launcher accepts them.
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        if (!toTpatDims(in[i].max, mInputDims[static_cast<size_t>(i)]))
        {
            error("configurePlugin: rank exceeds TPAT_MAX_DIMS");
            return -1;
        }
    }
    if (mSpec.workspaceSize != nullptr)
    {
        size_t bytes = 0;
        int code = mSpec.workspaceSize(mInputDims.data(), &bytes);
        if (code != TPAT_OK)
        {
            error(describe("configurePlugin: workspace_size for the profile's max shapes", code).c_str());
            return -1;
        }
    }
    return 0;
}

size_t Plugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    if (mSpec.workspaceSize == nullptr || inputs == nullptr || nbInputs != mSpec.nbInputs)
    {
        return 0;
    }
    try
    {
        std::vector<tpat_dims> dims(static_cast<size_t>(nbInputs), tpat_dims{});
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            if (!toTpatDims(inputs[i].max, dims[static_cast<size_t>(i)]))
            {
                error("getWorkspaceSize: rank exceeds TPAT_MAX_DIMS");
                return 0;
            }
        }
        size_t bytes = 0;
        int code = mSpec.workspaceSize(dims.data(), &bytes);
        if (code != TPAT_OK)
        {
            error(describe("getWorkspaceSize: workspace_size", code).c_str());
            return 0;
        }
        return bytes;
    }
    catch (...)
    {
        error("getWorkspaceSize: exception");
        return 0;
    }
}

int32_t Plugin::getNbTactics() noexcept
{
    return mSpec.nbTactics > 1 ? mSpec.nbTactics : 0;
}

int32_t Plugin::getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept
{
    if (mSpec.nbTactics <= 1)
    {
        return 0;
    }
    if (tactics == nullptr || nbTactics != mSpec.nbTactics)
    {
        error("getValidTactics: unexpected tactic buffer");
        return -1;
    }
    for (int32_t i = 0; i < nbTactics; ++i)
    {
        tactics[i] = i + 1;  // TensorRT reserves 0 for the default tactic
    }
    return 0;
}

char const* Plugin::getMetadataString() noexcept
{
    return mMetadata.c_str();
}

int32_t Plugin::setTactic(int32_t tactic) noexcept
{
    if (tactic < 0 || tactic > (mSpec.nbTactics > 1 ? mSpec.nbTactics : 0))
    {
        error(("setTactic: tactic " + std::to_string(tactic) + " out of range").c_str());
        return -1;
    }
    mTactic = tactic;
    return 0;
}

int32_t Plugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || nbInputs != mSpec.nbInputs || nbOutputs != mSpec.nbOutputs)
    {
        error("onShapeChange: unexpected number of inputs or outputs");
        return -1;
    }
    (void)out;
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        if (!toTpatDims(in[i].dims, mInputDims[static_cast<size_t>(i)]))
        {
            error("onShapeChange: rank exceeds TPAT_MAX_DIMS");
            return -1;
        }
    }
    return 0;
}

int32_t Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    if (mSpec.enqueue == nullptr || inputDesc == nullptr)
    {
        error("enqueue: no launcher");
        return -1;
    }
    // Build-phase timing on a GPU enqueues without attachToContext: take the constants here then
    // (a no-op flag check once done).
    if (!ensureInitialized())
    {
        return -1;
    }
    for (int32_t i = 0; i < mSpec.nbInputs; ++i)
    {
        if (!toTpatDims(inputDesc[i].dims, mScratch[static_cast<size_t>(i)]))
        {
            error("enqueue: rank exceeds TPAT_MAX_DIMS");
            return -1;
        }
    }
    int32_t const launcherTactic = mTactic > 0 ? mTactic - 1 : 0;
    int code = mSpec.enqueue(mScratch.data(), inputs, outputs, workspace, launcherTactic, stream);
    if (code != TPAT_OK)
    {
        error(describe("enqueue", code).c_str());
        return -1;
    }
    return 0;
}

IPluginV3* Plugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    Plugin* p = static_cast<Plugin*>(clone());
    if (p == nullptr)
    {
        return nullptr;
    }
    if (!p->ensureInitialized())
    {
        delete p;
        return nullptr;
    }
    return p;
}

PluginFieldCollection const* Plugin::getFieldsToSerialize() noexcept
{
    mFields.clear();
    mFields.emplace_back("tactic", &mTactic, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFields.size());
    mFC.fields = mFields.data();
    return &mFC;
}

// ---------------------------------------------------------------------------------------------
// Creator

PluginCreator::PluginCreator(PluginSpec const& spec)
    : mSpec(spec)
{
    mFieldNames.emplace_back("tactic", nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFC.fields = mFieldNames.data();
}

IPluginV3* PluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        int32_t tactic = 0;
        if (fc != nullptr && fc->fields != nullptr)
        {
            for (int32_t i = 0; i < fc->nbFields; ++i)
            {
                PluginField const& f = fc->fields[i];
                if (f.name == nullptr || std::strcmp(f.name, "tactic") != 0 || f.data == nullptr || f.length < 1)
                {
                    continue;  // other fields (ONNX attributes) carry nothing the runtime needs
                }
                if (f.type == PluginFieldType::kINT32)
                {
                    tactic = *static_cast<int32_t const*>(f.data);
                }
                else if (f.type == PluginFieldType::kINT64)
                {
                    tactic = static_cast<int32_t>(*static_cast<int64_t const*>(f.data));
                }
            }
        }
        int32_t const maxTactic = mSpec.nbTactics > 1 ? mSpec.nbTactics : 0;
        if (tactic < 0 || tactic > maxTactic)
        {
            log(ILogger::Severity::kERROR, mSpec.name,
                ("createPlugin: serialized tactic " + std::to_string(tactic) + " out of range").c_str());
            return nullptr;
        }
        return new Plugin(mSpec, tactic);
    }
    catch (...)
    {
        log(ILogger::Severity::kERROR, mSpec.name, "createPlugin: exception");
        return nullptr;
    }
}

PluginFieldCollection const* PluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

char const* PluginCreator::getPluginName() const noexcept
{
    return mSpec.name;
}

char const* PluginCreator::getPluginVersion() const noexcept
{
    return mSpec.version;
}

char const* PluginCreator::getPluginNamespace() const noexcept
{
    return mSpec.pluginNamespace;
}

}  // namespace tpat
