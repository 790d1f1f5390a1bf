#!/usr/bin/env bash
# The pipeline every recipe runs: download -> preprocess -> FastSpeech2 with GTA export -> HiFi-GAN
# fine-tuned on the GTA mels -> a synthesised sample -> objective scores on the validation sentences. recipes/<corpus>/run.sh sets the corpus and its
# defaults and calls this; the variables below override any of them.
#
#   CORPUS=DIR          an existing copy of the corpus (skips the download)
#   DATA WORK RUNS      where downloads, the WORK folder and the runs go
#   GPUS                DDP ranks for both trainings (default 1)
#   ACOUSTIC_PRESET ACOUSTIC_STEPS VOCODER_MODEL VOCODER_STEPS
#   VOCODER_INIT        a vocoder to fine-tune (ttskit run or jik876 g_XXXXXXXX)
#   ACOUSTIC_SET VOCODER_SET   extra "key=value ..." settings for the trainings
#   TEXT SPEAKER        what the sample says, and in which voice
#   EVAL_LIMIT          score only this many validation sentences (default: all of WORK/val.jsonl)
#
# Every stage can be rerun: preprocessing resumes and trainings continue from their last checkpoint.
set -euo pipefail
: "${KIND:?set by the recipe}" "${NAME:?}" "${FOLDER:?}" "${CONFIG:?}" "${TEXT:?}"
DATA=${DATA:-data}
WORK=${WORK:-work/$NAME}
RUNS=${RUNS:-runs/$NAME}
CORPUS=${CORPUS:-}
GPUS=${GPUS:-1}
ACOUSTIC_PRESET=${ACOUSTIC_PRESET:-base}
ACOUSTIC_STEPS=${ACOUSTIC_STEPS:-200000}
VOCODER_MODEL=${VOCODER_MODEL:-hifigan-v1}
VOCODER_STEPS=${VOCODER_STEPS:-1000000}
VOCODER_INIT=${VOCODER_INIT:-}
ACOUSTIC_SET=${ACOUSTIC_SET:-}
VOCODER_SET=${VOCODER_SET:-}
SPEAKER=${SPEAKER:-}

stage() { echo; echo "=== $* ($(date +%H:%M:%S))"; }
# --resume when a run already has checkpoints, so rerunning the recipe continues it.
resume_flag() { if compgen -G "$1/checkpoints/step_*.pt" > /dev/null; then echo "--resume"; fi; }
sets() { local item; for item in $1; do printf -- '--set %s ' "$item"; done; }

if [[ -z "$CORPUS" ]]; then
  stage "download"
  ttskit download "$NAME" -o "$DATA"
  CORPUS="$DATA/$FOLDER"
fi

stage "preprocess"
ttskit preprocess "$KIND" "$CORPUS" -o "$WORK" --config "$CONFIG"

stage "train-acoustic ($ACOUSTIC_PRESET, $ACOUSTIC_STEPS steps) + GTA export"
# shellcheck disable=SC2046
ttskit train-acoustic "$WORK" -o "$RUNS/acoustic" --preset "$ACOUSTIC_PRESET" --max-steps "$ACOUSTIC_STEPS" \
  --gpus "$GPUS" --export-gta $(resume_flag "$RUNS/acoustic") $(sets "$ACOUSTIC_SET")

stage "train-vocoder ($VOCODER_MODEL on the GTA mels, $VOCODER_STEPS steps)"
init=()
if [[ -n "$VOCODER_INIT" && -z "$(resume_flag "$RUNS/vocoder")" ]]; then init=(--init "$VOCODER_INIT"); fi
# shellcheck disable=SC2046
ttskit train-vocoder "$WORK" -o "$RUNS/vocoder" --model "$VOCODER_MODEL" --gta --max-steps "$VOCODER_STEPS" \
  --gpus "$GPUS" ${init[@]+"${init[@]}"} $(resume_flag "$RUNS/vocoder") $(sets "$VOCODER_SET")

stage "synth"
ttskit synth "$TEXT" -o "$RUNS/sample.wav" --acoustic "$RUNS/acoustic" --vocoder "$RUNS/vocoder" \
  ${SPEAKER:+--speaker "$SPEAKER"} --verbose

stage "eval (validation sentences synthesised from their text, scored against their recordings)"
ttskit eval --synth --acoustic "$RUNS/acoustic" --vocoder "$RUNS/vocoder" "$WORK/val.jsonl" -o "$RUNS/eval" \
  --json "$RUNS/eval.json" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"}
echo "done: listen to $RUNS/sample.wav; scores in $RUNS/eval.json"
