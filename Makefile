# mcpd top-level Makefile.
#   make            build (runs scripts/install-deps.sh and ./configure first)
#   make run        build and serve conf/mcpd.yaml on 127.0.0.1:8080
#   make check      no include cycle (scripts/include-cycles), every unit and
#                   integration test, then again under ASan+UBSan, then each
#                   fuzz target briefly
#   make fuzz       each libFuzzer target (tests/fuzz) for FUZZ_TIME seconds
#   make install    PREFIX=/usr/local DESTDIR= (paths compiled in follow PREFIX)
#   make deb        the Debian packages (debian/) in build-deb/, checked by lintian

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
# /usr installs read /etc, as Debian's packages do; other prefixes keep their own etc.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
LIBDIR     ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
LOCALSTATEDIR ?= $(if $(filter /usr,$(PREFIX)),/var,$(PREFIX)/var)
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
DESTDIR    ?=

BUILD ?= build
SANITIZE ?=

.DEFAULT_GOAL := all

-include config.mk

# No config.mk yet: install what is missing, then configure. Make restarts
# itself once config.mk exists.
config.mk: configure.ac config.mk.in scripts/install-deps.sh
	@scripts/install-deps.sh
	autoreconf -fi
	./configure -q

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wformat=2 -Wno-unused-parameter -Wvla -Wpointer-arith
OPT ?= -O2 -g
SAN_ON = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_FLAGS = $(if $(SANITIZE),$(SAN_ON))
# FUZZ=1 (clang): coverage for libFuzzer in every object; see make fuzz.
FUZZ_FLAGS = $(if $(FUZZ),-fsanitize=fuzzer-no-link)
# The daemon's folders are its layers (README, Layout); each is on the
# include path, so that a header is named alone: #include "config.h".
DAEMON_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard daemon/*/*.[ch]))))
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN_FLAGS) $(FUZZ_FLAGS) -fPIC -Iinclude $(DAEMON_DIRS:%=-I%) \
	$(LIBEVENT_CFLAGS) $(YAML_CFLAGS) $(CJSON_CFLAGS) $(OPENSSL_CFLAGS) $(CURL_CFLAGS) $(PCRE2_CFLAGS) $(ZLIB_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN_FLAGS) $(LDFLAGS)
LIBS_ALL = $(LIBEVENT_LIBS) $(YAML_LIBS) $(CJSON_LIBS) $(OPENSSL_LIBS) $(CURL_LIBS) $(PCRE2_LIBS) $(ZLIB_LIBS) -lm -ldl -lpthread

DAEMON_SRCS := $(sort $(wildcard daemon/*/*.c))
# The cloud clients of the plugins (plugins/common), built into the daemon
# too for one call: a KMS's decrypt of a wrapped data key at config load
# (daemon/core/keykms.c: AWS KMS, Google Cloud KMS, Azure Key Vault).
DAEMON_AWS_OBJS := $(patsubst %,$(BUILD)/plugins/common/%.o,aws aws_creds aws_sigv4 aws_xml fetch isotime b64 \
	credfile tokcache gcp_auth azure_auth)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o) $(DAEMON_AWS_OBJS)
