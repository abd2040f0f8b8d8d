# SPDX-License-Identifier: Apache-2.0
# Fails the build when the freestanding portolan-job-init has relocations to
# apply or an interpreter: nothing in it would apply them (it has no
# dynamic loader and no self-relocation), so it would crash at its first
# pointer. Run as a POST_BUILD step: cmake -DBINARY=... -P check_job_init.cmake
find_program(READELF readelf)
if(NOT READELF)
  message(STATUS "check_job_init: no readelf; not checked")
  return()
endif()
execute_process(COMMAND ${READELF} --relocs --program-headers ${BINARY} OUTPUT_VARIABLE out
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_job_init: readelf ${BINARY} failed")
endif()
if(out MATCHES "Relocation section" OR out MATCHES "INTERP")
  message(FATAL_ERROR "check_job_init: ${BINARY} has relocations or an interpreter:\n${out}")
endif()
