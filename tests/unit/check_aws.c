/* The AWS plugins' shared code that needs no network: Signature Version 4
 * against the published test suite (AKIDEXAMPLE, 20150830T123600Z,
 * us-east-1, service "service"; the expected signatures are those of the
 * suite, and agree with botocore's signer), the XML reader, ISO 8601
 * times, and which credential source the environment and files name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../plugins/common/aws_creds.h"
#include "../../plugins/common/aws_sigv4.h"
#include "../../plugins/common/aws_xml.h"
#include "../../plugins/common/isotime.h"
#include "suites.h"

#define SUITE_TIME 1440938160           /* 2015-08-30T12:36:00Z */
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static void
sign(const char *method, const char *query, const char *payload, const struct aws_header *h, size_t n,
    char *out, size_t len)
{
	struct aws_sign s = { method, "/", query, h, n, payload, payload ? strlen(payload) : 0, "us-east-1",
	    "service", "AKIDEXAMPLE", SECRET, SUITE_TIME };
	ck_assert_int_eq(aws_sigv4_authorization(&s, out, len), 0);
}

static const char *
signature(const char *auth)
{
	const char *p = strstr(auth, "Signature=");
	ck_assert_ptr_nonnull(p);
	return p + 10;
}

START_TEST(vanilla)
{
	struct aws_header h[] = { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } };
	char auth[512];
	sign("GET", NULL, "", h, 2, auth, sizeof(auth));
	ck_assert_str_eq(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
	    "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	/* post-vanilla */
	sign("POST", NULL, "", h, 2, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
	/* the header names' case does not matter, nor their order */
	struct aws_header h2[] = { { "x-amz-date", "20150830T123600Z" }, { "HOST", "example.amazonaws.com" } };
	char again[512];
	sign("GET", NULL, "", h2, 2, again, sizeof(again));
	ck_assert_str_eq(signature(again), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}
END_TEST

START_TEST(queries)
{
	struct aws_header h[] = { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } };
	char auth[512];
	/* get-vanilla-query-order-key-case: sorted by name */
	sign("GET", "Param2=value2&Param1=value1", "", h, 2, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	/* get-vanilla-query-order-value: same name, sorted by value */
	sign("GET", "Param1=value2&Param1=Value1", "", h, 2, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1");
	/* get-vanilla-query-unreserved: those stay as they are */
	sign("GET", "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
	    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", h, 2, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
	/* the rest is percent-encoded in upper case; a name alone gets '=' */
	struct aws_sign s = { "GET", "/", "b=%e1%88%b4&a", h, 2, "", 0, "us-east-1", "service", "AKIDEXAMPLE",
	    SECRET, SUITE_TIME };
	char *c = aws_sigv4_canonical_request(&s);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(strstr(c, "\na=&b=%E1%88%B4\n"));
	free(c);
}
END_TEST

START_TEST(bodies_and_headers)
{
	char auth[512];
	/* post-x-www-form-urlencoded: the payload's hash is signed */
	struct aws_header h[] = { { "Content-Type", "application/x-www-form-urlencoded" },
	    { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "20150830T123600Z" } };
	sign("POST", NULL, "Param1=value1", h, 3, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
	ck_assert_ptr_nonnull(strstr(auth, "SignedHeaders=content-type;host;x-amz-date,"));
	/* one byte more in the body: another signature */
	char other[512];
	sign("POST", NULL, "Param1=value2", h, 3, other, sizeof(other));
	ck_assert_str_ne(signature(other), signature(auth));
	/* values trimmed, inner runs of spaces made one, repeated names
	 * joined with commas in their order */
	struct aws_header t[] = { { "Host", "example.amazonaws.com" }, { "My-Header1", "  value1 " },
	    { "My-Header2", "\"a   b   c\"" }, { "X-Amz-Date", "20150830T123600Z" }, { "My-Header1", "value2" } };
	struct aws_sign s = { "GET", "/", NULL, t, 5, "", 0, "us-east-1", "service", "AKIDEXAMPLE", SECRET, SUITE_TIME };
	char *c = aws_sigv4_canonical_request(&s);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c, "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1,value2\nmy-header2:\"a b c\"\n"
	    "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(c);
	/* A DynamoDB call as the plugin signs it, with a session token
	 * (checked against botocore's signer). */
	struct aws_header d[] = { { "Host", "dynamodb.us-east-1.amazonaws.com" },
	    { "Content-Type", "application/x-amz-json-1.0" }, { "X-Amz-Target", "DynamoDB_20120810.GetItem" },
	    { "X-Amz-Date", "20150830T123600Z" } };
	sign("POST", NULL, "{\"TableName\":\"t\"}", d, 4, auth, sizeof(auth));
	ck_assert_str_eq(signature(auth), "2cb33a604abf609f9b4f9523f384829bc36144bd82781a861cadf707b01e5d12");
	/* a buffer too small is an error, not a cut header */
	char tiny[64];
	struct aws_sign s2 = { "GET", "/", NULL, h, 3, "", 0, "us-east-1", "service", "AKIDEXAMPLE", SECRET, SUITE_TIME };
	ck_assert_int_eq(aws_sigv4_authorization(&s2, tiny, sizeof(tiny)), -1);
}
END_TEST

START_TEST(dates_and_hashes)
{
	char d[17], h[65];
	aws_amz_date(SUITE_TIME, d);
	ck_assert_str_eq(d, "20150830T123600Z");
	aws_sha256_hex("", 0, h);
	ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00Z"), 1440938160000ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00.123Z"), 1440938160123ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T14:36:00+02:00"), 1440938160000ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00"), 1440938160000ULL);
	ck_assert_uint_eq(isotime_parse_ms("2015-13-30T12:36:00Z"), 0);
	ck_assert_uint_eq(isotime_parse_ms("yesterday"), 0);
	ck_assert_uint_eq(isotime_parse_ms("2015-08-30T12:36:00Zjunk"), 0);
	ck_assert_uint_eq(isotime_parse_ms(""), 0);
}
END_TEST

START_TEST(xml)
{
	const char *x = "<AssumeRoleWithWebIdentityResponse><Result><Credentials>"
	    "<SessionToken>a&amp;b&lt;c&#62;</SessionToken><AccessKeyId>AKID</AccessKeyId>"
	    "<Empty/><Expiration>2015-08-30T12:36:00Z</Expiration></Credentials></Result>"
	    "<AccessKeyIdNot>x</AccessKeyIdNot></AssumeRoleWithWebIdentityResponse>";
	char out[64];
	ck_assert_int_eq(aws_xml_text(x, "SessionToken", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "a&b<c>");
	ck_assert_int_eq(aws_xml_text(x, "AccessKeyId", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "AKID");
	ck_assert_int_eq(aws_xml_text(x, "Empty", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(aws_xml_text(x, "Missing", out, sizeof(out)), -1);
	ck_assert_int_eq(aws_xml_text(x, "Expiration", out, 5), -1);     /* does not fit: not cut */
	ck_assert_int_eq(aws_xml_text("<Code>unclosed", "Code", out, sizeof(out)), -1);
	char *dup = aws_xml_dup(x, "Expiration");
	ck_assert_str_eq(dup, "2015-08-30T12:36:00Z");
	free(dup);
}
END_TEST

static char dir[128];

static void
clean_env(void)
{
	static const char *const names[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	    "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
	    "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	    "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", NULL };
	for (const char *const *n = names; *n; n++)
		unsetenv(*n);
	snprintf(dir, sizeof(dir), "/tmp/mcpd-aws-test-%d", (int)getpid());
	mkdir(dir, 0700);
	setenv("HOME", dir, 1);         /* no ~/.aws of the machine's */
}

static void
write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static int
probe(const char *profile, char *what, char *region, char *why)
{
	return aws_creds_probe(profile, what, 600, region, 64, why, 600);
}

START_TEST(chain_order)
{
	char what[600], region[64], why[600], path[256];
	clean_env();
	snprintf(path, sizeof(path), "%s/credentials", dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/config", dir);
	setenv("AWS_CONFIG_FILE", path, 1);
	/* nothing at all: instance metadata is what is left */
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "instance metadata (http://169.254.169.254)"));
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), -1);
	ck_assert_ptr_nonnull(strstr(why, "no AWS credentials"));
	/* the ECS endpoint */
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "http://169.254.170.2/v2/credentials/x"));
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), -1);      /* plain http elsewhere */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	/* web identity comes before it */
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), -1);      /* without its token file */
	ck_assert_ptr_nonnull(strstr(why, "must be set together"));
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "web identity (role arn:aws:iam::123456789012:role/r)"));
	/* a profile with keys before that; [profile x] in the config file */
	write_file("config", "[default]\nregion = eu-west-3\n[profile dev]\nregion=ap-south-1\n"
	    "aws_access_key_id = AKIDDEV\naws_secret_access_key = s3cr3t\n");
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "web identity"));       /* default has no keys */
	ck_assert_str_eq(region, "eu-west-3");
	ck_assert_int_eq(probe("dev", what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "profile dev of"));
	ck_assert_str_eq(region, "ap-south-1");
	setenv("AWS_PROFILE", "dev", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "profile dev of"));
	/* the credentials file's [name] wins over the config file */
	write_file("credentials", "# keys\n[dev]\naws_access_key_id=AKIDFILE\naws_secret_access_key=x\n");
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "/credentials"));
	ck_assert_int_eq(probe("nope", what, region, why), -1);
	ck_assert_ptr_nonnull(strstr(why, "no profile nope"));
	/* and the environment before everything */
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), -1);      /* half of a pair */
	setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
	ck_assert_int_eq(probe(NULL, what, region, why), 0);
	ck_assert_ptr_nonnull(strstr(what, "environment"));
	/* what mcpd cannot do is said */
	clean_env();
	snprintf(path, sizeof(path), "%s/credentials", dir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	write_file("credentials", "[sso]\nsso_start_url = https://example.awsapps.com/start\n");
	ck_assert_int_eq(probe("sso", what, region, why), -1);
	ck_assert_ptr_nonnull(strstr(why, "sso_start_url"));
	write_file("credentials", "[half]\naws_access_key_id = AKID\n");
	ck_assert_int_eq(probe("half", what, region, why), -1);
	ck_assert_ptr_nonnull(strstr(why, "no aws_secret_access_key"));
	/* no secret in any message */
	write_file("credentials", "[s]\naws_access_key_id = AKID\naws_secret_access_key = TOPSECRET\n");
	ck_assert_int_eq(probe("s", what, region, why), 0);
	ck_assert_ptr_null(strstr(what, "TOPSECRET"));
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *
aws_suite(void)
{
	Suite *s = suite_create("aws");
	TCase *tc = tcase_create("sigv4");
	tcase_add_test(tc, vanilla);
	tcase_add_test(tc, queries);
	tcase_add_test(tc, bodies_and_headers);
	tcase_add_test(tc, dates_and_hashes);
	tcase_add_test(tc, xml);
	tcase_add_test(tc, chain_order);
	suite_add_tcase(s, tc);
	return s;
}
