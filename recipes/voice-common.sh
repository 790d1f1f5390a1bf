# Sourced by recipes/default-voice/run.sh and recipes/slt-voice/run.sh after their settings:
# the held-out range's last line as a name (HELDOUT_LAST), the extra training options as arrays,
# the checks every voice recipe makes, the output folder (the working directory from here on) and
# `stage`, which logs a stage with its time.
HELDOUT_LAST=$((10000 + HELDOUT)); HELDOUT_LAST="${HELDOUT_LAST:0:-3},${HELDOUT_LAST: -3}"  # 10,100
read -r -a acoustic_options <<< "${ACOUSTIC_OPTIONS:-}"
read -r -a vocoder_options <<< "${VOCODER_OPTIONS:-}"
MAKE_CORPUS="$SHARED/corpus/make_corpus.py"
[ -f "$MAKE_CORPUS" ] || { echo "no $MAKE_CORPUS: set SHARED" >&2; exit 2; }
(( TRAIN_LINES <= 10000 )) || { echo "TRAIN_LINES must stay within the training lines 1-10,000" >&2; exit 2; }

mkdir -p "$OUT" && cd "$OUT"
stage() { echo "== $(date +%H:%M:%S) $*" >&2; }
