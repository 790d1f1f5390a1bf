"""The learned aligner (Badlani et al. 2021): an alignment model trained on the corpus itself
(`model`), its resumable training and duration read-out (`training`). Preprocessing reaches it
through the corpus-level aligner interface (`ttskit.align.corpus`)."""
