#!/usr/bin/env bash
# The CUDA checks no CI machine can run, in parts that each fit one short job on a GPU machine
# with no package index (the project's lent H100/H200: torch, numba, typer, rich and pyyaml are
# there, librosa, soundfile, pocketsphinx and inflect are not).
#
#   bash tools/gpu_check.sh wheels            # HERE, with PyPI: fetch the missing wheels into .whl/
#   bash tools/gpu_check.sh tests             # THERE: the CUDA tests + training/synthesis tests on CUDA
#   bash tools/gpu_check.sh bench PEERS_DIR   # THERE: vocoder, synthesis and training benchmarks (GPU parts)
#   bash tools/gpu_check.sh train             # THERE: short bf16 and fp16 runs of both trainers, 1-rank NCCL
#
# PEERS_DIR (optional) holds checkouts named FastSpeech2/ and hifi-gan/ for the side-by-side rows
# (peer code is never committed: copy the checkouts into a git-ignored folder such as .peers/ and
# carry it with .whl/). Each part is one device call of well under 10 minutes. Logs go to $OUT
# (the device tool's result folder) or ./gpu-results. Written before any GPU was lent: the first
# session with one runs it and fixes what breaks.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:?"which part: wheels, tests, bench or train"}
out=${OUT:-gpu-results}
mkdir -p "$out"

if [[ $part == wheels ]]; then
    # cp312 manylinux wheels of what ttskit needs beyond that image, and their own needs; librosa
    # at the version the CI machines install and the tests pass with.
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
        librosa==0.11.0 soundfile audioread pooch soxr decorator platformdirs cffi pycparser pocketsphinx sounddevice \
        inflect more-itertools typeguard jaraco.functools unidecode
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo /.whl/ >> "$exclude"
    du -sh .whl
    exit 0
fi

if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_bf16_supported())" \
    | tee -a "$out/gpu.txt"

case $part in
tests)
    # The CUDA-only tests, then the training/synthesis tests as they are (they pass device="cpu"
    # where they need it; the rest pick CUDA up by themselves).
    python3 -m pytest -q -p no:cacheprovider -k cuda tests 2>&1 | tee "$out/pytest_cuda.log"
    python3 -m pytest -q -p no:cacheprovider -x tests/test_synth.py tests/test_hifigan.py tests/test_audio.py \
        2>&1 | tee "$out/pytest_synth.log"
    ;;
bench)
    peers=${2:-}
    fs2=() hg=()
    [[ -n $peers && -d $peers/FastSpeech2 ]] && fs2=(--fastspeech2 "$peers/FastSpeech2")
    [[ -n $peers && -d $peers/hifi-gan ]] && hg=(--hifigan "$peers/hifi-gan")
    python3 -m ttskit preprocess ljspeech ttskit/assets/mini_ljspeech -o /tmp/gpu-work -j 8 2>&1 | tail -3
    python3 benchmarks/bench_vocoder.py --threads 8 "${hg[@]}" 2>&1 | tee "$out/bench_vocoder.log"
    python3 benchmarks/bench_synth.py --threads 8 "${fs2[@]}" "${hg[@]}" 2>&1 | tee "$out/bench_synth.log"
    python3 benchmarks/bench_train_acoustic.py /tmp/gpu-work --preset base --steps 30 "${fs2[@]}" 2>&1 \
        | tee "$out/bench_train_acoustic.log"
    python3 benchmarks/bench_train_vocoder.py /tmp/gpu-work --model hifigan-v1 --steps 20 "${hg[@]}" 2>&1 \
        | tee "$out/bench_train_vocoder.log"
    ;;
train)
    python3 -m ttskit preprocess ljspeech ttskit/assets/mini_ljspeech -o /tmp/gpu-work -j 8 2>&1 | tail -3
    for precision in bf16 fp16; do
        python3 -m ttskit train-acoustic /tmp/gpu-work -o "/tmp/gpu-acoustic-$precision" --preset base \
            --max-steps 200 --set train.precision=$precision --set train.log_every=20 2>&1 | tail -5
        cp "/tmp/gpu-acoustic-$precision/metrics.jsonl" "$out/acoustic_$precision.jsonl"
        python3 -m ttskit train-vocoder /tmp/gpu-work -o "/tmp/gpu-vocoder-$precision" --model hifigan-v1 \
            --max-steps 100 --set train.precision=$precision --set train.log_every=10 2>&1 | tail -5
        cp "/tmp/gpu-vocoder-$precision/metrics.jsonl" "$out/vocoder_$precision.jsonl"
    done
    # One NCCL rank under torchrun: the DDP code path with NCCL, on the single lent GPU.
    torchrun --nproc_per_node 1 -m ttskit train-acoustic /tmp/gpu-work -o /tmp/gpu-nccl --preset small \
        --max-steps 50 2>&1 | tail -5
    cp /tmp/gpu-nccl/summary.json "$out/nccl_summary.json"
    python3 -m ttskit synth "The GPU spoke these words." -o "$out/gpu.wav" --acoustic /tmp/gpu-acoustic-bf16 \
        --vocoder /tmp/gpu-vocoder-bf16 --precision bf16 --verbose 2>&1 | tee "$out/synth.log"
    ;;
*)
    echo "unknown part $part: wheels, tests, bench or train" >&2
    exit 2
    ;;
esac
