# Sanitizers, valgrind and fuzzing; included by the top Makefile.
#
#   make test-asan       the module built with -fsanitize=address,undefined
#                        into build/asan/, and the whole t/ suite with
#                        nginx running it under the ASan runtime (preloaded);
#                        the unit tests too.  Fails on a test failure or on
#                        any sanitizer report (build/asan/reports/).
#   make test-valgrind   the t/ suite with nginx under valgrind memcheck;
#                        fails on a test failure, a memory error or a block
#                        definitely lost by the module
#                        (fuzz/valgrind-check.pl).  Timing-bound tests
#                        scale their phases, timeouts and bounds by
#                        APIKEY_TEST_TIME_FACTOR (slack()), and so does the
#                        default apikey_redis_timeout (ApiKey::Test::Nginx).
#                        .ci/run runs it; about 5 to 7 minutes on 2 cores.
#   make fuzz            each libFuzzer target (clang) for FUZZ_SECONDS
#                        (60) from fuzz/corpus/<target>; fails on a crash,
#                        a leak, a timeout, an out-of-memory or a sanitizer
#                        report (build/fuzz/artifacts/).
#
# Each installs what it needs on a fresh Debian 12 machine: valgrind;
# clang and libclang-rt-14-dev (libFuzzer).  ASan and UBSan come with gcc.

ASAN_BUILD     := $(BUILD)/asan
ASAN_FLAGS     := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_NGINX     := $(ASAN_BUILD)/nginx-asan
ASAN_REPORTS   := $(ASAN_BUILD)/reports
ASAN_OPTIONS_T := detect_leaks=0:halt_on_error=1:abort_on_error=0:$\
                  allocator_may_return_null=1:detect_odr_violation=0:$\
                  log_path=$(CURDIR)/$(ASAN_REPORTS)/asan
UBSAN_OPTIONS_T := print_stacktrace=1:halt_on_error=0:$\
                  log_path=$(CURDIR)/$(ASAN_REPORTS)/ubsan

VG_BUILD       := $(BUILD)/valgrind
VG_NGINX       := $(VG_BUILD)/nginx-valgrind
VG_REPORTS     := $(VG_BUILD)/reports

FUZZ_BUILD     := $(BUILD)/fuzz
FUZZ_SECONDS   ?= 60
FUZZ_CC        ?= clang
FUZZ_CFLAGS    := -g -O1 -fsanitize=fuzzer,address,undefined \
                  -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_INCS      := $(addprefix -I $(NGX_BUILD)/, src/core src/event \
                  src/event/modules src/os/unix objs src/http \
                  src/http/modules src/http/v2) -I src
FUZZ_TARGETS   := token key record admin rate cidrs
FUZZ_HDRS      := $(wildcard src/ngx_http_apikey*.h)

# $(call apikey_need,package ...): installs the Debian packages missing
apikey_need = missing=""; \
	for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q \
	        --no-install-recommends $$missing; \
	fi

.PHONY: test-asan test-valgrind fuzz fuzz-build