# Every daemon object but main.o: what the unit tests and fuzz targets link.
DAEMON_LINK_OBJS := $(filter-out $(BUILD)/daemon/process/main.o,$(DAEMON_OBJS))
UNIT_SRCS   := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJS   := $(UNIT_SRCS:%.c=$(BUILD)/%.o)
# Plugin code with no host in it, tested as it is (plugins/jwt/jwt.c,
# plugins/introspection/introspect.c, plugins/common/resolve.c, opfail.c, the
# AWS signing, XML and credential code, plugins/sqs/routes.c, the Cosmos DB
# signature and the Entra ID token code, plugins/amqp/presence.c and sas.c,
# the Google credential and call code, isotime.c, b64.c, utf8.c, keyorder.c,
# storeop.c, credfile.c, subs.c and localq.c).
UNIT_PLUGIN_OBJS := $(BUILD)/plugins/jwt/jwt.o $(BUILD)/plugins/introspection/introspect.o \
	$(BUILD)/plugins/common/resolve.o $(BUILD)/plugins/common/opfail.o \
	$(BUILD)/plugins/common/aws_sigv4.o $(BUILD)/plugins/common/aws_xml.o \
	$(BUILD)/plugins/common/aws_creds.o $(BUILD)/plugins/common/fetch.o $(BUILD)/plugins/sqs/routes.o \
	$(BUILD)/plugins/cosmos/cosmos_sig.o $(BUILD)/plugins/common/azure_auth.o $(BUILD)/plugins/common/tokcache.o \
	$(BUILD)/plugins/amqp/presence.o $(BUILD)/plugins/amqp/sas.o \
	$(BUILD)/plugins/common/isotime.o $(BUILD)/plugins/common/gcp.o $(BUILD)/plugins/common/gcp_auth.o \
	$(BUILD)/plugins/common/b64.o $(BUILD)/plugins/common/utf8.o $(BUILD)/plugins/common/keyorder.o \
	$(BUILD)/plugins/common/storeop.o $(BUILD)/plugins/common/credfile.o $(BUILD)/plugins/common/subs.o \
	$(BUILD)/plugins/common/localq.o

MCPD = $(BUILD)/mcpd
HELPER = $(BUILD)/mcpd-tool
# plugins/common holds sources that several plugins build in (PLUGIN_SHARED_<plugin>): no plugin of its own.
PLUGIN_SRCS := $(filter-out plugins/common/%,$(sort $(wildcard plugins/*/*.c)))
PLUGINS := $(patsubst plugins/%/,$(BUILD)/plugins/%.so,$(sort $(dir $(PLUGIN_SRCS))))

.PHONY: all run check check-unit check-integration check-asan check-fuzz fuzz fuzz-run fuzz-build \
	fuzz-repro bench install uninstall deb lambda clean distclean FORCE

all: $(MCPD) $(HELPER) $(PLUGINS)

$(MCPD): $(DAEMON_OBJS)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The helper reads and prints JSON with the daemon's json.c: numbers as written.
$(HELPER): $(BUILD)/tools/mcpd-tool.o $(BUILD)/daemon/lib/json.o $(BUILD)/daemon/lib/arena.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CJSON_LIBS) -lm

# Plugins are built like third-party ones: with include/mcpd/plugin.h only.
PLUGIN_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SAN_FLAGS) -fPIC -fvisibility=hidden -Iinclude \
	$(LIBEVENT_CFLAGS) $(HIREDIS_CFLAGS) $(CFLAGS)
# A plugin's own headers (plugins/NAME/*.h) are prerequisites too.
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: plugins/%/*.c $$(wildcard plugins/$$*/*.h) $$(PLUGIN_SHARED_$$*) include/mcpd/plugin.h | config.mk
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_CFLAGS_$*) -shared -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) $(PLUGIN_LIBS_$*)

# Each plugin links its own client library.
PLUGIN_LIBS_lmdb = -llmdb -lpthread
PLUGIN_LIBS_local = $(LIBEVENT_LIBS)
PLUGIN_CFLAGS_local = -Iplugins/common
PLUGIN_SHARED_local = plugins/common/subs.c plugins/common/subs.h plugins/common/hash.h
# evdns (host names looked up on the loop) is in libevent's core library.
PLUGIN_LIBS_redis = $(HIREDIS_LIBS) $(LIBEVENT_LIBS)
PLUGIN_CFLAGS_redis = -Iplugins/common
PLUGIN_SHARED_redis = plugins/common/resolve.c plugins/common/resolve.h plugins/common/subs.c plugins/common/subs.h \
	plugins/common/hash.h plugins/common/opfail.c plugins/common/opfail.h
