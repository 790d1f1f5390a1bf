#!/usr/bin/env bash
# Fine-tune the shipped voice `joe` to a new voice, and measure the curve the issue asks for:
# word error rate against minutes of the new voice's speech and minutes of CPU training
# (recipes/fine-tune/README.md has the measured figures).
#
#   bash recipes/fine-tune/run.sh [OUT]
#
# For each amount of data (CLIPS: clip counts of the new voice's corpus, sentences.txt lines
# 2,001 onward, training lines only) the acoustic model and the vocoder are fine-tuned from the
# shipped voice side by side, one core each (`--init default`), in segments that end at the
# wall-clock minutes of CHECK_MINUTES (SIGINT saves and exits; `--resume` continues exactly).
# After each segment, with the trainings paused, `ttskit eval --synth` scores the pair on the
# held-out sentences (lines 10,001 onward, never trained on) read by the same voice.
#
# INIT: what the trainings start from: `default` (the shipped voice) or `none` (from scratch,
# FastSpeech2 `small` and a harmonic-noise vocoder: the baseline that shows what --init buys).
# VOICE: a make_corpus.py voice (hts-slt: festival's HTS US female). SHARED: the folder holding
# corpus/make_corpus.py. HELDOUT: held-out sentences (50). ACOUSTIC_OPTIONS, VOCODER_OPTIONS: more
# options for each training (e.g. "--set train.learning_rate=1e-3"). ANNEAL_FROM, ANNEAL_RATE: below. DIAGNOSE=1: after the last
# segment, also score each model alone (the acoustic model through Griffin-Lim, the vocoder by
# copy-synthesis of the held-out recordings). Every stage is rerunnable: complete corpora and
# evaluations are kept, trainings continue from their last checkpoint.
set -euo pipefail

OUT=${1:-fine-tune}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
VOICE=${VOICE:-hts-slt}
CLIPS=${CLIPS:-"160 80 40"}
OFFSET=${OFFSET:-2000}                  # the corpus starts after the shipped voice's lines 1-2,000
HELDOUT=${HELDOUT:-50}
INIT=${INIT:-default}
CHECK_MINUTES=${CHECK_MINUTES:-"5 10 20"}   # cumulative wall-clock minutes (fractions allowed)
read -r -a acoustic_options <<< "${ACOUSTIC_OPTIONS:-}"
read -r -a vocoder_options <<< "${VOCODER_OPTIONS:-}"
DIAGNOSE=${DIAGNOSE:-0}
# ANNEAL_FROM: from this wall-clock minute on the vocoder trains at ANNEAL_RATE (--resume with the
# new rate; 0, the default: no anneal). Measured (README): it makes copy-synthesis of the new voice
# better but not the pair's synthesis from text, so it is off unless asked for.
ANNEAL_FROM=${ANNEAL_FROM:-0}
ANNEAL_RATE=${ANNEAL_RATE:-1e-4}
MAKE_CORPUS="$SHARED/corpus/make_corpus.py"
case "$INIT" in
    default) start_acoustic=(--init default); start_vocoder=(--init default) ;;
    none) start_acoustic=(--preset small); start_vocoder=(--model harmonic-noise) ;;
    *) echo "INIT must be default or none" >&2; exit 2 ;;
esac
max_clips=$(tr ' ' '\n' <<< "$CLIPS" | sort -n | tail -1)
(( OFFSET + max_clips <= 10000 )) || { echo "the corpus must stay within the training lines 1-10,000" >&2; exit 2; }

mkdir -p "$OUT" && cd "$OUT"
stage() { echo "== $(date +%H:%M:%S) $*" >&2; }
newest() { ls -t "$@" 2>/dev/null | head -1; }

corpus() {  # corpus DIR COUNT OFFSET (a folder already holding COUNT clips is kept: bring your own)
    if [ "$(find "$1/wavs" -name '*.wav' -o -name '*.flac' 2>/dev/null | wc -l)" -lt "$2" ]; then
        [ -f "$MAKE_CORPUS" ] || { echo "no $MAKE_CORPUS: set SHARED" >&2; exit 2; }
        python3 "$MAKE_CORPUS" --out "$1" --voices "$VOICE" --count "$2" --offset "$3" --jobs 2
    fi
}
stage "corpus: $max_clips sentences from line $((OFFSET + 1)) and $HELDOUT held-out ones from line 10,001, read by $VOICE"
corpus corpus "$max_clips" "$OFFSET"
corpus heldout "$HELDOUT" 10000
[ -f eval_recordings.json ] || ttskit eval --ref heldout/metadata.csv --hyp heldout/wavs --json eval_recordings.json

