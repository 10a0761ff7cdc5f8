#ifndef MCPD_TEST_SUITES_H
#define MCPD_TEST_SUITES_H

#include <check.h>

Suite *util_suite(void);
Suite *log_suite(void);
Suite *http_suite(void);
Suite *config_suite(void);
Suite *storage_suite(void);
Suite *transport_suite(void);
Suite *relay_suite(void);
Suite *schema_suite(void);
Suite *json_suite(void);
Suite *jwt_suite(void);
Suite *oauth_suite(void);
Suite *introspection_suite(void);
Suite *resolve_suite(void);
Suite *opfail_suite(void);
Suite *aws_suite(void);
Suite *gcp_suite(void);
Suite *routes_suite(void);
Suite *cosmos_suite(void);
Suite *amqp_suite(void);
Suite *envexpand_suite(void);
Suite *text_suite(void);
Suite *storeop_suite(void);
Suite *credfile_suite(void);
Suite *localq_suite(void);
Suite *linesplit_suite(void);
Suite *lambda_suite(void);
Suite *skillmd_suite(void);
Suite *metrics_suite(void);
Suite *traceparent_suite(void);
Suite *tracing_suite(void);
Suite *ratelimit_suite(void);
Suite *storage_cache_suite(void);
Suite *transport_compress_suite(void);
Suite *sigmsg_suite(void);
Suite *sealbox_suite(void);
Suite *session_suite(void);

#endif