PLUGIN_LIBS_postgres = $(LIBPQ_LIBS) $(LIBEVENT_LIBS)
PLUGIN_CFLAGS_postgres = $(LIBPQ_CFLAGS) -Iplugins/common
PLUGIN_SHARED_postgres = plugins/common/resolve.c plugins/common/resolve.h plugins/common/opfail.c \
	plugins/common/opfail.h
PLUGIN_LIBS_apikey = $(OPENSSL_LIBS)
PLUGIN_LIBS_jwt = $(CURL_LIBS) $(OPENSSL_LIBS) $(LIBEVENT_LIBS) $(CJSON_LIBS)
PLUGIN_CFLAGS_jwt = $(CURL_CFLAGS) $(CJSON_CFLAGS) $(OPENSSL_CFLAGS) -Iplugins/common
PLUGIN_SHARED_jwt = plugins/common/fetch.c plugins/common/fetch.h plugins/common/section.c plugins/common/section.h \
	plugins/common/clock.h
PLUGIN_LIBS_introspection = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_introspection = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_introspection = $(PLUGIN_SHARED_jwt)
# The AWS plugins: signed calls (plugins/common/aws*.c) over fetch.c.
AWS_SHARED = plugins/common/aws.c plugins/common/aws.h plugins/common/aws_creds.c plugins/common/aws_creds.h \
	plugins/common/aws_sigv4.c plugins/common/aws_sigv4.h plugins/common/aws_xml.c plugins/common/aws_xml.h \
	plugins/common/fetch.c plugins/common/fetch.h plugins/common/section.c plugins/common/section.h \
	plugins/common/clock.h plugins/common/backoff.h plugins/common/isotime.c plugins/common/isotime.h \
	plugins/common/b64.c plugins/common/b64.h plugins/common/credfile.c plugins/common/credfile.h \
	plugins/common/tokcache.c plugins/common/tokcache.h
PLUGIN_LIBS_dynamodb = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_dynamodb = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_dynamodb = $(AWS_SHARED) plugins/common/opfail.c plugins/common/opfail.h plugins/common/keyorder.c \
	plugins/common/keyorder.h plugins/common/hash.h plugins/common/storeop.c plugins/common/storeop.h
PLUGIN_LIBS_sqs = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_sqs = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_sqs = $(AWS_SHARED) plugins/common/subs.c plugins/common/subs.h plugins/common/hash.h \
	plugins/common/utf8.c plugins/common/utf8.h plugins/common/localq.c plugins/common/localq.h
# The Azure plugin: the Cosmos DB REST API with the account key or Entra ID
# tokens (plugins/common/azure_auth.c) over fetch.c.
AZURE_SHARED = plugins/common/azure_auth.c plugins/common/azure_auth.h plugins/common/tokcache.c \
	plugins/common/tokcache.h plugins/common/fetch.c plugins/common/fetch.h plugins/common/section.c \
	plugins/common/section.h plugins/common/clock.h plugins/common/backoff.h
PLUGIN_LIBS_cosmos = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_cosmos = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_cosmos = $(AZURE_SHARED) plugins/common/opfail.c plugins/common/opfail.h plugins/common/keyorder.c \
	plugins/common/keyorder.h plugins/common/hash.h plugins/common/storeop.c plugins/common/storeop.h \
	plugins/common/b64.c plugins/common/b64.h plugins/common/utf8.c plugins/common/utf8.h
# The Google Cloud plugins: REST calls with the default credentials
# (plugins/common/gcp*.c) over fetch.c.
GCP_SHARED = plugins/common/gcp.c plugins/common/gcp.h plugins/common/gcp_auth.c plugins/common/gcp_auth.h \
	plugins/common/fetch.c plugins/common/fetch.h plugins/common/section.c plugins/common/section.h \
	plugins/common/clock.h plugins/common/backoff.h plugins/common/isotime.c plugins/common/isotime.h \
	plugins/common/b64.c plugins/common/b64.h plugins/common/credfile.c plugins/common/credfile.h \
	plugins/common/tokcache.c plugins/common/tokcache.h