test-asan: deps all
	$(MAKE) --no-print-directory module BUILD=$(ASAN_BUILD) \
	    NGX_CC_OPT="-g -O1 -fPIC $(ASAN_FLAGS)" \
	    NGX_LD_OPT="-fPIC $(ASAN_FLAGS)"
	ASAN_OPTIONS=detect_leaks=1 $(MAKE) --no-print-directory unit \
	    BUILD=$(ASAN_BUILD) \
	    CFLAGS="-g -O1 -Wall -Wextra $(ASAN_FLAGS) -fno-sanitize-recover=all"
	rm -rf $(ASAN_REPORTS)
	mkdir -p $(ASAN_REPORTS)
	{ echo '#!/bin/sh'; \
	  echo '# nginx with the ASan runtime first, for the ASan-built module'; \
	  echo "export LD_PRELOAD=$$(readlink -f \
	      $$($(CC) -print-file-name=libasan.so))"; \
	  echo 'export ASAN_OPTIONS=$(ASAN_OPTIONS_T)'; \
	  echo 'export UBSAN_OPTIONS=$(UBSAN_OPTIONS_T)'; \
	  echo 'exec nginx "$$@"'; } > $(ASAN_NGINX)
	chmod +x $(ASAN_NGINX)
	@rc=0; \
	APIKEY_TEST_NGINX=$(CURDIR)/$(ASAN_NGINX) \
	APIKEY_TEST_MODULE=$(CURDIR)/$(ASAN_BUILD)/ngx_http_apikey_module.so \
	APIKEY_TEST_TIME_FACTOR=3 APIKEY_TEST_SANITIZER=asan \
	APIKEY_TEST_SANITIZER_DIR=$(CURDIR)/$(ASAN_REPORTS) \
	    prove $(PROVE_FLAGS) -I t/lib t/ || rc=1; \
	if ls $(ASAN_REPORTS)/* > /dev/null 2>&1; then \
	    for f in $(ASAN_REPORTS)/*; do echo "=== $$f"; cat "$$f"; done; \
	    echo "test-asan: sanitizer reports in $(ASAN_REPORTS)" >&2; \
	    exit 1; \
	fi; \
	[ $$rc = 0 ] && echo "test-asan: no sanitizer report"; exit $$rc

test-valgrind: deps all
	@$(call apikey_need,valgrind)
	mkdir -p $(VG_BUILD)
	rm -rf $(VG_REPORTS)
	mkdir -p $(VG_REPORTS)
	$(CC) -shared -fPIC -O2 -o $(VG_BUILD)/nodlclose.so fuzz/nodlclose.c
	{ echo '#!/bin/sh'; \
	  echo '# nginx under valgrind memcheck, modules kept mapped at exit'; \
	  echo 'export LD_PRELOAD=$(CURDIR)/$(VG_BUILD)/nodlclose.so'; \
	  echo 'exec valgrind --tool=memcheck --trace-children=yes \'; \
	  echo '    --leak-check=full --show-leak-kinds=definite \'; \
	  echo '    --errors-for-leak-kinds=definite --num-callers=30 \'; \
	  echo '    --log-file=$(CURDIR)/$(VG_REPORTS)/vg.%p nginx "$$@"'; \
	} > $(VG_NGINX)
	chmod +x $(VG_NGINX)
	@rc=0; \
	APIKEY_TEST_NGINX=$(CURDIR)/$(VG_NGINX) \
	APIKEY_TEST_TIME_FACTOR=10 APIKEY_TEST_VALGRIND=1 \
	    prove $(PROVE_FLAGS) -I t/lib t/ || rc=1; \
	perl fuzz/valgrind-check.pl $(VG_REPORTS)/vg.* || exit 1; \
	exit $$rc

fuzz-build: $(addprefix $(FUZZ_BUILD)/fuzz_, $(FUZZ_TARGETS))

$(FUZZ_BUILD)/.deps: | deps
	@$(call apikey_need,clang libclang-rt-14-dev)
	mkdir -p $(FUZZ_BUILD)
	touch $@

$(FUZZ_BUILD)/fuzz_token: fuzz/fuzz_token.c src/ngx_http_apikey_policy.c \
    src/ngx_http_apikey_policy.h src/ngx_http_apikey_cidr.c \
    src/ngx_http_apikey_cidr.h | $(FUZZ_BUILD)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I src -o $@ fuzz/fuzz_token.c \
	    src/ngx_http_apikey_policy.c src/ngx_http_apikey_cidr.c

$(FUZZ_BUILD)/fuzz_cidrs: fuzz/fuzz_cidrs.c src/ngx_http_apikey_cidr.c \
    src/ngx_http_apikey_cidr.h | $(FUZZ_BUILD)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I src -o $@ fuzz/fuzz_cidrs.c \
	    src/ngx_http_apikey_cidr.c

$(FUZZ_BUILD)/fuzz_record: fuzz/fuzz_record.c fuzz/ngx_stubs.c \
    src/ngx_http_apikey_record.c src/ngx_http_apikey_reader.c \
    src/ngx_http_apikey_policy.c src/ngx_http_apikey_rate.c \
    src/ngx_http_apikey_cidr.c $(FUZZ_HDRS) \
    | $(FUZZ_BUILD)/.deps $(NGX_BUILD)/objs/Makefile
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_INCS) -o $@ fuzz/fuzz_record.c \
	    fuzz/ngx_stubs.c src/ngx_http_apikey_record.c \
	    src/ngx_http_apikey_reader.c src/ngx_http_apikey_policy.c \
	    src/ngx_http_apikey_rate.c src/ngx_http_apikey_cidr.c \
	    -lhiredis -lcrypto

$(FUZZ_BUILD)/fuzz_key: fuzz/fuzz_key.c src/ngx_http_apikey_key.c \
    src/ngx_http_apikey_key.h | $(FUZZ_BUILD)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I src -o $@ fuzz/fuzz_key.c \
	    src/ngx_http_apikey_key.c -lcrypto

$(FUZZ_BUILD)/fuzz_admin: fuzz/fuzz_admin.c src/ngx_http_apikey_admin_body.c \
    src/ngx_http_apikey_object.c src/ngx_http_apikey_policy.c \
    src/ngx_http_apikey_time.c src/ngx_http_apikey_key.c \
    src/ngx_http_apikey_rate.c src/ngx_http_apikey_cidr.c $(FUZZ_HDRS) \
    | $(FUZZ_BUILD)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I src -o $@ fuzz/fuzz_admin.c \
	    src/ngx_http_apikey_admin_body.c src/ngx_http_apikey_object.c \
	    src/ngx_http_apikey_policy.c src/ngx_http_apikey_time.c \
	    src/ngx_http_apikey_key.c src/ngx_http_apikey_rate.c \
	    src/ngx_http_apikey_cidr.c \
	    -ljansson -lcrypto

$(FUZZ_BUILD)/fuzz_rate: fuzz/fuzz_rate.c src/ngx_http_apikey_rate.c \
    src/ngx_http_apikey_rate.h | $(FUZZ_BUILD)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I src -o $@ fuzz/fuzz_rate.c \
	    src/ngx_http_apikey_rate.c

fuzz: fuzz-build
	@rc=0; \
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	    if $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
	        -dict=fuzz/$$t.dict -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
	        $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t \
	        > $(FUZZ_BUILD)/$$t.log 2>&1; \
	    then \
	        grep -E '^Done|stat::(number_of_executed_units|peak_rss)' \
	            $(FUZZ_BUILD)/$$t.log | sed 's/^/    /'; \
	    else \
	        tail -n 40 $(FUZZ_BUILD)/$$t.log; \
	        echo "fuzz: $$t failed; the input is in" \
	             "$(FUZZ_BUILD)/artifacts/ (log: $(FUZZ_BUILD)/$$t.log)" >&2; \
	        rc=1; \
	    fi; \
	done; \
	exit $$rc
