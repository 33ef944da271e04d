# Defines ember::blas (an imported target with a CBLAS header and library) for EMBER_BLAS.
if(TARGET ember::blas)
  return()
endif()
if(NOT EMBER_BLAS)
  set(EMBER_BLAS openblas)
endif()
if(EMBER_BLAS STREQUAL "openblas")
  find_path(EMBER_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu/openblas-pthread)
  find_library(EMBER_BLAS_LIBRARY NAMES openblas PATH_SUFFIXES openblas-pthread)
elseif(EMBER_BLAS STREQUAL "blis")
  # Debian ships BLIS's CBLAS header per threading variant (blis-openmp, blis-pthread, blis-serial).
  find_path(EMBER_CBLAS_INCLUDE cblas.h NO_DEFAULT_PATH
            PATHS /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/include
            PATH_SUFFIXES blis-pthread blis-openmp blis-serial blis)
  find_library(EMBER_BLAS_LIBRARY NAMES blis blis-mt)
else()
  message(FATAL_ERROR "EMBER_BLAS must be openblas or blis (got '${EMBER_BLAS}')")
endif()
if(NOT EMBER_CBLAS_INCLUDE OR NOT EMBER_BLAS_LIBRARY)
  message(FATAL_ERROR "BLAS '${EMBER_BLAS}' not found: apt-get install libopenblas-dev (or libblis-dev)")
endif()
add_library(ember::blas INTERFACE IMPORTED)
set_target_properties(ember::blas PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${EMBER_CBLAS_INCLUDE}"
  INTERFACE_LINK_LIBRARIES "${EMBER_BLAS_LIBRARY}")
