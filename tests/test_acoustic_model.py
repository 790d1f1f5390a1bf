from __future__ import annotations

import torch

from ttskit.data.dataset import FrameBudgetSampler, WorkDataset, collate
from ttskit.models.fastspeech2 import PRESETS, Controls, FastSpeech2, FastSpeech2Config, VarianceTargets
from ttskit.models.losses import fastspeech2_loss

TINY = FastSpeech2Config(hidden=64, encoder_layers=1, decoder_layers=1, heads=2, conv_filter=128,
                         variance_filter=64, postnet_layers=2, postnet_channels=64, dropout=0.0,
                         variance_dropout=0.0)


def model_for(dataset: WorkDataset, config: FastSpeech2Config) -> FastSpeech2:
    stats = dataset.stats
    return FastSpeech2(config, len(dataset.vocab), 80, len(dataset.speakers),
                       (stats["pitch"]["normalized_min"], stats["pitch"]["normalized_max"]),
                       (stats["energy"]["normalized_min"], stats["energy"]["normalized_max"]))


def test_dataset_normalises_with_corpus_stats(mini_work):
    dataset = WorkDataset(mini_work, "train")
    item = dataset[0]
    assert item["mel"].shape[1] == 80 and item["durations"].sum() == item["mel"].shape[0]
    assert len(item["phonemes"]) == len(item["pitch"]) == len(item["durations"])
    pitch = torch.cat([dataset[i]["pitch"][dataset[i]["durations"] > 0] for i in range(len(dataset))])
    assert abs(float(pitch.mean())) < 0.3 and 0.6 < float(pitch.std()) < 1.4  # ~z-scores (val held out)


