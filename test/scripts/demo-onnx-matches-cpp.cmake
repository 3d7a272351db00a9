# The main job from PyTorch's ONNX export of Net must score exactly as the
# same Net written in C++: runs qfx-demo both ways on one Fashion-MNIST
# slice and compares the float and int8 top-1 and the argmax agreement.
#
#   cmake -DDEMO=<qfx-demo> -DONNX=<net.onnx> -DWEIGHTS=<net.safetensors>
#         -DOUT=<scratch dir> -P demo-onnx-matches-cpp.cmake
foreach(var DEMO ONNX WEIGHTS OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "demo-onnx-matches-cpp: -D${var}=... is required")
  endif()
endforeach()

set(common --quiet --calibration-images 200 --test-images 1000)
function(run_demo name)
  execute_process(
    COMMAND ${DEMO} ${common} --out-dir ${OUT}/${name} ${ARGN}
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "qfx-demo (${name}) failed (${rc}):\n${out}\n${err}")
  endif()
  string(REGEX MATCHALL "(float|int8) +top-1 +[0-9.]+%|argmax agreement +[0-9.]+%"
         scores "${out}")
  list(LENGTH scores n)
  if(NOT n EQUAL 3)
    message(FATAL_ERROR "qfx-demo (${name}): no scores in its output:\n${out}")
  endif()
  set(${name}_scores "${scores}" PARENT_SCOPE)
endfunction()

run_demo(cpp --weights ${WEIGHTS})
run_demo(onnx --onnx ${ONNX})
message(STATUS "C++ Net:  ${cpp_scores}")
message(STATUS "ONNX Net: ${onnx_scores}")
if(NOT cpp_scores STREQUAL onnx_scores)
  message(FATAL_ERROR "the imported model scores differently from the C++ model")
endif()
if(NOT EXISTS ${OUT}/onnx/5-net.int8.onnx)
  message(FATAL_ERROR "qfx-demo wrote no 5-net.int8.onnx")
endif()
