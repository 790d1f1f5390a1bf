#!/usr/bin/env bash
# VCTK 0.92 (110 speakers, 44 h): download -> preprocess -> multi-speaker FastSpeech2 base with GTA
# export -> HiFi-GAN V1 fine-tuned on the GTA mels -> a sample in one voice. Options: see
# recipes/pipeline.sh (SPEAKER=p225 picks the sample's voice).
#
#   bash recipes/vctk/run.sh
#   GPUS=2 CORPUS=/data/VCTK-Corpus-0.92 SPEAKER=p226 bash recipes/vctk/run.sh
here=$(cd "$(dirname "$0")" && pwd)
export KIND=vctk NAME=vctk FOLDER=VCTK-Corpus-0.92 CONFIG="$here/config.yaml"
export TEXT=${TEXT:-"Please call Stella. Ask her to bring these things with her from the store."}
exec bash "$here/../pipeline.sh"
