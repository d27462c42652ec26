#!/usr/bin/env bash
# Builds blurgate's container image and prints its name (the only line on stdout; messages go
# to stderr), e.g.
#
#   image=$(bash deploy/build-image.sh)            # from target/release/blurgate and models/
#   bash deploy/build-image.sh --from-source       # compiles inside the build (rustup: normal CI)
#
# Default (prebuilt): the image takes the binary and the prepared models that scripts/setup.sh
# made on this machine (target/release/blurgate, models/), so it needs no Rust toolchain in the
# build and no internet beyond Debian's package mirror. The binary links Debian 12's libraries,
# so build it on Debian 12 (as the development machines and CI are). --from-source runs the
# project's own set-up inside the build instead (rustup, PyPI, crates.io).
#
# The base is Debian bookworm made locally with mmdebstrap (no container registry needed),
# cached as .cache/container/debian-bookworm-minbase.tar and imported once as
# localhost/debian:bookworm-minbase. Set BLURGATE_BASE_IMAGE to use another base instead
# (e.g. docker.io/library/debian:bookworm-slim where a registry is reachable).
#
# Settings: BLURGATE_IMAGE (the name, default localhost/blurgate:VERSION from Cargo.toml),
# CONTAINER_ENGINE (podman or docker; default podman when installed, else docker when its
# daemon answers), BLURGATE_BASE_IMAGE (see above), BLURGATE_BINARY and BLURGATE_MODELS (the
# binary and models of a prebuilt image; default target/release/blurgate and models/).
#
# Podman runs here with runc (crun refuses a machine whose cgroups are part v1, part v2) and
# with explicit ulimits; `--network host` lets the build reach Debian's mirror.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

MODE=prebuilt
while (($#)); do
  case $1 in
    --from-source) MODE=from-source ;;
    -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
IMAGE=${BLURGATE_IMAGE:-localhost/blurgate:$VERSION}
CACHE=$ROOT/.cache/container
BASE_TAR=$CACHE/debian-bookworm-minbase.tar
LOCAL_BASE=localhost/debian:bookworm-minbase

# --- engine ------------------------------------------------------------------------------------

ENGINE=${CONTAINER_ENGINE:-}
if [[ -z $ENGINE ]]; then
  if command -v podman >/dev/null; then
    ENGINE=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    die "no container engine: install podman (Debian: apt-get install podman buildah runc mmdebstrap; scripts/setup.sh does it as root) or start docker"
  fi
fi
command -v "$ENGINE" >/dev/null || die "$ENGINE not found"

# Flags for `build` (the RUN steps are containers too).
BUILD_FLAGS=()
if [[ $ENGINE == podman ]]; then
  command -v runc >/dev/null && BUILD_FLAGS+=(--runtime runc)
  BUILD_FLAGS+=(--network host --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
fi

image_exists() {
  if [[ $ENGINE == podman ]]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}

# --- base --------------------------------------------------------------------------------------

BASE=${BLURGATE_BASE_IMAGE:-}
if [[ -z $BASE ]]; then
  BASE=$LOCAL_BASE
  if ! image_exists "$BASE"; then
    if [[ ! -s $BASE_TAR ]]; then
      command -v mmdebstrap >/dev/null \
        || die "no base image: install mmdebstrap (apt-get install mmdebstrap) or set BLURGATE_BASE_IMAGE=docker.io/library/debian:bookworm-slim"
      say "making a Debian bookworm base with mmdebstrap into $BASE_TAR (once; about a minute)"
      mkdir -p "$CACHE"
      start=$(date +%s)
      # As Debian's slim images: no manuals, documentation (but the copyright files) or
      # translations; the rules stay in the image, so later apt-get installs keep them.
      # The merged-usr hook sets up merged /usr itself (as bookworm's images are) instead of
      # installing the usrmerge package, which would pull in perl (about 50 MB).
      mmdebstrap --variant=minbase --format=tar --quiet \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/groff/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --aptopt='APT::Install-Recommends "false"' \
        bookworm "$BASE_TAR.tmp" \
        'deb http://deb.debian.org/debian bookworm main' \
        'deb http://deb.debian.org/debian bookworm-updates main' \
        'deb http://deb.debian.org/debian-security bookworm-security main' \
        </dev/null >&2 || { rm -f "$BASE_TAR.tmp"; die "mmdebstrap failed"; }
      mv -f "$BASE_TAR.tmp" "$BASE_TAR"
      say "base made in $(($(date +%s) - start)) s ($(du -h "$BASE_TAR" | cut -f1))"
    fi
    say "importing $BASE_TAR as $BASE"
    "$ENGINE" import --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE" >/dev/null
  fi
fi

# --- build -------------------------------------------------------------------------------------

start=$(date +%s)
if [[ $MODE == prebuilt ]]; then
  BINARY=${BLURGATE_BINARY:-target/release/blurgate}
  MODELS=${BLURGATE_MODELS:-models}
  [[ -x $BINARY ]] || die "$BINARY is missing: run scripts/setup.sh (or use --from-source)"
  [[ -f $MODELS/manifest.json ]] || die "$MODELS is not prepared: run scripts/setup.sh"
  # A small build context: the binary (without its debug line tables, as strip --strip-debug
  # leaves it: symbols stay for backtraces) and the models, nothing else of the tree.
  CONTEXT=$CACHE/context
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT/models"
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$CONTEXT/blurgate" "$BINARY"
  else
    cp "$BINARY" "$CONTEXT/blurgate"
  fi
  cp "$MODELS"/manifest.json "$MODELS"/*.onnx "$MODELS"/libonnxruntime.so.* "$CONTEXT/models/"
  say "building $IMAGE with $ENGINE from $BINARY and $MODELS (base $BASE)"
  "$ENGINE" build "${BUILD_FLAGS[@]}" -f deploy/Dockerfile --target prebuilt --build-arg "BASE=$BASE" \
    -t "$IMAGE" "$CONTEXT" >&2 || die "$ENGINE build failed"
else
  ignore=()
  [[ $ENGINE == podman ]] && ignore=(--ignorefile deploy/Dockerfile.dockerignore)
  say "building $IMAGE with $ENGINE from source (base $BASE)"
  "$ENGINE" build "${BUILD_FLAGS[@]}" "${ignore[@]}" -f deploy/Dockerfile --target from-source \
    --build-arg "BASE=$BASE" -t "$IMAGE" . >&2 || die "$ENGINE build failed"
fi

size=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in $(($(date +%s) - start)) s: $((size / 1000000)) MB"
printf '%s\n' "$IMAGE"
