# Makefile — the engine that reads Kbuild and builds every program in it.
#
#   make                 build/bootlinkd, build/bootlinkctl, helpers
#   make check           install missing Debian packages (as root), build, run every test
#   make check SANITIZE=1  the same with ASan+UBSan
#   make bench           benchmarks against peer servers (not pass/fail)
#   make demo            the main job on built-in defaults
#
# Objects go to build/ (build-san/ with SANITIZE=1) so both builds can coexist.

include Kbuild

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
  O ?= build-san
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  O ?= build
  SANFLAGS :=
endif

CC ?= cc
PKG_CONFIG ?= pkg-config
ALL_PKGS := $(sort $(foreach p,$(programs) $(tests-y),$($(p)-pkgs)))
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(ALL_PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
VERSION := 0.1.0
CFLAGS += -DBL_VERSION=\"$(VERSION)\"
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
          -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread -MMD -MP \
          -Icommon -Idaemon $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)

# $(call objs,PROG): PROG's objects under $(O)/
objs = $(addprefix $(O)/,$(sort $($(1)-y)))
libs = $(shell $(PKG_CONFIG) --libs $($(1)-pkgs) 2>/dev/null)

# Every library the appliance builds on, found by pkg-config. libnl-genl-3
# is for the kernel nbd helper (bootlink-attach) of the boot chain.
REQUIRED_PKGS := liburing sqlite3 blkid libnl-genl-3.0 nettle gnutls

all: pkgcheck $(addprefix $(O)/,$(programs))

pkgcheck:
	@missing=""; for p in $(REQUIRED_PKGS); do $(PKG_CONFIG) --exists $$p || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "missing libraries (pkg-config):$$missing -- run 'make deps' as root on Debian 12, or see README.md" >&2; \
		exit 1; \
	fi

define prog_rule
$(O)/$(1): $(call objs,$(1))
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $(call libs,$(1)) $$(LDLIBS)
endef
$(foreach p,$(programs) $(tests-y),$(eval $(call prog_rule,$(p))))

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

-include $(shell find $(O) -name '*.d' 2>/dev/null)

.PHONY: all pkgcheck deps check unit bench demo fuzz soak load clean
deps:
	@tests/lib/deps.sh

unit: $(addprefix $(O)/,$(tests-y))

check: deps
	@$(MAKE) --no-print-directory all unit
	@BUILD=$(O) SANITIZE=$(SANITIZE) tests/run.sh

bench: deps all
	@BUILD=$(O) bench/run.sh

demo: deps all
	@BUILD=$(O) tests/lib/demo.sh

# libFuzzer harnesses (Kbuild's fuzz-y) with clang, ASan and UBSan; each
# runs FUZZ_SECONDS (default 60) over its corpus in tests/fuzz/corpus/NAME,
# which grows as the fuzzer finds new paths (commit what it adds).
FUZZ_SECONDS ?= 60
fuzz:
	@mkdir -p build-fuzz
	@set -e; $(foreach n,$(fuzz-y), \
		clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Idaemon -D_GNU_SOURCE \
			$($(n)-src) -o build-fuzz/$(n); \
		mkdir -p tests/fuzz/corpus/$(n); \
		build-fuzz/$(n) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 tests/fuzz/corpus/$(n) 2>&1 | \
			grep -E "^(stat::number_of_executed_units|Done|==.*ERROR)" | sed 's|^|$(n): |';)

# Crash-consistency soak (docs/hardening.md): tests/test-crash.sh with
# CRASH_ROUNDS kill -9 rounds (make check runs 6), about 6 s per round.
CRASH_ROUNDS ?= 200
soak: deps all
	@CRASH_ROUNDS=$(CRASH_ROUNDS) TEST_TIMEOUT=$$(($(CRASH_ROUNDS) * 30 + 300)) BUILD=$(O) tests/run.sh test-crash

# Load at a bigger scale than make check's (docs/hardening.md): connections
# held per protocol, then a storm on top; prints RSS per idle connection.
LOAD_NBD ?= 2500
LOAD_ISCSI ?= 2500
LOAD_STORM ?= 1000
load: deps all
	@LOAD_NBD=$(LOAD_NBD) LOAD_ISCSI=$(LOAD_ISCSI) LOAD_STORM=$(LOAD_STORM) BUILD=$(O) tests/run.sh test-load && \
		grep -E "^(held|storm|after close)" $(O)/test-logs/test-load.log

clean:
	rm -rf build build-san build-fuzz

# ---- ops: manual pages and install ------------------------------------
#
#   make man                       $(O)/man/: bootlink-config.5 generated from the
#                                  config schema, the hand-written pages of man/
#   make install DESTDIR=... PREFIX=/usr
#                                  programs in $(PREFIX)/sbin, pages in
#                                  $(PREFIX)/share/man, /etc/bootlink (daemon/user
#                                  and a README of every key and default),
#                                  /var/lib/bootlink, every unit of dist/systemd/
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
STATEDIR ?= $(if $(filter /usr,$(PREFIX)),/var/lib,$(PREFIX)/var/lib)
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
INSTALL_PROGS := bootlinkd bootlinkctl bootlink-stage bootlink-attach
.PHONY: man install

man: $(O)/bootlink-confdoc
	@mkdir -p $(O)/man
	$(O)/bootlink-confdoc man >$(O)/man/bootlink-config.5
	$(O)/bootlink-confdoc defaults >$(O)/man/README.etc
	cp man/*.8 $(O)/man/

install: all man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	@set -e; for p in $(INSTALL_PROGS); do \
		if [ -x $(O)/$$p ]; then install -m 0755 $(O)/$$p $(DESTDIR)$(SBINDIR)/$$p; \
		else echo "install: $$p is not built here; skipped"; fi; done
	install -m 0644 $(O)/man/bootlink-config.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(SYSCONFDIR)/bootlink/daemon
	install -m 0644 $(O)/man/README.etc $(DESTDIR)$(SYSCONFDIR)/bootlink/README
	echo bootlink >$(DESTDIR)$(SYSCONFDIR)/bootlink/daemon/user
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/bootlink/daemon/user
	install -d -m 0750 $(DESTDIR)$(STATEDIR)/bootlink $(DESTDIR)$(STATEDIR)/bootlink/overlays \
		$(DESTDIR)$(STATEDIR)/bootlink/versions
	install -d $(DESTDIR)$(UNITDIR)
	install -m 0644 dist/systemd/*.service $(DESTDIR)$(UNITDIR)/
