# A thin layer over cargo: builds km and installs it with its tools (docs/deploy.md),
# and the README's two commands, which install the Debian packages they need first.
#   make                                  cargo build --release (km, krun and km_cli)
#   make demo                             builds the examples, runs hello under km
#   make test [TEST_FLAGS=...]            the whole test suite
#   make install [PREFIX=DIR] [DESTDIR=]  km, krun, km_cli, kontain-gcc, kontain-g++,
#                                         vscode configs, km_snapshot.h, kontain/snapshots.py
#   make uninstall [PREFIX=DIR] [DESTDIR=]
.DEFAULT_GOAL := build
PREFIX ?= /opt/kontain
BINDIR = $(DESTDIR)$(PREFIX)/bin
VSCODEDIR = $(DESTDIR)$(PREFIX)/share/kontain/vscode
INCLUDEDIR = $(DESTDIR)$(PREFIX)/include
PYTHONDIR = $(DESTDIR)$(PREFIX)/share/kontain/python/kontain
KM_CLI ?= $(dir $(KM))km_cli
VSCODE_FILES = launch.json settings.json tasks.json

# The km and krun to install: the release builds (static, .cargo/config.toml
# names the target), built first; `KM=FILE KRUN=FILE` install those files as they are.
RELEASE = target/x86_64-unknown-linux-gnu/release
ifeq ($(origin KM)$(origin KRUN),undefinedundefined)
install: build
endif
KM ?= $(RELEASE)/km
KRUN ?= $(RELEASE)/krun

build:
	cargo build --release -p km -p krun -p km_cli

install:
	install -d $(BINDIR) $(VSCODEDIR)
	install -m 755 $(KM) $(BINDIR)/km
	install -m 755 $(KRUN) $(BINDIR)/krun
	install -m 755 tools/kontain-gcc $(BINDIR)/kontain-gcc
	ln -sf kontain-gcc $(BINDIR)/kontain-g++
	install -m 644 $(addprefix vscode/,$(VSCODE_FILES)) $(VSCODEDIR)
	install -m 755 $(KM_CLI) $(BINDIR)/km_cli
	install -d $(INCLUDEDIR) $(PYTHONDIR)
	install -m 644 include/km_snapshot.h $(INCLUDEDIR)/km_snapshot.h
	install -m 644 kontain/__init__.py kontain/snapshots.py $(PYTHONDIR)

# Removes what install put there, then the directories it made that are now
# empty (never PREFIX's parents).
uninstall:
	rm -f $(BINDIR)/km $(BINDIR)/krun $(BINDIR)/km_cli $(BINDIR)/kontain-gcc $(BINDIR)/kontain-g++
	rm -f $(addprefix $(VSCODEDIR)/,$(VSCODE_FILES))
	rm -f $(INCLUDEDIR)/km_snapshot.h $(PYTHONDIR)/__init__.py $(PYTHONDIR)/snapshots.py
	rmdir $(PYTHONDIR) $(DESTDIR)$(PREFIX)/share/kontain/python $(INCLUDEDIR) 2>/dev/null || true
	rmdir $(VSCODEDIR) $(DESTDIR)$(PREFIX)/share/kontain $(DESTDIR)$(PREFIX)/share \
	      $(BINDIR) $(DESTDIR)$(PREFIX) 2>/dev/null || true

# The README's two commands.
demo:
	scripts/install-deps demo
	$(MAKE) -C examples
	cargo run --release -- examples/build/hello.musl a b

test:
	scripts/install-deps
	cargo test --release --workspace $(TEST_FLAGS)

.PHONY: build install uninstall demo test
