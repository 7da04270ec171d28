# Install rules for liblookaside, included from client/CMakeLists.txt after
# the targets lookaside (shared) and lookaside_static (in-tree archive) exist.
#
# What gets installed (component liblookaside):
#   lib/liblookaside.so.X.Y.Z + links   only lookaside_* exported (lookaside.map)
#   lib/liblookaside.a                  one object, only lookaside_* global
#                                       (LookasideArchive.cmake)
#   include/lookaside.h, lookaside_status.h
#   lib/pkgconfig/lookaside.pc          paths relative to ${pcfiledir}
#   lib/cmake/lookaside/                lookasideConfig.cmake + version file:
#                                       imported targets lookaside::lookaside and
#                                       lookaside::lookaside_static, paths
#                                       relative to the config file
# so an installed tree can be moved or unpacked anywhere (a staging
# directory, a container image, a DESTDIR) and still be found and linked.
include(CMakePackageConfigHelpers)
include(${PROJECT_SOURCE_DIR}/cmake/LookasideArchive.cmake)

set(LOOKASIDE_PUBLIC_ARCHIVE ${CMAKE_CURRENT_BINARY_DIR}/public/liblookaside.a
    CACHE INTERNAL "the installed liblookaside.a (tests/symbols checks it)")
lookaside_public_archive(TARGET lookaside_static ARCHIVE_TARGET lookaside_archive
    OUTPUT ${LOOKASIDE_PUBLIC_ARCHIVE} KEEP "lookaside_[a-z]*")

# lookaside.pc: prefix from the .pc file's own location.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(LOOKASIDE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(LOOKASIDE_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(LOOKASIDE_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" _up "${_up}")
  set(LOOKASIDE_PC_PREFIX "\${pcfiledir}/${_up}")
  set(LOOKASIDE_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(LOOKASIDE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/lookaside.pc.in
    ${CMAKE_CURRENT_BINARY_DIR}/lookaside.pc @ONLY)

set(LOOKASIDE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lookaside)
get_target_property(LOOKASIDE_SOVERSION lookaside SOVERSION)
get_target_property(LOOKASIDE_LIB_VERSION lookaside VERSION)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/lookasideConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/lookasideConfig.cmake
    INSTALL_DESTINATION ${LOOKASIDE_CMAKE_DIR}
    PATH_VARS CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
# 0.y: a new minor version may change the API (semver), so only the same
# major.minor satisfies a request.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/lookasideConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)

# cmake --install <build> --component liblookaside installs just the library.
install(TARGETS lookaside COMPONENT liblookaside
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${LOOKASIDE_PUBLIC_ARCHIVE} COMPONENT liblookaside
    DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/lookaside.pc COMPONENT liblookaside
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/lookasideConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/lookasideConfigVersion.cmake
    COMPONENT liblookaside DESTINATION ${LOOKASIDE_CMAKE_DIR})
