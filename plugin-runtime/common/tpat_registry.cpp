/*
 * Entry points TensorRT looks up in a plugin library (IPluginRegistry::loadLibrary,
 * trtexec --dynamicPlugins, `registry.load_library(path)` in Python):
 *   setLoggerFinder: the logger finder the plugins log through;
 *   getCreators:     one IPluginCreatorV3One per generated plugin spec.
 *
 * The generated code (tpat_plugin_specs.cpp) provides the spec list:
 *   extern const tpat::PluginSpec* const tpat_plugin_specs[];
 *   extern const int32_t tpat_plugin_spec_count;
 */
#include "tpat_plugin.h"

#include <memory>
#include <vector>

extern const tpat::PluginSpec* const tpat_plugin_specs[];
extern const int32_t tpat_plugin_spec_count;

// TENSORRTAPI exports only when TENSORRT_BUILD_LIB is defined; the library is built with hidden
// visibility, so export the two entry points explicitly.
#if defined(_WIN32)
#define TPAT_PLUGIN_EXPORT __declspec(dllexport)
#else
#define TPAT_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

namespace
{
struct CreatorTable
{
    std::vector<std::unique_ptr<tpat::PluginCreator>> owned;
    std::vector<nvinfer1::IPluginCreatorInterface*> pointers;

    CreatorTable()
    {
        for (int32_t i = 0; i < tpat_plugin_spec_count; ++i)
        {
            if (tpat_plugin_specs[i] == nullptr)
            {
                continue;
            }
            owned.emplace_back(new tpat::PluginCreator(*tpat_plugin_specs[i]));
            pointers.push_back(owned.back().get());
        }
    }
};

CreatorTable* creatorTable() noexcept
{
    try
    {
        // Created once (thread-safe magic static) and never destroyed: TensorRT's registry may
        // still hold the creators while static objects are destroyed at exit.
        static CreatorTable* table = new CreatorTable();
        return table;
    }
    catch (...)
    {
        return nullptr;
    }
}
}  // namespace

extern "C" TPAT_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    tpat::setLoggerFinder(finder);
}

extern "C" TPAT_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    CreatorTable* table = creatorTable();
    if (table == nullptr)
    {
        nbCreators = 0;
        return nullptr;
    }
    nbCreators = static_cast<int32_t>(table->pointers.size());
    return table->pointers.data();
}
