# Tests of dxsync-notifier (consumer/notify/): unit tests of the pure parts, an integration
# script against the real Kafka and Directus of the harness. Included by tests/CMakeLists.txt.

dx_unit(test_notify dxsync_notify)
dx_script(integration_notifier integration integration/notifier.sh)
