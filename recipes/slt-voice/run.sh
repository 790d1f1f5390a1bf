#!/usr/bin/env bash
# Build ttskit's second shipped voice `slt` (festival's HTS US female as the reader) by fine-tuning
# the shipped default voice `joe` on 2 CPU cores, with ttskit's own commands
# (recipes/slt-voice/README.md has the measured times and scores).
#
#   bash recipes/slt-voice/run.sh [OUT]
#
# Needs festival's HTS voice (apt-get install -y festival festvox-us-slt-hts). SHARED: the folder
# holding corpus/make_corpus.py and corpus/sentences.txt. VOICE / NAME: another make_corpus.py voice
# and the name to pack it under (the recipe is the same for any single-speaker voice). HELDOUT:
# held-out sentences (lines 10,001 onward) to score on. ACOUSTIC_OPTIONS, VOCODER_OPTIONS: more
# options for every train-acoustic / train-vocoder command. Every stage is rerunnable: the corpus is
# kept when complete, preprocessing resumes, trainings continue from their last checkpoint.
set -euo pipefail

OUT=${1:-slt-voice}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
VOICE=${VOICE:-hts-slt}
NAME=${NAME:-slt}
INIT=${INIT:-default}                   # the shipped voice both models start from
TRAIN_LINES=${TRAIN_LINES:-2000}        # sentences.txt lines 1..TRAIN_LINES (of the training lines 1-10,000)
ACOUSTIC_STEPS=${ACOUSTIC_STEPS:-3000}
VOCODER_STEPS=${VOCODER_STEPS:-6000}    # at the harmonic-noise rate (1e-3), beside the acoustic model
ANNEAL_STEPS=${ANNEAL_STEPS:-3000}      # then at ANNEAL_RATE, still beside it (0: none)
ANNEAL_RATE=${ANNEAL_RATE:-1e-4}
GTA_STEPS=${GTA_STEPS:-12000}           # last, on the acoustic model's teacher-forced mels, at ANNEAL_RATE (0: none)
SHARPEN=${SHARPEN:-1.1}                 # the voice's mel sharpening at synthesis (1: none; docs/synth.md)
HELDOUT=${HELDOUT:-100}
# shellcheck source=../voice-common.sh
source "$(dirname "$0")/../voice-common.sh"  # checks, option arrays, HELDOUT_LAST, cd "$OUT", stage
step_file() { printf '%s/checkpoints/%s_%08d.pt' "$1" "$2" "$3"; }  # RUN PREFIX STEP

corpus() {  # corpus DIR COUNT OFFSET (at the shipped voice's 22,050 Hz)
    if [ "$(find "$1/wavs" -name '*.wav' 2>/dev/null | wc -l)" -ne "$2" ]; then
        python3 "$MAKE_CORPUS" --out "$1" --voices "$VOICE" --count "$2" --offset "$3" --sample-rate 22050 --jobs 2
    fi
}
stage "corpus: lines 1-$TRAIN_LINES read by $VOICE; held-out lines 10,001-$HELDOUT_LAST"
corpus corpus "$TRAIN_LINES" 0
corpus heldout "$HELDOUT" 10000

stage "preprocess"
ttskit preprocess ljspeech corpus -o work -j 2

# Both models start from the shipped voice (`--init`: the acoustic model's phoneme embeddings by
# symbol, its speaker by name; the vocoder keeps its noise STFT, voicing gate and mel loss) and do
# not depend on each other, so they train side by side, one core each.
stage "fine-tune train-acoustic ($ACOUSTIC_STEPS steps) beside train-vocoder ($VOCODER_STEPS + $ANNEAL_STEPS annealed), one core each"
start_acoustic=(--init "$INIT"); [ -d acoustic/checkpoints ] && start_acoustic=(--resume)
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-acoustic work -o acoustic --device cpu --max-steps "$ACOUSTIC_STEPS" \
    --set train.log_every=50 "${start_acoustic[@]}" ${acoustic_options[@]+"${acoustic_options[@]}"} > acoustic.log 2>&1 &
acoustic_pid=$!
start_vocoder=(--init "$INIT"); [ -d vocoder/checkpoints ] && start_vocoder=(--resume)
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-vocoder work -o vocoder --device cpu --max-steps "$VOCODER_STEPS" \
    --set train.checkpoint_every=1000 --set train.val_every=1000 --set train.num_workers=0 "${start_vocoder[@]}" \
    ${vocoder_options[@]+"${vocoder_options[@]}"} > vocoder.log 2>&1 || { echo "train-vocoder failed: see $OUT/vocoder.log" >&2; exit 1; }
