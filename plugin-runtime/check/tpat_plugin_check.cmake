# tpat_plugin_check: runs every plugin through libtpat_plugins.so the way TensorRT's runtime does
# (plugin-runtime/check/tpat_plugin_check.cpp; docs/plugin-runtime.md). Included by the generated
# CMakeLists.txt inside its "TensorRT headers found" branch, after the tpat_plugins target.
#
# The checker dlopens libtpat_plugins.so at run time and dlsyms getCreators / setLoggerFinder, so
# it does not link tpat_plugins (nor any TensorRT library); it needs the TensorRT headers, the
# CUDA runtime and libdl. Run it from the project folder as
#   build/tpat_plugin_check build/libtpat_plugins.so .
add_executable(tpat_plugin_check check/tpat_plugin_check.cpp)
target_include_directories(tpat_plugin_check SYSTEM PRIVATE ${TensorRT_INCLUDE_DIRS} ${CUDAToolkit_INCLUDE_DIRS})
# The static CUDA runtime when the toolkit has one (as the launchers link it): the checker then
# runs where no libcudart.so is installed; both runtimes share the device's primary context.
if(TARGET CUDA::cudart_static)
  target_link_libraries(tpat_plugin_check PRIVATE CUDA::cudart_static ${CMAKE_DL_LIBS})
else()
  target_link_libraries(tpat_plugin_check PRIVATE CUDA::cudart ${CMAKE_DL_LIBS})
endif()
set_target_properties(tpat_plugin_check PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  BUILD_RPATH "$ORIGIN"
  INSTALL_RPATH "$ORIGIN")
# built with the library it checks
add_dependencies(tpat_plugin_check tpat_plugins)
