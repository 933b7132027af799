# FindTensorRT.cmake: TensorRT headers (required) and library (optional).
#
# Hints, in order: the TensorRT_ROOT CMake variable, the TensorRT_ROOT environment variable, then
# the usual system places (/usr, /usr/local/tensorrt, /opt/tensorrt, CUDA toolkit).
# Accepts a full TensorRT install (libnvinfer.so) or TensorRT-RTX (libtensorrt_rtx.so[.1]).
# A headers-only tree (e.g. TensorRT_ROOT/include/NvInfer.h) is enough for plugin libraries:
# they need no TensorRT library at link time.
#
# Defines:
#   TensorRT_FOUND          headers found
#   TensorRT_INCLUDE_DIRS   folder holding NvInfer.h
#   TensorRT_LIBRARY        libnvinfer / libtensorrt_rtx when found
#   TensorRT_LIBRARIES      same, as a list (empty when no library)
#   TensorRT_VERSION        from NvInferVersion.h (TRT_MAJOR_ENTERPRISE / NV_TENSORRT_MAJOR ...)
#   TensorRT::headers       INTERFACE target with the include folder
#   TensorRT::nvinfer       IMPORTED target (library + headers), only when a library is found

set(_tpat_trt_hints)
if(DEFINED TensorRT_ROOT AND NOT "${TensorRT_ROOT}" STREQUAL "")
  list(APPEND _tpat_trt_hints "${TensorRT_ROOT}")
endif()
if(DEFINED ENV{TensorRT_ROOT} AND NOT "$ENV{TensorRT_ROOT}" STREQUAL "")
  list(APPEND _tpat_trt_hints "$ENV{TensorRT_ROOT}")
endif()

find_path(TensorRT_INCLUDE_DIR
  NAMES NvInfer.h
  HINTS ${_tpat_trt_hints}
  PATH_SUFFIXES include include/tensorrt include/x86_64-linux-gnu include/aarch64-linux-gnu
  PATHS /usr/local/tensorrt /opt/tensorrt /usr/local/TensorRT /usr)

find_library(TensorRT_LIBRARY
  NAMES nvinfer tensorrt_rtx libtensorrt_rtx.so.1 libnvinfer.so.10 libnvinfer.so.11
  HINTS ${_tpat_trt_hints}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu targets/x86_64-linux/lib
  PATHS /usr/local/tensorrt /opt/tensorrt /usr/local/TensorRT /usr)

set(TensorRT_VERSION "")
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(READ "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _tpat_trt_ver)
  foreach(_part MAJOR MINOR PATCH)
    set(_v "")
    if(_tpat_trt_ver MATCHES "#define[ \t]+TRT_${_part}_ENTERPRISE[ \t]+([0-9]+)")
      set(_v "${CMAKE_MATCH_1}")
    elseif(_tpat_trt_ver MATCHES "#define[ \t]+NV_TENSORRT_${_part}[ \t]+([0-9]+)")
      set(_v "${CMAKE_MATCH_1}")
    elseif(_tpat_trt_ver MATCHES "#define[ \t]+TRT_${_part}_RTX[ \t]+([0-9]+)")
      set(_v "${CMAKE_MATCH_1}")
    endif()
    set(_tpat_trt_${_part} "${_v}")
  endforeach()
  if(NOT "${_tpat_trt_MAJOR}" STREQUAL "")
    set(TensorRT_VERSION "${_tpat_trt_MAJOR}.${_tpat_trt_MINOR}.${_tpat_trt_PATCH}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR
  VERSION_VAR TensorRT_VERSION)

if(TensorRT_FOUND)
  set(TensorRT_INCLUDE_DIRS "${TensorRT_INCLUDE_DIR}")
  if(NOT TARGET TensorRT::headers)
    add_library(TensorRT::headers INTERFACE IMPORTED)
    set_target_properties(TensorRT::headers PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
  endif()
  if(TensorRT_LIBRARY)
    set(TensorRT_LIBRARIES "${TensorRT_LIBRARY}")
    if(NOT TARGET TensorRT::nvinfer)
      add_library(TensorRT::nvinfer UNKNOWN IMPORTED)
      set_target_properties(TensorRT::nvinfer PROPERTIES
        IMPORTED_LOCATION "${TensorRT_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
    endif()
  else()
    set(TensorRT_LIBRARIES "")
  endif()
endif()

mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_LIBRARY)
unset(_tpat_trt_hints)
unset(_tpat_trt_ver)
