# Install layout and Debian packages (CPack): portolan-scheduler,
# portolan-agent and portolan-cli. Build them with
#   cmake --build build && (cd build && cpack -G DEB)
# Layout: binaries in /usr/bin, units in /lib/systemd/system, configuration
# in /etc/portolan (conffiles), defaults in /etc/default, documentation in
# /usr/share/doc/<package>, the development CA script in /usr/share/portolan.
set(SRC ${PROJECT_SOURCE_DIR})

install(TARGETS portolan-scheduler RUNTIME DESTINATION bin COMPONENT scheduler)
install(FILES ${SRC}/deploy/systemd/portolan-scheduler.service
        DESTINATION /lib/systemd/system COMPONENT scheduler)
install(FILES ${SRC}/deploy/config/scheduler.yaml DESTINATION /etc/portolan COMPONENT scheduler)
install(FILES ${SRC}/deploy/policy/default.yaml DESTINATION /etc/portolan RENAME policy.yaml
        COMPONENT scheduler)
install(FILES ${SRC}/deploy/debian/portolan-scheduler.default DESTINATION /etc/default
        RENAME portolan-scheduler COMPONENT scheduler)
install(FILES ${SRC}/docs/operations.md ${SRC}/docs/security.md ${SRC}/docs/policy.md
              ${SRC}/docs/api.md ${SRC}/docs/architecture.md
        DESTINATION share/doc/portolan-scheduler COMPONENT scheduler)
install(PROGRAMS ${SRC}/deploy/dev-ca.sh DESTINATION share/portolan COMPONENT scheduler)

install(TARGETS portolan-agent RUNTIME DESTINATION bin COMPONENT agent)
install(FILES ${SRC}/deploy/systemd/portolan-agent.service
        DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES ${SRC}/deploy/config/agent.yaml DESTINATION /etc/portolan COMPONENT agent)
install(FILES ${SRC}/deploy/debian/portolan-agent.default DESTINATION /etc/default
        RENAME portolan-agent COMPONENT agent)
install(FILES ${SRC}/docs/operations.md ${SRC}/docs/security.md ${SRC}/docs/topology.md
        DESTINATION share/doc/portolan-agent COMPONENT agent)

install(TARGETS portolan RUNTIME DESTINATION bin COMPONENT cli)
install(FILES ${SRC}/docs/api.md DESTINATION share/doc/portolan-cli COMPONENT cli)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME portolan)
set(CPACK_PACKAGE_VENDOR "Portolan")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "International computing-power scheduler")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING IGNORE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "Portolan developers <dev@portolan.invalid>")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_NAME portolan-scheduler)
set(CPACK_DEBIAN_SCHEDULER_DESCRIPTION
    "Portolan scheduler daemon\n Places compute and data-processing jobs on data-centre agents by\n hardware topology, data-residency rules and submarine-cable latency.")
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SCHEDULER_PACKAGE_CONTROL_EXTRA
    "${SRC}/deploy/debian/scheduler/postinst;${SRC}/deploy/debian/scheduler/conffiles")
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME portolan-agent)
set(CPACK_DEBIAN_AGENT_DESCRIPTION
    "Portolan agent daemon\n Reports this machine's hwloc topology to the Portolan scheduler and\n runs the jobs placed here, bound to their cores and NUMA nodes.")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    "${SRC}/deploy/debian/agent/postinst;${SRC}/deploy/debian/agent/conffiles")
set(CPACK_DEBIAN_CLI_PACKAGE_NAME portolan-cli)
set(CPACK_DEBIAN_CLI_DESCRIPTION
    "Portolan command-line client\n Submit, watch, explain and cancel jobs; manage agents, policy and tenants.")
set(CPACK_COMPONENTS_ALL scheduler agent cli)
include(CPack)
