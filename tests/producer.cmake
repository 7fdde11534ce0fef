# Tests of producer/ (included from tests/CMakeLists.txt).
dx_unit(test_pgoutput dxsync_producer)
dx_script(integration_producer integration integration/producer.sh)
dx_script(integration_producer_check integration integration/producer_check.sh)
dx_unit(test_capture dxsync_producer)
dx_unit(test_publish dxsync_producer)
dx_unit(test_check_version dxsync_producer)
dx_script(integration_producer_import integration integration/producer_import.sh)
dx_script(integration_producer_late_collection integration integration/producer_late_collection.sh)
dx_script(integration_producer_large integration integration/producer_large.sh)
dx_script(faults_producer_backpressure faults faults/producer_backpressure.sh)
# The decoder and the capture again on the fixtures recorded from each other PostgreSQL major
# (tests/fixtures/pgoutput/record.sh MAJOR, issue 29): 13 and 14 send a transaction that
# changed no published table as a bare Begin and Commit; 13 has no binary or messages option.
foreach(server pg13 pg14 pg16 pg17 pg18)
  foreach(t test_pgoutput test_capture)
    add_test(NAME ${t}_${server} COMMAND ${t})
    set_tests_properties(${t}_${server} PROPERTIES LABELS unit TIMEOUT 60
      ENVIRONMENT "DXSYNC_VECTORS=${DXSYNC_VECTORS};DXSYNC_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures/servers/${server}")
  endforeach()
endforeach()
