# Ferry — build, test, demo and install.
#   make demo      the whole story on one machine (needs root: private bus, polkitd, the helper)
#   make test      installs what is missing, builds, runs every test (as root)
#   make install   DESTDIR=... PREFIX=/usr

SWIFT      ?= swift
CONFIG     ?= debug
PREFIX     ?= /usr
DESTDIR    ?=
BUILD_DIR   = .build/$(CONFIG)
SWIFTFLAGS ?=

.PHONY: all build deps test demo install install-files clean release

all: build

deps:
	./scripts/deps.sh

build:
	$(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS) --product ferry
	$(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS) --product ferry-helper

release:
	$(MAKE) build CONFIG=release

# Every test, against the real components (dbus-daemon, polkitd, the helper as root, unprivileged users,
# docker-registry, a static web server, gpg, minisign, skopeo). Runs as root.
test: deps build
	$(SWIFT) build -c $(CONFIG) $(SWIFTFLAGS) --build-tests
	FERRY_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) $(SWIFT) test -c $(CONFIG) $(SWIFTFLAGS) --skip-build

demo: deps build
	./scripts/demo.sh $(BUILD_DIR)

install: build install-files

# Copies what `make build` made and the system files; split out so tests can check the layout without a build.
install-files:
	install -D -m 0755 $(BUILD_DIR)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -D -m 0755 $(BUILD_DIR)/ferry-helper $(DESTDIR)$(PREFIX)/libexec/ferry-helper
	install -D -m 0644 dbus/dev.ferry.Helper1.conf $(DESTDIR)$(PREFIX)/share/dbus-1/system.d/dev.ferry.Helper1.conf
	install -D -m 0644 dbus/dev.ferry.Helper1.service $(DESTDIR)$(PREFIX)/share/dbus-1/system-services/dev.ferry.Helper1.service
	install -D -m 0644 dbus/dev.ferry.Helper1.xml $(DESTDIR)$(PREFIX)/share/dbus-1/interfaces/dev.ferry.Helper1.xml
	install -D -m 0644 polkit/dev.ferry.policy $(DESTDIR)$(PREFIX)/share/polkit-1/actions/dev.ferry.policy
	install -D -m 0644 polkit/50-ferry-update.rules $(DESTDIR)$(PREFIX)/share/polkit-1/rules.d/50-ferry-update.rules
	install -D -m 0644 systemd/ferry-helper.service $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry-helper.service
	install -D -m 0644 systemd/ferry-update.service $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry-update.service
	install -D -m 0644 systemd/ferry-update.timer $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry-update.timer
	install -D -m 0644 systemd/user/ferry-update.service $(DESTDIR)$(PREFIX)/lib/systemd/user/ferry-update.service
	install -D -m 0644 systemd/user/ferry-update.timer $(DESTDIR)$(PREFIX)/lib/systemd/user/ferry-update.timer
	install -D -m 0644 systemd/ferry-update.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/ferry.conf
	install -d -m 0755 $(DESTDIR)/etc/ferry/remotes.d $(DESTDIR)/var/lib/ferry

clean:
	rm -rf .build

# Long loops (stress, fuzzing, benchmarks) live in their own files; each has a short version inside `make test`.
-include mk/*.mk
