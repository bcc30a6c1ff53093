# The Debian package (`cpack -G DEB` in the build directory; tests/deploy.cmake checks it with
# lintian and installs it). Layout, for an operator who installs it like everything else:
#   /usr/bin/{outpostd,outpostctl,outpost-north,outpost-sim}
#   /lib/systemd/system/outpost.service      the unit of deploy/, with /usr/bin paths
#   /usr/lib/sysusers.d/outpost.conf         the service user (created by postinst)
#   /etc/outpost/outpost.yaml                the embedded defaults, commented (a conffile: an
#                                            operator's edits survive upgrades)
#   /usr/share/doc/outpost/                  operator guide, configuration reference, the rest
# /var/lib/outpost is created by systemd (StateDirectory=) with the right owner; the package
# never removes data.
set(OP_PKG ${CMAKE_BINARY_DIR}/pkg)
file(MAKE_DIRECTORY ${OP_PKG})

install(TARGETS outpostd outpostctl outpost-north outpost-sim RUNTIME DESTINATION bin)

file(READ ${CMAKE_SOURCE_DIR}/deploy/outpost.service OP_UNIT)
string(REPLACE "/usr/local/bin/" "/usr/bin/" OP_UNIT "${OP_UNIT}")
string(REPLACE "/usr/local/share/doc/outpost/README.md" "/usr/share/doc/outpost/operator-guide.md.gz"
       OP_UNIT "${OP_UNIT}")
file(WRITE ${OP_PKG}/outpost.service "${OP_UNIT}")
install(FILES ${OP_PKG}/outpost.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/outpost.sysusers.conf DESTINATION lib/sysusers.d RENAME outpost.conf)

# The default configuration, from the schema itself; docs compressed as Debian wants them.
set(OP_DOCS README.md docs/operator-guide.md docs/configuration.md docs/reliability.md
    docs/result-format.md docs/wire-format.md docs/uplink-protocol.md docs/model-format.md docs/gpu.md)
set(OP_PKG_FILES ${OP_PKG}/outpost.yaml ${OP_PKG}/changelog.gz)
add_custom_command(OUTPUT ${OP_PKG}/outpost.yaml
  COMMAND $<TARGET_FILE:outpostd> --print-defaults > ${OP_PKG}/outpost.yaml
  DEPENDS outpostd COMMENT "default configuration for the package")
add_custom_command(OUTPUT ${OP_PKG}/changelog.gz
  COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/deploy/debian/changelog > ${OP_PKG}/changelog.gz
  DEPENDS ${CMAKE_SOURCE_DIR}/deploy/debian/changelog)
foreach(doc ${OP_DOCS})
  get_filename_component(name ${doc} NAME)
  add_custom_command(OUTPUT ${OP_PKG}/${name}.gz
    COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/${doc} > ${OP_PKG}/${name}.gz
    DEPENDS ${CMAKE_SOURCE_DIR}/${doc})
  list(APPEND OP_PKG_FILES ${OP_PKG}/${name}.gz)
  install(FILES ${OP_PKG}/${name}.gz DESTINATION share/doc/outpost)
endforeach()
add_custom_target(package_files ALL DEPENDS ${OP_PKG_FILES})
install(FILES ${OP_PKG}/outpost.yaml DESTINATION /etc/outpost PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${OP_PKG}/changelog.gz ${CMAKE_SOURCE_DIR}/deploy/debian/copyright DESTINATION share/doc/outpost)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME outpost)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "outpost developers <outpost-dev@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "edge appliance for remote science sites")
# CPack puts the summary first (the synopsis) and this below it: lines under 80 columns.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "outpost takes detector events over ZeroMQ, reconstructs every one
with a small FP4 neural network on the CPU, stores the results in HDF5
segments and ships them north over an intermittent link with custody
transfer, unattended, under systemd's watchdog.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/postrm
    ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
