# lookaside_public_archive(TARGET tgt ARCHIVE_TARGET name OUTPUT path KEEP pattern)
#
# Builds the archive we install from the in-tree static library tgt: every
# member is linked into ONE relocatable object (ld -r), then every defined
# global that does not match the objcopy wildcard pattern is made local.
# Internal names (log_msg, addr_parse, the protobuf-c descriptors, ...)
# then resolve inside the library but can no longer collide with, or be
# reached by, the application. Undefined references (gRPC, protobuf-c, libc)
# stay global. The shared library gets the same effect from its version
# script.
#
# The price: a program that links the archive takes all of it, not only the
# members it references (a few hundred KiB).
function(lookaside_public_archive)
  cmake_parse_arguments(A "" "TARGET;ARCHIVE_TARGET;OUTPUT;KEEP" "" ${ARGN})
  foreach(tool CMAKE_LINKER CMAKE_OBJCOPY CMAKE_AR CMAKE_RANLIB)
    if(NOT ${tool})
      message(FATAL_ERROR "lookaside_public_archive: ${tool} not found")
    endif()
  endforeach()
  get_filename_component(dir ${A_OUTPUT} DIRECTORY)
  set(obj ${dir}/${A_ARCHIVE_TARGET}.o)
  add_custom_command(
    OUTPUT ${A_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${CMAKE_LINKER} -r -o ${obj} --whole-archive $<TARGET_FILE:${A_TARGET}>
    COMMAND ${CMAKE_OBJCOPY} --wildcard "--keep-global-symbol=${A_KEEP}" ${obj}
    COMMAND ${CMAKE_COMMAND} -E rm -f ${A_OUTPUT}
    COMMAND ${CMAKE_AR} qc ${A_OUTPUT} ${obj}
    COMMAND ${CMAKE_RANLIB} ${A_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -E rm -f ${obj}
    DEPENDS ${A_TARGET}
    COMMENT "Building ${A_OUTPUT} (one object; only ${A_KEEP} global)"
    VERBATIM)
  add_custom_target(${A_ARCHIVE_TARGET} ALL DEPENDS ${A_OUTPUT})
endfunction()
