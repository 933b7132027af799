/*
 * TPAT generic TensorRT plugin: one IPluginV3 class and one IPluginCreatorV3One class for every
 * generated plugin, each driven by a tpat::PluginSpec (generated per plugin in P/P_plugin.cpp)
 * whose function pointers reach that plugin's launcher (tpat_launcher_abi.h).
 *
 * Built against the public TensorRT headers (NvInfer.h, TensorRT 10.x/11.x, TensorRT-RTX); needs
 * no TensorRT library at link time: every TensorRT type used here is an interface or inline.
 */
#ifndef TPAT_PLUGIN_H
#define TPAT_PLUGIN_H

#include "NvInfer.h"
#include "tpat_dimexpr_trt.h"
#include "tpat_launcher_abi.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tpat
{

struct PluginSpec
{
    char const* name;             // TensorRT plugin name = ONNX op_type
    char const* version;          // "1"
    char const* pluginNamespace;  // "tpat"
    int32_t nbInputs;
    int32_t nbOutputs;
    nvinfer1::DataType const* inputTypes;   // nbInputs entries
    nvinfer1::DataType const* outputTypes;  // nbOutputs entries
    // Symbolic output shapes through IExprBuilder; false when the inputs are not acceptable.
    bool (*outputShapes)(
        nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& b);
    // The launcher's C ABI (tpat_<P>_*).
    int (*workspaceSize)(tpat_dims const*, size_t*);
    int (*initialize)(void);
    int (*enqueue)(tpat_dims const*, void const* const*, void* const*, void*, int32_t, cudaStream_t);
    void (*terminate)(void);
    int32_t nbTactics;  // >= 1
};

//! Logger reached through the ILoggerFinder TensorRT gives setLoggerFinder (nullptr before that).
nvinfer1::ILogger* getLogger() noexcept;
//! Records the finder (first non-null one wins, like NVIDIA's plugins).
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
//! Logs "[tpat] <plugin>: <msg>" through getLogger(), or to stderr when there is none.
void log(nvinfer1::ILogger::Severity severity, char const* plugin, char const* msg) noexcept;

//! TensorRT Dims -> launcher dims; false when the rank exceeds TPAT_MAX_DIMS or is negative.
bool toTpatDims(nvinfer1::Dims const& in, tpat_dims& out) noexcept;

class Plugin : public nvinfer1::IPluginV3,
               public nvinfer1::IPluginV3OneCore,
               public nvinfer1::IPluginV3OneBuild,
               public nvinfer1::IPluginV3OneRuntime
{
public:
    // tactic: TensorRT tactic id (0 = default, else 1..nbTactics).
    Plugin(PluginSpec const& spec, int32_t tactic);
    Plugin(Plugin const& other);
    Plugin& operator=(Plugin const&) = delete;
    ~Plugin() override;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override;
    int32_t getNbTactics() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t setTactic(int32_t tactic) noexcept override;
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    // Introspection (tests, tpat_check).
    PluginSpec const& spec() const noexcept { return mSpec; }
    int32_t tactic() const noexcept { return mTactic; }
    std::vector<tpat_dims> const& inputDims() const noexcept { return mInputDims; }

private:
    bool ensureInitialized() noexcept;
    void error(char const* msg) const noexcept;

    PluginSpec const& mSpec;
    int32_t mTactic{0};                 // TensorRT tactic id: 0 default, 1..nbTactics
    bool mInitialized{false};           // this object holds a reference on the launcher's constants
    std::vector<tpat_dims> mInputDims;  // last concrete input dims (configurePlugin / onShapeChange)
    std::vector<tpat_dims> mScratch;    // enqueue's dims, preallocated (enqueue allocates nothing)
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFC{};
    std::string mMetadata;
};

class PluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    explicit PluginCreator(PluginSpec const& spec);
    ~PluginCreator() override = default;

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    PluginSpec const& spec() const noexcept { return mSpec; }

private:
    PluginSpec const& mSpec;
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFC{};
};

//! The Expr operators over IExprBuilder (tpat::dimexpr) are in tpat_dimexpr_trt.h.

}  // namespace tpat

#endif  // TPAT_PLUGIN_H