PLUGIN_LIBS_firestore = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_firestore = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_firestore = $(GCP_SHARED) plugins/common/opfail.c plugins/common/opfail.h plugins/common/keyorder.c \
	plugins/common/keyorder.h plugins/common/hash.h plugins/common/storeop.c plugins/common/storeop.h
PLUGIN_LIBS_pubsub = $(PLUGIN_LIBS_jwt)
PLUGIN_CFLAGS_pubsub = $(PLUGIN_CFLAGS_jwt)
PLUGIN_SHARED_pubsub = $(GCP_SHARED) plugins/common/subs.c plugins/common/subs.h plugins/common/hash.h \
	plugins/common/utf8.c plugins/common/utf8.h plugins/common/localq.c plugins/common/localq.h
PLUGIN_LIBS_nats = $(NATS_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) -lpthread
PLUGIN_CFLAGS_nats = $(NATS_CFLAGS) $(OPENSSL_CFLAGS) -Iplugins/common
PLUGIN_SHARED_nats = plugins/common/section.c plugins/common/section.h plugins/common/clock.h \
	plugins/common/subs.c plugins/common/subs.h plugins/common/hash.h
# amqp: Service Bus's management API and Entra ID tokens over fetch.c.
PLUGIN_LIBS_amqp = $(PROTON_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(CURL_LIBS) $(CJSON_LIBS)
PLUGIN_CFLAGS_amqp = $(PROTON_CFLAGS) $(OPENSSL_CFLAGS) $(CURL_CFLAGS) $(CJSON_CFLAGS) -Iplugins/common
PLUGIN_SHARED_amqp = plugins/common/section.c plugins/common/section.h plugins/common/clock.h \
	plugins/common/subs.c plugins/common/subs.h plugins/common/resolve.c plugins/common/resolve.h \
	plugins/common/fetch.c plugins/common/fetch.h plugins/common/azure_auth.c plugins/common/azure_auth.h \
	plugins/common/tokcache.c plugins/common/tokcache.h

# Not CFLAGS +=: a CFLAGS given on make's command line (debian/rules
# gives one) would override it.
$(BUILD)/daemon/core/keykms.o: OBJ_CFLAGS = -Iplugins/common

$(BUILD)/%.o: %.c | config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(OBJ_CFLAGS) -MMD -MP -c -o $@ $<

# paths.o carries the install paths; rebuild it alone when they change.
PATH_FLAGS = -DMCPD_VERSION='"$(VERSION)"' -DMCPD_SYSCONFDIR='"$(SYSCONFDIR)"' \
	-DMCPD_LIBDIR='"$(LIBDIR)"' -DMCPD_LIBEXECDIR='"$(LIBEXECDIR)"' -DMCPD_LOCALSTATEDIR='"$(LOCALSTATEDIR)"'
$(BUILD)/paths.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PATH_FLAGS)' | cmp -s - $@ || echo '$(PATH_FLAGS)' > $@
$(BUILD)/daemon/core/paths.o: daemon/core/paths.c $(BUILD)/paths.flags | config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PATH_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/unit/%.o: tests/unit/%.c | config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJS) $(UNIT_PLUGIN_OBJS) $(DAEMON_LINK_OBJS)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) $(CHECK_LIBS)

