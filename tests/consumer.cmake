# Tests of consumer/apply and consumer/ops (dxsync-consumer): unit tests of the pure modules, integration scripts
# against the real Kafka and Directus of the harness. Included by tests/CMakeLists.txt.

dx_unit(test_plan dxsync_apply)
dx_unit(test_apply dxsync_apply)
dx_unit(test_fileop dxsync_apply)
dx_unit(test_check dxsync_ops)
dx_unit(test_admin dxsync_ops)
dx_unit(test_deadletter dxsync_apply)
dx_unit(test_recent dxsync_apply)
dx_unit(test_lww dxsync_apply)
dx_unit(test_clockdb dxsync_apply)
dx_unit(test_routes dxsync_apply)
dx_unit(test_consume dxsync_apply)
dx_unit(test_partq dxsync_apply)
dx_unit(test_remote dxsync_apply)
dx_unit(test_dlq dxsync_apply)
dx_unit(test_dispatch dxsync_apply)

dx_script(consumer_apply integration integration/consumer_apply.sh)
dx_script(consumer_deadletter integration integration/consumer_deadletter.sh)
# Every JSON type in every routed field, nesting at the limit, keys beyond 2^53 (issue 14).
dx_script(consumer_types integration integration/consumer_types.sh)
dx_script(consumer_outage integration integration/consumer_outage.sh)
dx_script(consumer_crash integration integration/consumer_crash.sh)
dx_script(consumer_group integration integration/consumer_group.sh)
dx_script(consumer_check integration integration/consumer_check.sh)
dx_script(consumer_linger integration integration/consumer_linger.sh)
# The consumer's state (issue 26): restarts read back from the checkpoint, a lost store from the
# horizon, clock skew warned about, an unusable state folder or a duplicate member named.
dx_script(consumer_state integration integration/consumer_state.sh)
