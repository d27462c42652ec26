#!/usr/bin/env bash
# Matching evaluation (development tool; not run by CI): opt-out recall and strangers'
# false-redaction rate at register sizes K = 5, 20, 100 (and larger where the data allows),
# for people enrolled from 1 and from 3 photos, with blurgate's defaults.
#
#   bash scripts/eval_matching.sh              # blurgate's defaults
#   bash scripts/eval_matching.sh --compare    # also the thresholds before issue 13 (0.40 / 0.27,
#                                              # best photo) and the variants measured
#
# Needs ../shared (skips with a message without it) and the models from scripts/setup.sh.
# People: ../shared/fixtures/identities (deepface_pairs components, face_recognition_knn
# knn_train folders, lfw_pairs_insightface names), the largest face of each photo; enrolled from
# their first 1 or 3 photos, probed with the others (genuine: opt-out recall counts those
# redacted). Strangers: every face found in ../shared/fixtures/annotated/wider_dev/images and
# ../shared/fixtures/photos/known_licence ("crowd"), and the photos of identity people not
# enrolled in a round ("portraits"). A register larger than the identity people is filled with
# crowd faces that pass enrolment's quality gate, enrolled as extra people and left out of the
# strangers. Measured faces are cached in target/eval_matching/faces.json (delete it after
# changing detection, alignment or the models).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
if [ ! -d "$SHARED/fixtures/identities" ]; then
    echo "eval_matching: $SHARED/fixtures is not here; nothing to evaluate (skipped)"
    exit 0
fi
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --example eval_matching
mkdir -p target/eval_matching
exec target/release/examples/eval_matching "$SHARED" --cache target/eval_matching/faces.json "$@"