-include $(DAEMON_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(UNIT_PLUGIN_OBJS:.o=.d) $(BUILD)/tools/mcpd-tool.d

run: $(MCPD) $(HELPER) $(PLUGINS)
	$(MCPD) -c conf/mcpd.yaml

check-unit: $(BUILD)/unit-tests $(PLUGINS)
	$(BUILD)/unit-tests

check-integration: $(MCPD) $(HELPER) $(PLUGINS)
	MCPD=$(abspath $(MCPD)) python3 tests/integration/run.py

# The same tests against a build with AddressSanitizer and UBSan.
check-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT='-O1 -g' check-unit check-integration

check: config.mk
	@scripts/install-deps.sh test
	scripts/include-cycles
	$(MAKE) check-unit check-integration
	$(MAKE) check-asan
	$(MAKE) check-fuzz

# ---- fuzzing: libFuzzer targets, one per tests/fuzz/fuzz_NAME.c ----
# Built with clang, ASan and UBSan in a build directory of their own; the
# daemon's objects are the same lists as above. tests/fuzz/run.sh runs one
# target (seeds in tests/fuzz/corpus/NAME, what it learns in
# build-fuzz/fuzz-corpus/NAME) and prints where a crash's input went.
#   make fuzz [FUZZ_TIME=300] [FUZZ_TARGETS="http jwt"]
#   make check-fuzz                      each for FUZZ_CHECK_TIME seconds
#   make fuzz-repro TARGET=http INPUT=file
FUZZ_BUILD = build-fuzz
FUZZ_TIME ?= 300
FUZZ_CHECK_TIME ?= 10
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_CC ?= clang
FUZZ_MAKE = $(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SANITIZE=1 FUZZ=1 OPT='-O1 -g'
FUZZ_BINS = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
FUZZ_OBJS = $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/fuzz/fuzz_*.c))
# What each target links besides its own file. The config target brings
# its own plugin_load (it refuses): a fuzzed file must not dlopen anything.
FUZZ_LINK_http = $(DAEMON_LINK_OBJS)
FUZZ_LINK_jsonrpc = $(DAEMON_LINK_OBJS)
FUZZ_LINK_json = $(BUILD)/daemon/lib/json.o $(BUILD)/daemon/lib/arena.o
FUZZ_LINK_config = $(filter-out $(BUILD)/daemon/core/plugin.o,$(DAEMON_LINK_OBJS))
FUZZ_LINK_reqstate = $(DAEMON_LINK_OBJS)
FUZZ_LINK_form = $(DAEMON_LINK_OBJS)
FUZZ_LINK_lambda = $(DAEMON_LINK_OBJS)
FUZZ_LINK_jwt = $(BUILD)/plugins/jwt/jwt.o $(BUILD)/daemon/lib/util.o
-include $(FUZZ_OBJS:.o=.d)
# Kept, so that a relink does not recompile them.
.SECONDARY: $(FUZZ_OBJS)

$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c | config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DFUZZ_SRCDIR='"$(CURDIR)"' -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/fuzz_%.o $$(FUZZ_LINK_$$*)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS_ALL)

fuzz-build: $(FUZZ_BINS)

fuzz-run: $(FUZZ_BINS)
	@failed=""; for t in $(FUZZ_TARGETS); do \
		tests/fuzz/run.sh $(BUILD) $$t $(FUZZ_TIME) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (inputs in $(BUILD)/fuzz-crashes/)"; exit 1; fi

fuzz: config.mk
	$(FUZZ_MAKE) fuzz-run FUZZ_TIME=$(FUZZ_TIME)

check-fuzz: config.mk
	$(FUZZ_MAKE) fuzz-run FUZZ_TIME=$(FUZZ_CHECK_TIME)

fuzz-repro: config.mk
	@test -n "$(TARGET)" -a -n "$(INPUT)" || { echo "usage: make fuzz-repro TARGET=name INPUT=file"; exit 2; }
	$(FUZZ_MAKE) $(FUZZ_BUILD)/fuzz/$(TARGET)
	FUZZ_VERBOSE=1 $(FUZZ_BUILD)/fuzz/$(TARGET) -runs=1 $(INPUT)

# Side by side with the official SDK server and nginx; prints, asserts nothing.
bench: $(MCPD) $(HELPER) $(PLUGINS)
	bash bench/run.sh

