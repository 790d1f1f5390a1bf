"""The `format` tag of each kind of ttskit checkpoint. A loader refuses a file whose tag it does
not know; a change to what a kind holds gets a new tag, and the loaders keep reading the old one."""

ACOUSTIC_FORMAT = "ttskit-acoustic-1"  # train-acoustic's step_*.pt and best.pt: full training state
VOCODER_TRAINING_FORMAT = "ttskit-vocoder-1"  # train-vocoder's step_*.pt: both networks and optimisers
VOCODER_GENERATOR_FORMAT = "ttskit-vocoder-generator-1"  # generator_*.pt: what synthesis loads
LEARNED_ALIGNER_FORMAT = "ttskit-learned-aligner-1"  # WORK/aligner/aligner.pt
