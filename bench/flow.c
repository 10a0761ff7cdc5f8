/*
 * flow: the load of short-lived MCP clients. Each flow opens a fresh TCP
 * connection and runs initialize, notifications/initialized, tools/list,
 * tools/call and DELETE on it (keep-alive within the flow), then closes.
 *
 *   flow HOST PORT PATH CONNECTIONS SECONDS TOOL ARGS_JSON
 *   flow HOST PORT PATH CONNECTIONS sessions N     (create N sessions, keep them)
 *
 * Prints one line: flows, flows/s, p50_ms, p99_ms, errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *path, *tool, *args;
static int port, seconds;
static long sessions_per_thread;   /* sessions mode: create and keep these */
static volatile int stop;

struct worker {
	pthread_t th;
	long flows, errors;
	double *lat;
	size_t nlat, cap;
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, host, &a.sin_addr);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request; reads the response (Content-Length bodies only). Returns
 * the status, and copies the Mcp-Session-Id header into sid if asked. */
static int
exchange(int fd, const char *method, const char *sidhdr, const char *body, char *sid, size_t sidlen)
{
	char req[4096];
	int n = snprintf(req, sizeof(req),
	    "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
	    "%s%s%sContent-Length: %zu\r\n\r\n%s",
	    method, path, host, port, sidhdr ? "Mcp-Session-Id: " : "", sidhdr ? sidhdr : "",
	    sidhdr ? "\r\n" : "", body ? strlen(body) : 0, body ? body : "");
	if (write(fd, req, (size_t)n) != n)
		return -1;
	char buf[65536];
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end == NULL)
			continue;
		char *cl = strcasestr(buf, "\r\ncontent-length:");
		size_t len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
		if (have < (size_t)(end + 4 - buf) + len)
			continue;
		if (sid != NULL) {
			char *h = strcasestr(buf, "\r\nmcp-session-id:");
			if (h == NULL || h > end)
				return -1;
			h += 17;
			while (*h == ' ')
				h++;
			size_t k = 0;
			while (h[k] != '\r' && k < sidlen - 1)
				k++;
			memcpy(sid, h, k);
			sid[k] = '\0';
		}
		return atoi(buf + 9);
	}
}

static const char *INIT = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"flow\",\"version\":\"1\"}}}";
static const char *INITIALIZED = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
static const char *LIST = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";

static int
one_flow(int keep)
{
	int fd = dial();
	if (fd < 0)
		return -1;
	char sid[256], call[1024];
	snprintf(call, sizeof(call), "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
	    "{\"name\":\"%s\",\"arguments\":%s}}", tool, args);
	int ok = exchange(fd, "POST", NULL, INIT, sid, sizeof(sid)) == 200 &&
	    exchange(fd, "POST", sid, INITIALIZED, NULL, 0) / 100 == 2;
	if (ok && !keep)
		ok = exchange(fd, "POST", sid, LIST, NULL, 0) == 200 &&
		    exchange(fd, "POST", sid, call, NULL, 0) == 200 &&
		    exchange(fd, "DELETE", sid, NULL, NULL, 0) / 100 == 2;
	close(fd);
	return ok ? 0 : -1;
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	while (!stop) {
		double t0 = now();
		int rc = one_flow(sessions_per_thread > 0);
		double dt = now() - t0;
		if (rc < 0) {
			w->errors++;
			continue;
		}
		if (w->nlat == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 4096;
			w->lat = realloc(w->lat, w->cap * sizeof(double));
		}
		w->lat[w->nlat++] = dt;
		if (++w->flows >= sessions_per_thread && sessions_per_thread > 0)
			break;
	}
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: flow HOST PORT PATH CONNECTIONS SECONDS TOOL ARGS_JSON\n"
		    "       flow HOST PORT PATH CONNECTIONS sessions N -\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	path = argv[3];
	int conns = atoi(argv[4]);
	if (strcmp(argv[5], "sessions") == 0) {
		sessions_per_thread = (atol(argv[6]) + conns - 1) / conns;
	} else {
		seconds = atoi(argv[5]);
		tool = argv[6];
		args = argv[7];
	}
	struct worker *w = calloc((size_t)conns, sizeof(*w));
	double t0 = now();
	for (int i = 0; i < conns; i++)
		pthread_create(&w[i].th, NULL, run, &w[i]);
	if (sessions_per_thread == 0) {
		sleep((unsigned)seconds);
		stop = 1;
	}
	long flows = 0, errors = 0;
	size_t n = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(w[i].th, NULL);
		flows += w[i].flows;
		errors += w[i].errors;
		n += w[i].nlat;
	}
	double elapsed = now() - t0;
	double *all = malloc((n ? n : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < conns; i++) {
		memcpy(all + k, w[i].lat, w[i].nlat * sizeof(double));
		k += w[i].nlat;
	}
	qsort(all, n, sizeof(double), cmp);
	printf("flows %ld rate %.1f p50_ms %.3f p99_ms %.3f errors %ld\n", flows, flows / elapsed,
	    n ? all[n / 2] * 1000 : 0, n ? all[(size_t)(n * 0.99)] * 1000 : 0, errors);
	return errors > 0 && flows == 0 ? 1 : 0;
}