VOCODER=$(step_file vocoder generator "$VOCODER_STEPS")
if (( ANNEAL_STEPS > 0 )); then
    # The fine-tuning rate moves the vocoder to the new voice fast and leaves it noisy; a tenth of
    # it settles it (docs/vocoder-candidates.md, the anneal of the shipped voice's vocoder).
    stage "anneal the vocoder: $ANNEAL_STEPS steps at $ANNEAL_RATE, still beside train-acoustic"
    start_anneal=(--init "$VOCODER"); [ -d vocoder-anneal/checkpoints ] && start_anneal=(--resume)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-vocoder work -o vocoder-anneal --device cpu \
        --max-steps "$ANNEAL_STEPS" --set train.learning_rate="$ANNEAL_RATE" --set train.checkpoint_every=500 \
        --set train.val_every=500 --set train.num_workers=0 "${start_anneal[@]}" \
        ${vocoder_options[@]+"${vocoder_options[@]}"} > vocoder-anneal.log 2>&1 \
        || { echo "train-vocoder (anneal) failed: see $OUT/vocoder-anneal.log" >&2; exit 1; }
    VOCODER=$(step_file vocoder-anneal generator "$ANNEAL_STEPS")
fi
stage "train-acoustic to step $ACOUSTIC_STEPS"
wait "$acoustic_pid" || { echo "train-acoustic failed: see $OUT/acoustic.log" >&2; exit 1; }
ACOUSTIC=$(step_file acoustic step "$ACOUSTIC_STEPS")
if (( GTA_STEPS > 0 )); then
    # The vocoder learns the mels it will be given: the finished acoustic model's teacher-forced
    # mels (the recordings' frames, so the recorded waves stay the targets). `--resume` at the
    # step reached trains nothing more and writes them.
    stage "teacher-forced mels; the vocoder on them: $GTA_STEPS steps at $ANNEAL_RATE, both cores"
    ttskit train-acoustic work -o acoustic --device cpu --max-steps "$ACOUSTIC_STEPS" --resume --export-gta \
        ${acoustic_options[@]+"${acoustic_options[@]}"} >> acoustic.log 2>&1 \
        || { echo "train-acoustic --export-gta failed: see $OUT/acoustic.log" >&2; exit 1; }
    start_gta=(--init "$VOCODER"); [ -d vocoder-gta/checkpoints ] && start_gta=(--resume)
    ttskit train-vocoder work -o vocoder-gta --device cpu --gta --max-steps "$GTA_STEPS" \
        --set train.learning_rate="$ANNEAL_RATE" --set train.checkpoint_every=2000 --set train.val_every=2000 \
        --set train.num_workers=0 "${start_gta[@]}" ${vocoder_options[@]+"${vocoder_options[@]}"} > vocoder-gta.log 2>&1 \
        || { echo "train-vocoder (gta) failed: see $OUT/vocoder-gta.log" >&2; exit 1; }
    VOCODER=$(step_file vocoder-gta generator "$GTA_STEPS")
fi

stage "eval on the held-out sentences: the recordings, copy-synthesis, the whole voice"
[ -f eval_recordings.json ] || ttskit eval --ref heldout/metadata.csv --hyp heldout/wavs --json eval_recordings.json
ttskit eval --vocoder-only --vocoder "$VOCODER" heldout/metadata.csv -o copy --device cpu --json eval_copy.json
ttskit eval --synth --acoustic "$ACOUSTIC" --vocoder "$VOCODER" heldout/metadata.csv -o synth --device cpu \
    --sharpen "$SHARPEN" --json eval_voice.json

stage "pack-voice (float16 weights: half the size)"
rm -rf voice  # this recipe's own output of an earlier run
ttskit pack-voice "$ACOUSTIC" "$VOCODER" -o voice --name "$NAME" --half --sharpen "$SHARPEN" \
    --description "US English female (festival's HTS voice cmu_us_slt_arctic_hts as the reader), fine-tuned from joe on 2 CPU cores by ttskit" \
    --licence "free to use, modify and distribute (the reader's CMU ARCTIC/festvox licence; joe's weights CC0-1.0)" \
    --data "sentences.txt lines 1-$TRAIN_LINES read by $VOICE, 22050 Hz" \
    --training "bash recipes/slt-voice/run.sh (from $INIT: ACOUSTIC_STEPS=$ACOUSTIC_STEPS beside VOCODER_STEPS=$VOCODER_STEPS, ANNEAL_STEPS=$ANNEAL_STEPS at ANNEAL_RATE=$ANNEAL_RATE, then GTA_STEPS=$GTA_STEPS on teacher-forced mels; synthesis sharpens the mel x$SHARPEN)" \
    --scores recordings=eval_recordings.json --scores copy-synthesis=eval_copy.json --scores voice=eval_voice.json \
    --scores-note "$HELDOUT held-out sentences (sentences.txt lines 10,001-$HELDOUT_LAST, never trained on) read by the same $VOICE voice; WER by pocketsphinx, MOS predicted by DistillMOS"
stage "done: $OUT/voice (copy it to ttskit/voices/$NAME to ship it)"
