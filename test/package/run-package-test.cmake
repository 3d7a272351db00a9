# Driver of the "package:" tests (cmake -P): installs the build tree into a
# prefix under the test's work directory, moves that prefix (the install must
# be relocatable) and builds and runs test/package/consumer against it, once
# through find_package(qfx) and once through pkg-config. Writes only under
# WORK_DIR, which each run cleans first.
#
# -D variables:
#   MODE          install | find_package | pkg-config
#   WORK_DIR      scratch directory (inside the build tree)
#   QFX_BUILD_DIR the qfx build tree to install
#   QFX_SOURCE_DIR the qfx source tree (must not leak into installed files)
#   CONSUMER_DIR  test/package/consumer
#   LIBDIR, BINDIR, INCLUDEDIR, DATADIR, DOCDIR  the GNUInstallDirs layout
#   GENERATOR, CXX, BUILD_TYPE  for the consumer builds
#   PKG_CONFIG    pkg-config executable (pkg-config mode)
cmake_minimum_required(VERSION 3.20)

set(prefix ${WORK_DIR}/prefix)

# Runs a command, echoing it, and stops the test if it fails. Its standard
# output is returned in OUT_VAR.
function(run_checked out_var)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "$ ${shown}")
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${shown}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "install")
  # Install into a staging prefix, check it, then move it: consumers only
  # ever see the moved prefix, so any absolute path of the staging prefix
  # (or of the build or source tree) left in an installed file breaks them.
  file(REMOVE_RECURSE ${WORK_DIR})
  file(MAKE_DIRECTORY ${WORK_DIR})
  set(stage ${WORK_DIR}/stage)
  run_checked(out ${CMAKE_COMMAND} --install ${QFX_BUILD_DIR} --prefix ${stage})

  foreach(f
      ${INCLUDEDIR}/qfx/qfx.h
      ${INCLUDEDIR}/qfx/Pipeline/QuantizeFx.h
      ${INCLUDEDIR}/qfx/Transforms/Passes.def
      ${LIBDIR}/cmake/qfx/qfxConfig.cmake
      ${LIBDIR}/cmake/qfx/qfxConfigVersion.cmake
      ${LIBDIR}/cmake/qfx/qfxTargets.cmake
      ${LIBDIR}/pkgconfig/qfx.pc
      ${BINDIR}/qopt ${BINDIR}/qir-check ${BINDIR}/qfx-demo
      ${BINDIR}/qfx-train ${BINDIR}/qfx-bench ${BINDIR}/qfx-calib-bench
      ${DATADIR}/qfx/models/net_fashion.safetensors
      ${DOCDIR}/using-qfx.md ${DOCDIR}/README.md)
    if(NOT EXISTS ${stage}/${f})
      message(FATAL_ERROR "not installed: ${f}")
    endif()
  endforeach()

  file(GLOB_RECURSE package_files ${stage}/${LIBDIR}/cmake/qfx/*
                                  ${stage}/${LIBDIR}/pkgconfig/*)
  foreach(f ${package_files})
    file(READ ${f} text)
    foreach(dir ${QFX_BUILD_DIR} ${QFX_SOURCE_DIR} ${WORK_DIR})
      string(FIND "${text}" "${dir}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "${f} names ${dir}: the install is not "
                            "relocatable")
      endif()
    endforeach()
  endforeach()

  file(RENAME ${stage} ${prefix})
  # The tools run from the moved prefix.
  run_checked(out ${prefix}/${BINDIR}/qopt --help)
  message(STATUS "qfx package: installed and moved to ${prefix}")

elseif(MODE STREQUAL "find_package")
  set(build ${WORK_DIR}/find-package-consumer)
  file(REMOVE_RECURSE ${build})
  # Only the moved prefix may provide qfx: no package registry.
  run_checked(out ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${build}
    -G ${GENERATOR} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_CXX_COMPILER=${CXX}
    -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  file(STRINGS ${build}/CMakeCache.txt qfx_dir REGEX "^qfx_DIR:")
  if(NOT qfx_dir MATCHES "=${prefix}/")
    message(FATAL_ERROR "qfx found outside the test prefix: ${qfx_dir}")
  endif()
  run_checked(out ${CMAKE_COMMAND} --build ${build})
  run_checked(out ${build}/qfx-package-consumer
    ${prefix}/${DATADIR}/qfx/models/net_fashion.safetensors)
  message(STATUS "find_package consumer: ${out}")

elseif(MODE STREQUAL "pkg-config")
  set(build ${WORK_DIR}/pkg-config-consumer)
  file(REMOVE_RECURSE ${build})
  file(MAKE_DIRECTORY ${build})
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config not found: run scripts/install-deps.sh")
  endif()
  # PKG_CONFIG_LIBDIR replaces the system search path: only this qfx.pc.
  set(ENV{PKG_CONFIG_LIBDIR} ${prefix}/${LIBDIR}/pkgconfig)
  unset(ENV{PKG_CONFIG_PATH})
  run_checked(cflags ${PKG_CONFIG} --cflags qfx)
  run_checked(libs ${PKG_CONFIG} --libs qfx)
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  separate_arguments(libs UNIX_COMMAND "${libs}")
  # qfx.h is the API and nothing else: no oneDNN, JSON or ONNX headers.
  execute_process(
    COMMAND ${CXX} -std=c++17 -fsyntax-only -H -x c++
            ${prefix}/${INCLUDEDIR}/qfx/qfx.h ${cflags}
    RESULT_VARIABLE rc ERROR_VARIABLE included)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "qfx/qfx.h does not compile on its own:\n${included}")
  endif()
  # Only the header paths count, not the folder qfx is built in (a build
  # under ".../onnx-work/" would match otherwise).
  string(REPLACE "${prefix}" "<prefix>" included "${included}")
  if(included MATCHES "[^\n]*(dnnl|nlohmann|onnx)[^\n]*")
    message(FATAL_ERROR "qfx/qfx.h includes ${CMAKE_MATCH_0}")
  endif()
  # The README's C++ example compiles as written, with its one include: its
  # #include and using lines go first, the rest becomes a function body.
  file(READ ${QFX_SOURCE_DIR}/README.md readme)
  string(FIND "${readme}" "## Using qfx from C++" at)
  string(SUBSTRING "${readme}" ${at} -1 readme)
  string(FIND "${readme}" "```cpp\n" at)
  if(at LESS 0)
    message(FATAL_ERROR "README.md: no ```cpp block under 'Using qfx from C++'")
  endif()
  math(EXPR at "${at} + 7")
  string(SUBSTRING "${readme}" ${at} -1 readme)
  string(FIND "${readme}" "\n```" end)
  string(SUBSTRING "${readme}" 0 ${end} example)
  # C++ semicolons would split the CMake list of lines: park them.
  string(REPLACE ";" "<semicolon>" example "${example}")
  string(REPLACE "\n" ";" lines "${example}")
  set(head "")
  set(body "")
  foreach(line IN LISTS lines)
    string(REPLACE "<semicolon>" ";" line "${line}")
    if(line MATCHES "^(#include|using )")
      string(APPEND head "${line}\n")
    else()
      string(APPEND body "  ${line}\n")
    endif()
  endforeach()
  file(WRITE ${build}/readme_example.cpp "${head}
void readmeExample(const qfx::Tensor &CalibrationImages,
                   const qfx::Tensor &Images) {
${body}}
")
  run_checked(out ${CXX} -std=c++17 -c ${build}/readme_example.cpp ${cflags}
    -o ${build}/readme_example.o)
  message(STATUS "README example compiles with #include <qfx/qfx.h> alone")
  # The documented one-liner: c++ main.cpp $(pkg-config --cflags --libs qfx).
  run_checked(out ${CXX} -std=c++17 -O2 ${CONSUMER_DIR}/main.cpp ${cflags}
    ${libs} -o ${build}/qfx-package-consumer)
  run_checked(out ${build}/qfx-package-consumer
    ${prefix}/${DATADIR}/qfx/models/net_fashion.safetensors)
  message(STATUS "pkg-config consumer: ${out}")

else()
  message(FATAL_ERROR "MODE must be install, find_package or pkg-config")
endif()
