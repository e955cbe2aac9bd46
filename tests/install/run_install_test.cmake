# Installs libcdp from BUILD_DIR into a fresh prefix, builds examples/consumer against it with find_package(cdp),
# runs it, and checks the installed layout. Invoked by ctest (tests/CMakeLists.txt).
set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f include/cdp/cdp.h include/cdp/engine.h lib/cmake/cdp/cdpConfig.cmake bin/cdp-server)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
# Only include/cdp/ is public: no dependency header may leak into the installed API.
file(GLOB_RECURSE headers "${prefix}/include/cdp/*.h")
foreach(h ${headers})
  file(STRINGS "${h}" leaks REGEX "#include [<\"](rocksdb|absl|simdjson|fmt)/")
  if(leaks)
    message(FATAL_ERROR "${h} includes a dependency header: ${leaks}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/consumer" -B "${WORK_DIR}/consumer" -G Ninja
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
run("${WORK_DIR}/consumer/cdp_consumer" "${WORK_DIR}/db")
message(STATUS "installed package builds and runs")
