# Tests of producer/ (included from tests/CMakeLists.txt).
dx_unit(test_pgoutput dxsync_producer)
dx_script(integration_producer integration integration/producer.sh)
dx_script(integration_producer_check integration integration/producer_check.sh)
dx_unit(test_capture dxsync_producer)
dx_unit(test_publish dxsync_producer)
dx_script(integration_producer_import integration integration/producer_import.sh)
dx_script(integration_producer_late_collection integration integration/producer_late_collection.sh)
dx_script(faults_producer_backpressure faults faults/producer_backpressure.sh)
