# Tests of dxsync-notifier (consumer/notify*.c): unit tests of the pure parts, an integration
# script against the real Kafka and Directus of the harness. Included by tests/CMakeLists.txt.

dx_unit(test_notify dxsync_consumer)
dx_script(integration_notifier integration integration/notifier.sh)
