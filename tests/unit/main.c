/* Unit test runner: every suite of tests/unit. CK_FORK=no to debug. */
#include <check.h>
#include <stdlib.h>

#include "suites.h"

int
main(void)
{
	SRunner *sr = srunner_create(util_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, http_suite());
	srunner_add_suite(sr, config_suite());
	srunner_add_suite(sr, storage_suite());
	srunner_add_suite(sr, transport_suite());
	srunner_add_suite(sr, relay_suite());
	srunner_add_suite(sr, schema_suite());
	srunner_add_suite(sr, json_suite());
	srunner_add_suite(sr, jwt_suite());
	srunner_add_suite(sr, oauth_suite());
	srunner_add_suite(sr, introspection_suite());
	srunner_add_suite(sr, resolve_suite());
	srunner_add_suite(sr, opfail_suite());
	srunner_add_suite(sr, aws_suite());
	srunner_add_suite(sr, gcp_suite());
	srunner_add_suite(sr, routes_suite());
	srunner_add_suite(sr, cosmos_suite());
	srunner_add_suite(sr, amqp_suite());
	srunner_add_suite(sr, envexpand_suite());
	srunner_add_suite(sr, text_suite());
	srunner_add_suite(sr, storeop_suite());
	srunner_add_suite(sr, credfile_suite());
	srunner_add_suite(sr, localq_suite());
	srunner_add_suite(sr, linesplit_suite());
	srunner_add_suite(sr, lambda_suite());
	srunner_add_suite(sr, skillmd_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_add_suite(sr, traceparent_suite());
	srunner_add_suite(sr, tracing_suite());
	srunner_add_suite(sr, ratelimit_suite());
	srunner_add_suite(sr, storage_cache_suite());
	srunner_add_suite(sr, transport_compress_suite());
	srunner_add_suite(sr, sigmsg_suite());
	srunner_add_suite(sr, sealbox_suite());
	srunner_add_suite(sr, session_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