def test_frame_budget_sampler_covers_everything_within_budget():
    lengths = [50 + (i * 37) % 400 for i in range(200)]
    sampler = FrameBudgetSampler(lengths, max_frames=2000, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(lengths[i] for i in b) * len(b) <= 2000 or len(b) == 1 for b in batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled each epoch
    ranks = [FrameBudgetSampler(lengths, 2000, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    first, second = (list(r) for r in ranks)
    assert len(first) == len(second)
    assert not {i for b in first for i in b} & {i for b in second for i in b}  # disjoint data


def test_presets_have_the_promised_sizes():
    base = PRESETS["base"]
    assert (base.hidden, base.encoder_layers, base.decoder_layers, base.heads, base.conv_filter,
            base.conv_kernels) == (256, 4, 6, 2, 1024, (9, 1))
    small = FastSpeech2(PRESETS["small"], 80, 80)
    assert sum(p.numel() for p in small.parameters()) < 5e6


def test_forward_shapes_masks_and_controls(mini_work):
    dataset = WorkDataset(mini_work, "train")
    batch = collate([dataset[i] for i in range(3)])
    torch.manual_seed(0)
    model = model_for(dataset, TINY)
    out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers,
                targets=VarianceTargets(batch.durations, batch.pitch, batch.energy), max_frames=batch.mels.shape[1])
    assert out.mel_postnet.shape == batch.mels.shape
    assert torch.equal(out.frame_lengths, batch.frame_lengths)
    assert (out.mel_postnet[out.frame_mask] == 0).all()
    model.eval()
    with torch.no_grad():
        override = torch.full_like(batch.durations, 3).masked_fill(out.phoneme_mask, 0)
        normal = model(batch.phonemes, batch.phoneme_lengths, controls=Controls(durations=override))
        slow = model(batch.phonemes, batch.phoneme_lengths, controls=Controls(durations=override * 2))
    assert torch.equal(normal.frame_lengths, batch.phoneme_lengths * 3)
    assert torch.equal(slow.frame_lengths, normal.frame_lengths * 2)


def test_overfitting_one_batch_cuts_the_loss_tenfold(mini_work):
    dataset = WorkDataset(mini_work, "train")
    shortest = sorted(range(len(dataset)), key=dataset.frames)[:2]
    batch = collate([dataset[i] for i in shortest])
    torch.manual_seed(0)
    model = model_for(dataset, TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    targets = VarianceTargets(batch.durations, batch.pitch, batch.energy)
    losses = []
    for _ in range(250):
        out = model(batch.phonemes, batch.phoneme_lengths, batch.speakers, targets=targets,
                    max_frames=batch.mels.shape[1])
        loss = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_loss_ignores_padding(mini_work):
    dataset = WorkDataset(mini_work, "train")
    batch = collate([dataset[i] for i in range(2)])
    torch.manual_seed(0)
    model = model_for(dataset, TINY).eval()
    targets = VarianceTargets(batch.durations, batch.pitch, batch.energy)
    with torch.no_grad():
        out = model(batch.phonemes, batch.phoneme_lengths, targets=targets, max_frames=batch.mels.shape[1])
        clean = fastspeech2_loss(out, batch.mels, batch.durations, batch.pitch, batch.energy)
        mels = batch.mels.clone()
        mels[batch.mels.abs().sum(-1) == 0] = 1e6  # garbage in the padding only
        dirty = fastspeech2_loss(out, mels, batch.durations, batch.pitch, batch.energy)
    assert torch.allclose(clean["loss"], dirty["loss"])


def test_batched_inference_equals_one_by_one():
    """Padding must not leak into real positions (convolutions see zeros past each utterance)."""
    from ttskit.models.fastspeech2 import PRESETS, FastSpeech2

    torch.manual_seed(0)
    model = FastSpeech2(PRESETS["small"], n_symbols=40, n_mels=80, n_speakers=2).eval()
    with torch.no_grad():
        for parameter in model.duration_predictor.output.parameters():
            parameter.zero_()
        model.duration_predictor.output.bias.fill_(1.5)
        lengths = torch.tensor([12, 7, 3])
        phonemes = torch.randint(1, 40, (3, 12)) * (torch.arange(12) < lengths[:, None])
        speakers = torch.tensor([0, 1, 1])
        batched = model(phonemes, lengths, speakers)
        for row in range(3):
            alone = model(phonemes[row:row + 1, :lengths[row]], lengths[row:row + 1], speakers[row:row + 1])
            frames = int(alone.frame_lengths[0])
            assert frames == int(batched.frame_lengths[row]) > 0
            assert torch.allclose(batched.mel_postnet[row, :frames], alone.mel_postnet[0], atol=1e-5)
            assert torch.allclose(batched.pitch[row, :lengths[row]], alone.pitch[0], atol=1e-5)


def test_a_batch_with_no_frames_to_say_does_not_crash():
    from ttskit.models.fastspeech2 import PRESETS, FastSpeech2

    model = FastSpeech2(PRESETS["small"], n_symbols=40, n_mels=80).eval()
    phonemes = torch.randint(1, 40, (2, 5))
    with torch.no_grad():
        out = model(phonemes, torch.tensor([5, 3]), controls=Controls(durations=torch.zeros(2, 5, dtype=torch.long)))
    assert out.frame_lengths.tolist() == [0, 0] and out.mel_postnet.shape[1] == 1
    assert torch.isfinite(out.mel_postnet).all() and (out.mel_postnet == 0).all()


def test_self_attention_equals_torch_multihead_attention_and_loads_its_weights():
    """The fused-kernel attention computes what nn.MultiheadAttention does, with its parameter
    names, so checkpoints from either load into the other."""
    from torch import nn

    from ttskit.models.fastspeech2 import SelfAttention

    torch.manual_seed(0)
    reference = nn.MultiheadAttention(64, 2, batch_first=True).eval()
    ours = SelfAttention(64, 2)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 20, 64)
    lengths = torch.tensor([20, 7, 1])
    padding = torch.arange(20)[None] >= lengths[:, None]
    expected = reference(x, x, x, key_padding_mask=padding, need_weights=False)[0]
    got = ours(x, padding)
    for row, n in enumerate(lengths):
        assert torch.allclose(got[row, :n], expected[row, :n], atol=1e-5)
    got.sum().backward()  # and it trains
    assert ours.in_proj_weight.grad is not None and torch.isfinite(ours.in_proj_weight.grad).all()