install: $(MCPD) $(HELPER) $(PLUGINS) $(PLUGINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/mcpd \
		$(DESTDIR)$(LIBDIR)/mcpd/plugins $(DESTDIR)$(LIBEXECDIR)/mcpd \
		$(DESTDIR)$(INCLUDEDIR)/mcpd $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8
	install -m 755 $(MCPD) $(DESTDIR)$(SBINDIR)/mcpd
	install -m 755 $(HELPER) $(DESTDIR)$(LIBEXECDIR)/mcpd/mcpd-tool
	$(if $(PLUGINS),install -m 755 $(PLUGINS) $(DESTDIR)$(LIBDIR)/mcpd/plugins/)
	install -m 644 include/mcpd/plugin.h $(DESTDIR)$(INCLUDEDIR)/mcpd/plugin.h
	install -m 644 man/mcpd-tool.1 $(DESTDIR)$(MANDIR)/man1/mcpd-tool.1
	install -m 644 man/mcpd.8 $(DESTDIR)$(MANDIR)/man8/mcpd.8
	install -m 644 man/mcpd.yaml.5 $(DESTDIR)$(MANDIR)/man5/mcpd.yaml.5
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/mcpd/mcpd.yaml ]; then \
		install -m 644 conf/mcpd.yaml conf/motd.txt $(DESTDIR)$(SYSCONFDIR)/mcpd/; \
		install -d $(DESTDIR)$(SYSCONFDIR)/mcpd/tools; \
		install -m 755 conf/tools/*.sh conf/tools/*.py $(DESTDIR)$(SYSCONFDIR)/mcpd/tools/; \
		(cd conf && find skills -type d) | while read d; do \
			install -d $(DESTDIR)$(SYSCONFDIR)/mcpd/$$d; done; \
		(cd conf && find skills -type f) | while read f; do \
			install -m 644 conf/$$f $(DESTDIR)$(SYSCONFDIR)/mcpd/$$f; done; \
	else \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/mcpd/mcpd.yaml, its tools and skills"; \
	fi

# The configuration and the state directory are the operator's: kept.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mcpd $(DESTDIR)$(MANDIR)/man8/mcpd.8 \
		$(DESTDIR)$(MANDIR)/man1/mcpd-tool.1 $(DESTDIR)$(MANDIR)/man5/mcpd.yaml.5 $(DESTDIR)$(INCLUDEDIR)/mcpd/plugin.h
	rm -rf $(DESTDIR)$(LIBEXECDIR)/mcpd $(DESTDIR)$(LIBDIR)/mcpd/plugins
	-rmdir $(DESTDIR)$(INCLUDEDIR)/mcpd $(DESTDIR)$(LIBDIR)/mcpd 2>/dev/null

# The zip of mcpd as an AWS Lambda function (provided.al2023): the
# bootstrap, mcpd, its plugins, the configuration and tool scripts, and the
# shared libraries beside them (scripts/lambda-package).
LAMBDA_ZIP ?= $(BUILD)/mcpd-lambda.zip
LAMBDA_CONFIG ?= conf/lambda/mcpd.yaml
LAMBDA_TOOLS ?= conf/tools
LAMBDA_PLUGINS ?= memory local dynamodb sqs apikey jwt
lambda: $(MCPD) $(HELPER) $(PLUGINS)
	scripts/lambda-package $(BUILD) $(LAMBDA_ZIP) $(LAMBDA_CONFIG) $(LAMBDA_TOOLS) "$(LAMBDA_PLUGINS)"

# Debian packages, built by dpkg-buildpackage in a copy of the source
# (DEB_DIR/src, PREFIX=/usr), then checked by lintian: an error or a
# warning fails (the tags left are overridden in debian/, with a reason).
DEB_DIR ?= build-deb
deb:
	@scripts/install-deps.sh deb
	scripts/build-deb.sh $(DEB_DIR)
	lintian --fail-on error,warning $(DEB_DIR)/mcpd_*.changes

clean:
	rm -rf build build-asan build-fuzz build-deb

distclean: clean
	rm -rf config.mk config.log config.status configure configure~ aclocal.m4 autom4te.cache
