# kiln: `make demo` runs the main job on embedded defaults; `make test` runs the suite.
# Both work on a fresh Debian machine as root: they install what they need themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests and the demo drive for real.
APT_PACKAGES := gpg gpgv dpkg-dev debian-archive-keyring apt xz-utils zstd bzip2 \
	bubblewrap skopeo umoci mmdebstrap ca-certificates docker-registry podman gcc libc6-dev postgresql \
	openssl git nodejs build-essential buildah runc slirp4netns diffoscope-minimal qemu-user-static chromium

.PHONY: demo demo-source demo-research demo-factory test test-offline fuzz lint setup apt venv bench clean compat site

setup: apt venv

# Checked on every run (dpkg -s is quick), so a package added to the list is installed.
apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(STAMP)
$(STAMP): pyproject.toml tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --require-hashes --no-deps -r tools/requirements.txt
	@touch $@

CATALOG := $(sort $(wildcard images/*.yaml))

HOST_ARCH = $(shell dpkg --print-architecture)

# kiln build --refresh relocks a spec whose lock fell behind the archive (git diff shows
# what Debian published since), then builds the runtime images for every arch and the
# -dev images for this machine's (an arm64 -dev build replays its maintainer scripts under
# qemu-user: minutes each; `kiln build SPEC` builds both); kiln test runs each image's own
# tests in bubblewrap; the last step prints the catalog's sizes, hardening and tests.
demo: setup
	$(BIN)/kiln build $(CATALOG) --refresh --variant runtime
	$(BIN)/kiln build $(CATALOG) --variant dev --arch $(HOST_ARCH)
	@for spec in $(CATALOG); do $(BIN)/kiln test $$spec || exit 1; done
	$(BIN)/python bench/build.py --summary out
	$(MAKE) demo-research
	$(MAKE) demo-factory

# The remediation loop, one pass: kiln starts (or reuses) a local Temporal dev server
# under .kiln/temporal, reconciles main's catalog, opens local pull requests (branches
# kiln/<kind>/<image>, records on refs/kiln/prs; nothing leaves the machine) and prints
# the status table and the PRs. A second run opens nothing new.
# On a fresh machine kiln's database is empty and the pass would find no CVE, so the
# debian-archive feed is imported first, for the sources the catalog's locks name
# (a no-op when the archive did not change; docs/factory.md has the times). The pass is
# limited to base's backport so the demo stays short: lz4's CVE-2025-62813 fixed from
# Debian unstable (patch, sandboxed build, base-dev rebuilt before and after from kiln's
# repository, tested, scanned). The whole catalog is `kiln factory run --once`: every
# image with liblz4-1 wants the same fix and shares that one package build, but each
# image's rebuild, tests and scan add about a minute (plus bumps where main's locks are
# behind the archive).
demo-factory: setup
	$(BIN)/kiln db update --source debian-archive
	$(BIN)/kiln factory run --once --only backport --image base
	$(BIN)/kiln factory status
	$(BIN)/kiln factory prs

# kiln's own source build: jq rebuilt from Debian's source with a DEP-3 patch in a
# sandbox without network (the first run creates the build root with mmdebstrap), the
# .debs published to kiln's signed repository out/kiln-repo, then jq-on-base built from
# that repository and Debian, and tested. The recipe is copied to out/recipes and moved
# to Debian's newest jq first (`kiln package rebase`): a recipe refuses a base older
# than Debian's newest, and the archive moves (a new trixie-security jq would otherwise
# stop the demo on a fresh clone); recipes/ in the checkout is not touched.
demo-source: setup
	rm -rf out/recipes && mkdir -p out && cp -r recipes out/recipes
	$(BIN)/kiln package rebase out/recipes/jq.yaml
	$(BIN)/kiln package build out/recipes/jq.yaml --output out/packages
	$(BIN)/kiln repo publish out/kiln-repo out/packages/*.deb --arch $$(dpkg --print-architecture)
	KILN_REPO=out/kiln-repo $(BIN)/kiln build recipes/images/jq.yaml
	KILN_REPO=out/kiln-repo $(BIN)/kiln test recipes/images/jq.yaml

# The research agent end to end (issue #17), in place of demo-source's harmless jq
# patch: libxml2's CVE-2026-86138 is open in trixie and fixed only by unstable's newer
# upstream release (2.15.4). kiln research reads sid's changelog for the CVE's text (no
# advisory feed is reachable offline), discovers libxml2's upstream repository from its
# packaging (KILN_RESEARCH_MIRRORS first: fixbench's clone when ../shared is there, else
# a bounded clone of the URL), ranks the upstream fix first, checks that trixie's source
# carries the vulnerable code and that the patch applies, builds libxml2 with it in the
# sandbox (kiln's own source build: DEP-3 patch, `+kiln1` version, Kiln-Fixes), publishes
# it to a signed repository, rebuilds the xmllint image from it, tests it and scans it
# before and after. Its own database (out/research/vuln.db, filled by the
# debian-archive feed for xmllint's lock) leaves kiln's default one alone. About 4 min.
RESEARCH_MIRRORS ?= $(wildcard ../shared/fixbench/repos)
demo-research: setup
	rm -rf out/research && mkdir -p out/research/catalog/images
	$(BIN)/kiln catalog generate out/research/generated --family tools
	cp out/research/generated/debian-13/xmllint.yaml out/research/catalog/images/
	$(BIN)/kiln lock out/research/catalog/images/xmllint.yaml
	KILN_DB=out/research/vuln.db $(BIN)/kiln db update --source debian-archive \
		--catalog out/research/catalog/images --distro debian-13
	@# the archive moves: once trixie fixes the CVE itself there is nothing to backport
	@if $(BIN)/python -c "import sys; from kiln.pipeline.backport import release_status; \
		sys.exit(0 if release_status('libxml2', 'CVE-2026-86138').fixed else 1)"; then \
		echo "demo-research: trixie's libxml2 now fixes CVE-2026-86138 itself; nothing to backport"; \
	else \
		echo "KILN_DB=out/research/vuln.db KILN_RESEARCH_MIRRORS=$(RESEARCH_MIRRORS) kiln research CVE-2026-86138 ..."; \
		KILN_DB=out/research/vuln.db KILN_RESEARCH_MIRRORS=$(RESEARCH_MIRRORS) \
		$(BIN)/kiln research CVE-2026-86138 --package libxml2 --top 3 --backport \
		--catalog out/research/catalog --image xmllint --work out/research/work; \
	fi

test: setup
	$(BIN)/pytest -n 2 -q

test-offline: setup
	$(BIN)/pytest -n 2 -q -m 'not network'

# The hostile-input campaign at length: every hypothesis fuzz test of tests/hostile/ with
# the `long` profile (KILN_FUZZ_EXAMPLES cases each, 20,000 by default; minutes each).
# `make test` runs the same tests with a few hundred cases each.
fuzz: setup
	KILN_FUZZ=long $(BIN)/pytest -q tests/hostile -k fuzz --hypothesis-show-statistics

# The drop-in compatibility suite (compat/): six real Dockerfiles built and run on
# stand-ins for the official images, then on kiln's images with the FROM lines swapped;
# prints the table and writes out/compat.json. `make test` runs it too (network test).
compat: setup
	$(BIN)/kiln compat --json out/compat.json

# ruff, format, mypy --strict (kiln and its tests), and the layer contracts of
# docs/architecture.md: import-linter's layers and no import of another package's private names.
lint: venv
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy src tests
	$(BIN)/lint-imports
	$(BIN)/python tools/lint_private_imports.py

# kiln site over the demo's images: signs them (a demo key in out/site-key.*, passphrase
# $KILN_KEY_PASSWORD or "kiln-demo"), attests them into out/ like kiln publish would
# push them (SBOMs, provenance, test reports), then serves the catalog, its JSON API and
# the registry front door on http://127.0.0.1:8080/ (podman pull 127.0.0.1:8080/kiln/...).
SITE_KEY := out/site-key
site: setup
	@mkdir -p out
	@test -f $(SITE_KEY).key || KILN_KEY_PASSWORD=$${KILN_KEY_PASSWORD:-kiln-demo} \
		$(BIN)/kiln keygen --out $(SITE_KEY)
	KILN_KEY_PASSWORD=$${KILN_KEY_PASSWORD:-kiln-demo} $(BIN)/kiln site publish $(CATALOG) \
		--key $(SITE_KEY).key --store out --variant runtime
	KILN_KEY_PASSWORD=$${KILN_KEY_PASSWORD:-kiln-demo} $(BIN)/kiln site publish $(CATALOG) \
		--key $(SITE_KEY).key --store out --variant dev --arch $(HOST_ARCH)
	$(BIN)/kiln site --store out

bench: setup
	$(BIN)/python bench/resolve.py
	$(BIN)/python bench/build.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
