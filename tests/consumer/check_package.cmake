# ctest: install ncore into a scratch prefix, build the consumer project
# against it with find_package(ncore), and run it.
#   cmake -DBUILD=<ncore build dir> -DSRC=<tests/consumer> -DWORK=<scratch> -P check_package.cmake
file(REMOVE_RECURSE ${WORK})
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD};--prefix;${WORK}/install"
    "${CMAKE_COMMAND};-S;${SRC};-B;${WORK}/build;-DCMAKE_BUILD_TYPE=Release;-DCMAKE_PREFIX_PATH=${WORK}/install"
    "${CMAKE_COMMAND};--build;${WORK}/build;-j2"
    "${WORK}/build/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer package check failed at: ${step}")
  endif()
endforeach()
