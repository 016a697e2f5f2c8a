# cmake -P run_consumer.cmake: install shmbus from SHMBUS_BUILD_DIR into
# WORK_DIR/prefix, then configure, build and run the consumer project in
# WORK_DIR/build against that prefix only. Any failed step fails the test.
foreach(var IN ITEMS SHMBUS_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(step name)
  message(STATUS "---- ${name}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${name} failed (${status})")
  endif()
endfunction()

set(config_args)
if(BUILD_TYPE)
  set(config_args --config ${BUILD_TYPE})
endif()

step(install ${CMAKE_COMMAND} --install ${SHMBUS_BUILD_DIR} --prefix ${prefix} ${config_args})

# What the package promises beyond the targets: the generated schema headers
# and the .fbs files they came from.
foreach(file IN ITEMS include/shmbus/shmbus.hpp include/shmbus/schemas/mailer_generated.h
                      share/shmbus/schemas/mailer.fbs)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "install did not provide ${file}")
  endif()
endforeach()

set(werror OFF)
if(WERROR)
  set(werror ON)
endif()
# Only the temporary prefix: no package registry, no build tree. System
# dependencies (Boost, FlatBuffers, tl-expected) come from /usr as usual.
step(configure ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${CXX_FLAGS}"
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  -DSHMBUS_EXPECTED_PREFIX=${prefix}
  -DSHMBUS_CONSUMER_WERROR=${werror})
step(build ${CMAKE_COMMAND} --build ${build} ${config_args})
step(run ${build}/shmbus_consumer)
step(run-embedded ${build}/shmbus_embedded_service)
