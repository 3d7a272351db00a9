# Install rules and package files for `cmake --install`: public headers, the
# layer libraries, the find_package(qfx) config and qfx.pc (docs/using-qfx.md).
# Included from the top-level CMakeLists.txt after lib/ and tools/.

include(CMakePackageConfigHelpers)

set(QFX_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/qfx)

# Public headers only: lib/**.h are the layers' private headers.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qfx
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT qfx_development)

# The layers, qfx::qfx and the targets their link interface names: the
# compile options (qfx::options, which also carries the include directory)
# and the dependency glue (qfx::llvm, qfx::dnnl, qfx::openmp, qfx::zlib;
# third_party/CMakeLists.txt).
install(TARGETS ${QFX_LAYERS} qfx_all qfx_options
                qfx_llvm qfx_dnnl qfx_openmp qfx_zlib qfx_onnx
        EXPORT qfxTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT qfx_development)
install(EXPORT qfxTargets
        NAMESPACE qfx::
        FILE qfxTargets.cmake
        DESTINATION ${QFX_INSTALL_CMAKEDIR}
        COMPONENT qfx_development)

# Where this build found LLVM: the config tries it first, then Debian's
# llvm-14 location, then the consumer's own search (LLVM_DIR, prefixes).
set(hints ${LLVM_DIR} /usr/lib/llvm-14/lib/cmake/llvm)
list(REMOVE_DUPLICATES hints)
set(QFX_LLVM_HINTS "")
foreach(hint ${hints})
  string(APPEND QFX_LLVM_HINTS " \"${hint}\"")
endforeach()
string(STRIP "${QFX_LLVM_HINTS}" QFX_LLVM_HINTS)
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/qfxConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/qfxConfig.cmake
  INSTALL_DESTINATION ${QFX_INSTALL_CMAKEDIR}
  NO_SET_AND_CHECK_MACRO)
# 0.x: a minor version may break the API, so only 0.1.* satisfies 0.1.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/package/qfxConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/package/qfxConfig.cmake
              ${PROJECT_BINARY_DIR}/package/qfxConfigVersion.cmake
        DESTINATION ${QFX_INSTALL_CMAKEDIR}
        COMPONENT qfx_development)

# qfx.pc: the same libraries as a flat link line. The layers are static, so
# everything they use is in Libs (not Libs.private), in link order.
set(QFX_PC_LIBS "")
foreach(layer ${QFX_LAYERS})
  string(APPEND QFX_PC_LIBS " -l$<TARGET_FILE_BASE_NAME:${layer}>")
endforeach()
string(STRIP "${QFX_PC_LIBS}" QFX_PC_LIBS)

# LLVM Support as this build links it (static archives and their system
# libraries), from llvm-config; the shared libLLVM-14 is the fallback.
set(QFX_PC_LLVM_LIBS "-lLLVM-${QFX_LLVM_VERSION_MAJOR}")
find_program(QFX_LLVM_CONFIG llvm-config
             HINTS ${QFX_LLVM_TOOLS_BINARY_DIR} NO_DEFAULT_PATH)
if(QFX_LLVM_CONFIG)
  execute_process(
    COMMAND ${QFX_LLVM_CONFIG} --link-static --libs support --system-libs
    OUTPUT_VARIABLE llvm_libs
    RESULT_VARIABLE llvm_config_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(llvm_config_rc EQUAL 0 AND llvm_libs)
    string(REPLACE "\n" " " QFX_PC_LLVM_LIBS "${llvm_libs}")
  endif()
endif()
set(QFX_PC_LLVM_LIBS "-L${QFX_LLVM_LIBRARY_DIR} ${QFX_PC_LLVM_LIBS}")

set(QFX_PC_OPENMP_LIBS "")
foreach(lib ${OpenMP_CXX_LIB_NAMES})
  string(APPEND QFX_PC_OPENMP_LIBS " -l${lib}")
endforeach()
string(STRIP "${QFX_PC_OPENMP_LIBS}" QFX_PC_OPENMP_LIBS)

set(QFX_PC_LLVM_CFLAGS "-I${QFX_LLVM_INCLUDE_DIRS}")
foreach(def ${QFX_LLVM_DEFINITIONS})
  string(APPEND QFX_PC_LLVM_CFLAGS " ${def}")
endforeach()

# ${pcfiledir} keeps the installed prefix movable: prefix is found relative to
# the .pc file, whatever CMAKE_INSTALL_LIBDIR is.
file(RELATIVE_PATH QFX_PC_TO_PREFIX
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" QFX_PC_TO_PREFIX "${QFX_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/qfx.pc.in
               ${PROJECT_BINARY_DIR}/package/qfx.pc.configured @ONLY)
# Second pass for the generator expressions (library file names).
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/package/qfx.pc
     INPUT ${PROJECT_BINARY_DIR}/package/qfx.pc.configured)
install(FILES ${PROJECT_BINARY_DIR}/package/qfx.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT qfx_development)

# Documentation.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT qfx_documentation)
install(FILES ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT qfx_documentation)
