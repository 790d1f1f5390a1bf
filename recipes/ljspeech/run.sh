#!/usr/bin/env bash
# LJSpeech (one speaker, 24 h): download -> preprocess -> FastSpeech2 base with GTA export ->
# HiFi-GAN V1 fine-tuned on the GTA mels -> recipes' sample. Options: see recipes/pipeline.sh.
#
#   bash recipes/ljspeech/run.sh
#   GPUS=2 CORPUS=/data/LJSpeech-1.1 VOCODER_INIT=/models/LJ_V1/g_02500000 VOCODER_STEPS=50000 \
#     bash recipes/ljspeech/run.sh
here=$(cd "$(dirname "$0")" && pwd)
export KIND=ljspeech NAME=ljspeech FOLDER=LJSpeech-1.1 CONFIG="$here/config.yaml"
export TEXT=${TEXT:-"Printing, in the only sense with which we are at present concerned, differs from most if not from all the arts."}
exec bash "$here/../pipeline.sh"
