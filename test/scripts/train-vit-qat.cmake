# QAT of the zoo ViT on a Fashion-MNIST slice through qfx-train: runs the
# --model=vit_fashion path (prepare_qat_fx with qat_x86, fake-quant
# fine-tuning, convert_fx) for two epochs on 128 images and checks
# what must hold: the mean training loss goes down from epoch to epoch, the
# converted model compiles with no fallback, and its int8 top-1 on the test
# slice stays above FLOOR (percent).
#
#   cmake -DTRAIN=<qfx-train> -DWEIGHTS=<vit_fashion.safetensors>
#         -DFLOOR=<percent> -P train-vit-qat.cmake
foreach(var TRAIN WEIGHTS FLOOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "train-vit-qat: -D${var}=... is required")
  endif()
endforeach()

execute_process(
  COMMAND ${TRAIN} --model=vit_fashion --weights=${WEIGHTS} --epochs=0
          --qat-epochs=2 --train-images=128 --test-images=200
          --calibration-images=64 --batch-size=32 --qat-lr=1e-2 --threads=1
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "qfx-train failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "${out}")

string(REGEX MATCHALL "qat epoch [12]/2  loss [0-9.]+" epochs "${out}")
list(LENGTH epochs n)
if(NOT n EQUAL 2)
  message(FATAL_ERROR "qfx-train printed no loss for both QAT epochs")
endif()
list(GET epochs 0 first)
list(GET epochs 1 second)
string(REGEX REPLACE ".*loss " "" first "${first}")
string(REGEX REPLACE ".*loss " "" second "${second}")
if(NOT second LESS first)
  message(FATAL_ERROR "QAT loss did not go down: ${first} -> ${second}")
endif()

if(NOT out MATCHES "QAT int8 model: compiled, no fallback")
  message(FATAL_ERROR "the converted QAT model did not compile cleanly")
endif()
if(NOT out MATCHES "int8 QAT +top-1 +([0-9.]+)%")
  message(FATAL_ERROR "qfx-train printed no QAT top-1")
endif()
set(top1 ${CMAKE_MATCH_1})
if(top1 LESS FLOOR)
  message(FATAL_ERROR "QAT int8 top-1 ${top1}% is below ${FLOOR}%")
endif()
