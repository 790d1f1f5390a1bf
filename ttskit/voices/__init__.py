"""The voices shipped inside ttskit: one folder per voice (voice.json, MODEL_CARD.md, acoustic.pt,
vocoder.pt), read by `ttskit.synthesis.voices`. Each was made by a recipe in recipes/."""
