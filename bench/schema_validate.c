/* bench/schema.sh: CPU time of one validation of greet_pattern's
 * arguments, compiling the patterns each time (schema_validate, as every
 * tools/call did before) and with the patterns compiled at load
 * (schema_validate_compiled). Prints "on_the_fly_us N compiled_us N". */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "schema.h"

static double
cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100000;
	cJSON *s = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
	    "\"pattern\":\"^[A-Za-z][A-Za-z0-9 _.-]{0,63}$\"}},\"patternProperties\":{\"^x-[a-z]+$\":"
	    "{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{8,32}$\"}},\"required\":[\"name\"]}");
	cJSON *v = cJSON_Parse("{\"name\":\"bench\",\"x-trace\":\"0123abcd\"}");
	char err[256];
	struct schema_compiled *sc = schema_compile(s, err, sizeof(err));
	if (s == NULL || v == NULL || sc == NULL) {
		fprintf(stderr, "schema_validate: %s\n", err);
		return 1;
	}
	double t0 = cpu_now();
	for (int i = 0; i < n; i++)
		if (schema_validate(s, v, "arguments", err, sizeof(err)) < 0)
			return fprintf(stderr, "%s\n", err), 1;
	double t1 = cpu_now();
	for (int i = 0; i < n; i++)
		if (schema_validate_compiled(sc, v, "arguments", err, sizeof(err)) < 0)
			return fprintf(stderr, "%s\n", err), 1;
	double t2 = cpu_now();
	printf("on_the_fly_us %.2f compiled_us %.2f\n", (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6);
	schema_compiled_free(sc);
	cJSON_Delete(s);
	cJSON_Delete(v);
	return 0;
}
