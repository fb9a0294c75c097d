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

all: $(addprefix $(O)/,$(programs))

define prog_rule
$(O)/$(1): $(call objs,$(1))
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $(call libs,$(1)) $$(LDLIBS)
endef
$(foreach p,$(programs) $(tests-y),$(eval $(call prog_rule,$(p))))

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

-include $(shell find $(O) -name '*.d' 2>/dev/null)

.PHONY: all deps check unit bench demo clean
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

clean:
	rm -rf build build-san
