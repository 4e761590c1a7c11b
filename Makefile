# sssn-host - a C runtime for Lua systems: event loop, channels, TTL service registry.
# `make help` lists the targets.

PREFIX  ?= /usr/local
DESTDIR ?=
LUADIR   = $(PREFIX)/share/sssn-host/lua
WEBDIR   = $(PREFIX)/share/sssn-host/web
VERSION  = 0.1.0

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
CPPFLAGS += -Ihost -D_GNU_SOURCE -DSSSN_VERSION='"$(VERSION)"' -DSSSN_LUA_DIR='"$(LUADIR)"' $(LUA_CFLAGS)
LDLIBS  += $(LUA_LIBS) -lev -lhttp_parser -lcurl -lssl -lcrypto -lsqlite3 -lpthread -lreadline -lm

# `make test SANITIZE=1` builds and tests with AddressSanitizer and UBSan.
ifeq ($(SANITIZE),1)
VARIANT  = san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Lua blocks from malloc, not the pool (host.c), so ASan sees every use after free
CPPFLAGS += -DSSSN_NO_POOL
LDFLAGS += -fsanitize=address,undefined
else
VARIANT  = normal
endif
BUILD = build/$(VARIANT)

# The runtime in layers, one folder each, lowest first (see ARCHITECTURE.md): a file calls only
# into its own folder and the folders before it.
LAYERS = core model rt net vm sys bind svc app
SRCS = $(foreach l,$(LAYERS),$(wildcard host/$(l)/*.c))
HDRS = $(foreach l,$(LAYERS),$(wildcard host/$(l)/*.h))
OBJS = $(SRCS:host/%.c=$(BUILD)/%.o)
# What the C unit tests link: the layers below the Lua states (data structures, the loop
# with its clock and timers, the HTTP server and client); they need only the libraries above.
TESTLIB = $(filter $(BUILD)/core/% $(BUILD)/model/% $(BUILD)/rt/% $(BUILD)/net/%,$(OBJS))
CTESTS = $(patsubst spec/c/%.c,$(BUILD)/tests/%,$(wildcard spec/c/test_*.c))
# The keep-alive's test runs the policy on the runtime (test clock) over a fake backend: TESTLIB
# already links the runtime, so only the policy and the backend interface are added.
KEEPALIVE_TESTLIB = $(BUILD)/sys/keepalive.o $(BUILD)/sys/regbackend.o

.PHONY: all deps demo test bench install uninstall clean help fuzz FORCE

all: sssn-host

help:
	@echo "make            build ./sssn-host"
	@echo "make demo       install missing Debian packages, build, run the discovery example"
	@echo "make test       install missing Debian packages, build, run every test"
	@echo "make test SANITIZE=1   the same under AddressSanitizer + UBSan"
	@echo "make bench      run the benchmarks (a few minutes); table + bench-results.json"
	@echo "make install    install to \$$(DESTDIR)\$$(PREFIX) (PREFIX=$(PREFIX))"
	@echo "make uninstall  remove what install put there"
	@echo "make fuzz       fuzz JSON, the JSON text checker, the HTTP request path and JWT verification with libFuzzer (needs clang; FUZZ_SECONDS=60 each)"
	@echo "make clean      remove build output"

deps:
	@bash scripts/deps.sh

# Relink when the variant (normal / san) changes.
build/variant: FORCE
	@mkdir -p build
	@echo $(VARIANT) | cmp -s - $@ || echo $(VARIANT) > $@

sssn-host: $(OBJS) build/variant
	$(CC) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.o: host/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/tests/%: spec/c/%.c $(TESTLIB) $(wildcard spec/c/*.h)
	@mkdir -p $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(TESTLIB) $(LDLIBS)

$(BUILD)/tests/test_keepalive: $(KEEPALIVE_TESTLIB)
$(BUILD)/tests/test_keepalive: TESTLIB += $(KEEPALIVE_TESTLIB)
# The SQLite store's test runs the store on the runtime's loop (its writer reports through it).
$(BUILD)/tests/test_store_sqlite: $(BUILD)/sys/store_sqlite.o
$(BUILD)/tests/test_store_sqlite: TESTLIB += $(BUILD)/sys/store_sqlite.o

demo: deps
	@$(MAKE) --no-print-directory all
	./sssn-host --duration 5 examples/discovery/temperature_service.lua examples/discovery/data_consumer.lua

test: deps
	@$(MAKE) --no-print-directory all $(CTESTS)
	@bash scripts/run-tests.sh $(CTESTS)

# SSSN_PY_SRC=DIR make bench: also measures the Python sssn v0.0.1 from its source tree DIR.
bench: deps
	@$(MAKE) --no-print-directory all
	@command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
	SSSN_PY_SRC="$(SSSN_PY_SRC)" bash scripts/bench/run.sh ./sssn-host

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LUADIR)/sssn
	install -m 755 sssn-host $(DESTDIR)$(PREFIX)/bin/sssn-host
	install -m 644 lua/sssn/*.lua $(DESTDIR)$(LUADIR)/sssn/
	install -d $(DESTDIR)$(WEBDIR)
	install -m 644 web/* $(DESTDIR)$(WEBDIR)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/sssn-host
	rm -rf $(DESTDIR)$(PREFIX)/share/sssn-host

FUZZ_SECONDS ?= 60
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install clang" >&2; exit 1; }
	@mkdir -p build/fuzz-corpus
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -Ihost $(LUA_CFLAGS) -o build/fuzz_json spec/fuzz/fuzz_json.c host/core/json.c host/core/strbuf.c $(LUA_LIBS) -lm
	build/fuzz_json -max_total_time=$(FUZZ_SECONDS) -dict=spec/fuzz/json.dict build/fuzz-corpus
	@mkdir -p build/fuzz-corpus-jwt
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -Ihost $(LUA_CFLAGS) -o build/fuzz_jwt spec/fuzz/fuzz_jwt.c host/core/jwt.c host/core/jsonread.c \
	    host/core/json.c host/core/strbuf.c $(LUA_LIBS) -lcrypto -lm
	build/fuzz_jwt -max_total_time=$(FUZZ_SECONDS) -dict=spec/fuzz/json.dict build/fuzz-corpus-jwt
	@mkdir -p build/fuzz-corpus-http build/fuzz-corpus-json-text
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -Ihost -o build/fuzz_http spec/fuzz/fuzz_http.c host/net/http_server.c host/net/tls.c $(wildcard host/rt/*.c) \
	    host/core/strbuf.c host/core/hashmap.c host/core/heap.c host/core/log.c -lev -lhttp_parser -lssl -lcrypto -lm
	build/fuzz_http -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/ build/fuzz-corpus-http
	clang -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -Ihost $(LUA_CFLAGS) -o build/fuzz_json_text spec/fuzz/fuzz_json_text.c host/core/json_text.c host/core/json.c \
	    host/core/strbuf.c $(LUA_LIBS) -lm
	build/fuzz_json_text -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/ -dict=spec/fuzz/json.dict build/fuzz-corpus-json-text

clean:
	rm -rf build sssn-host
