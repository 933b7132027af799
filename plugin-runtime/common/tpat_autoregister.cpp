/*
 * Static registration, linked only into libtpat_plugins_static.so: when the library is loaded
 * (trtexec --staticPlugins, dlopen, Python ctypes.CDLL) its creators register themselves with
 * the plugin registry of the TensorRT library already loaded in the process, the way TensorRT's
 * REGISTER_TENSORRT_PLUGIN does, but without linking a TensorRT library: getPluginRegistry is
 * looked up at load time (the global scope first, as in trtexec, which links libnvinfer; then
 * TensorRT / TensorRT-RTX libraries loaded with RTLD_LOCAL, e.g. by Python bindings). Without a
 * loaded TensorRT it registers nothing and says so on stderr.
 *
 * libtpat_plugins.so does not hold this file: IPluginRegistry::loadLibrary registers the creators
 * from getCreators itself, and fails when they are already registered.
 */
#include "tpat_plugin.h"

#include <dlfcn.h>

#include <cstdio>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{
using GetPluginRegistry = nvinfer1::IPluginRegistry* (*)();

GetPluginRegistry findGetPluginRegistry() noexcept
{
    if (void* f = ::dlsym(RTLD_DEFAULT, "getPluginRegistry"))
    {
        return reinterpret_cast<GetPluginRegistry>(f);
    }
    for (char const* name : {"libnvinfer.so.11", "libnvinfer.so.10", "libnvinfer.so", "libtensorrt_rtx.so.1",
             "libtensorrt_rtx.so", "libnvinfer_lean.so.11", "libnvinfer_lean.so.10"})
    {
        if (void* handle = ::dlopen(name, RTLD_LAZY | RTLD_NOLOAD))
        {
            void* f = ::dlsym(handle, "getPluginRegistry");
            ::dlclose(handle);  // drops only the reference NOLOAD took
            if (f != nullptr)
            {
                return reinterpret_cast<GetPluginRegistry>(f);
            }
        }
    }
    return nullptr;
}

struct AutoRegister
{
    AutoRegister() noexcept
    {
        GetPluginRegistry get = findGetPluginRegistry();
        nvinfer1::IPluginRegistry* registry = get != nullptr ? get() : nullptr;
        if (registry == nullptr)
        {
            std::fprintf(stderr,
                "[tpat] libtpat_plugins_static: no TensorRT library loaded in this process, "
                "plugins not registered (load TensorRT first, or use libtpat_plugins.so with "
                "loadLibrary / --dynamicPlugins)\n");
            return;
        }
        int32_t n = 0;
        nvinfer1::IPluginCreatorInterface* const* creators = getCreators(n);
        for (int32_t i = 0; i < n; ++i)
        {
            auto* creator = static_cast<tpat::PluginCreator*>(creators[i]);
            if (!registry->registerCreator(*creator, creator->getPluginNamespace()))
            {
                std::fprintf(stderr, "[tpat] libtpat_plugins_static: %s::%s not registered (already registered?)\n",
                    creator->getPluginNamespace(), creator->getPluginName());
            }
        }
    }
};

AutoRegister const gAutoRegister;
}  // namespace