for clips in $CLIPS; do
    data="data_$clips"
    if [ ! -f "$data/metadata.csv" ]; then  # the first CLIPS sentences of the corpus, its audio linked
        mkdir -p "$data/wavs"
        head -n "$clips" corpus/metadata.csv > "$data/metadata.csv"
        cut -d'|' -f1 "$data/metadata.csv" | while read -r id; do ln -sf "$PWD"/corpus/wavs/"$id".* "$data/wavs/"; done
    fi
    stage "preprocess $clips clips"
    ttskit preprocess ljspeech "$data" -o "work_$clips" -j 2

    trained=0
    for minutes in $CHECK_MINUTES; do
        scores="eval_${clips}_${minutes}min.json"
        seconds=$(awk "BEGIN { print int(($minutes - $trained) * 60 + 0.5) }")
        # The vocoder's part of this segment before the anneal starts, and after it (seconds).
        before=$(awk "BEGIN { a = $ANNEAL_FROM; if (a <= 0 || a >= $minutes) a = $minutes; if (a < $trained) a = $trained;
                              print int((a - $trained) * 60 + 0.5) }")
        after=$(( seconds - before )); trained=$minutes
        [ -f "$scores" ] && continue
        stage "$clips clips: fine-tune to minute $minutes (acoustic and vocoder side by side, one core each)"
        resume_acoustic=("${start_acoustic[@]}"); [ -d "acoustic_$clips/checkpoints" ] && resume_acoustic=(--resume)
        # timeout sends SIGINT: each trainer saves the step it reached and exits (status 124 then).
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout -s INT "$seconds" ttskit train-acoustic "work_$clips" \
            -o "acoustic_$clips" --device cpu --max-steps 1000000 --set train.log_every=50 \
            "${resume_acoustic[@]}" ${acoustic_options[@]+"${acoustic_options[@]}"} >> "acoustic_$clips.log" 2>&1 &
        acoustic_pid=$!
        for part in before after; do
            (( ${!part} > 0 )) || continue
            resume_vocoder=("${start_vocoder[@]}"); [ -d "vocoder_$clips/checkpoints" ] && resume_vocoder=(--resume)
            rate=(); [ "$part" = after ] && rate=(--set "train.learning_rate=$ANNEAL_RATE")
            OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout -s INT "${!part}" ttskit train-vocoder "work_$clips" \
                -o "vocoder_$clips" --device cpu --max-steps 1000000 --set train.num_workers=0 \
                --set train.val_every=1000000 "${resume_vocoder[@]}" ${vocoder_options[@]+"${vocoder_options[@]}"} \
                ${rate[@]+"${rate[@]}"} >> "vocoder_$clips.log" 2>&1 || (( $? == 124 ))
        done
        wait "$acoustic_pid" || (( $? == 124 ))
        acoustic=$(newest "acoustic_$clips"/checkpoints/step_*.pt)
        vocoder=$(newest "vocoder_$clips"/checkpoints/generator_*.pt)
        [ -n "$acoustic" ] && [ -n "$vocoder" ] \
            || { echo "no checkpoint after minute $minutes: see acoustic_$clips.log and vocoder_$clips.log" >&2; exit 1; }
        stage "$clips clips, minute $minutes: $acoustic + $vocoder on the held-out sentences"
        ttskit eval --synth --acoustic "$acoustic" --vocoder "$vocoder" heldout/metadata.csv \
            -o "synth_${clips}_${minutes}min" --device cpu --json "$scores.part"
        mv "$scores.part" "$scores"
    done
    last="eval_${clips}_${trained}min"
    if [ "$DIAGNOSE" = 1 ] && [ ! -f "${last}_copy.json" ]; then
        stage "$clips clips, minute $trained: each model alone"
        ttskit eval --synth --acoustic "$(newest "acoustic_$clips"/checkpoints/step_*.pt)" --vocoder griffin-lim \
            heldout/metadata.csv --device cpu --json "${last}_griffin-lim.json"
        ttskit eval --vocoder-only --vocoder "$(newest "vocoder_$clips"/checkpoints/generator_*.pt)" \
            heldout/metadata.csv --device cpu --json "${last}_copy.json.part"
        mv "${last}_copy.json.part" "${last}_copy.json"
    fi
done
stage "done: python tools/fine_tune_curve.py $OUT draws the curve"
