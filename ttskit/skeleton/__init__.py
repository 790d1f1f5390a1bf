"""The one training skeleton (`loop.TrainingLoop` running a `loop.Trainer`), its pieces, the
shared `train` config keys and the distributed set-up. Below every trainer: train-acoustic and
train-vocoder (`ttskit.train`) and the learned aligner (`ttskit.align.learned`) all run on it."""
