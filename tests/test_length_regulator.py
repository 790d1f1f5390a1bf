from __future__ import annotations

import pytest
import torch
from conftest import requires_cuda

from ttskit.models.length_regulator import PADDING, frame_to_phoneme_index, regulate_length, regulate_length_reference


def test_index_map_by_hand():
    durations = torch.tensor([[2, 0, 1, 3], [1, 1, 0, 0]])
    index, lengths = frame_to_phoneme_index(durations)
    assert lengths.tolist() == [6, 2]
    assert index.tolist() == [[0, 0, 2, 3, 3, 3], [0, 1, PADDING, PADDING, PADDING, PADDING]]


@pytest.mark.parametrize("max_len", [None, 5, 400])
def test_numba_and_torch_reference_agree(max_len):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(16, 128, 32, generator=generator)
    durations = torch.randint(0, 7, (16, 128), generator=generator)
    durations[3, 40:] = 0  # a shorter item: padding at the end
    durations[5, 7] = -2  # predicted durations can go negative: counted as zero
    ours, our_lengths = regulate_length(hidden, durations, max_len)
    reference, reference_lengths = regulate_length_reference(hidden, durations, max_len)
    assert torch.equal(ours, reference) and torch.equal(our_lengths, reference_lengths)
    if max_len is None:
        assert ours.shape[1] == int(durations.clamp(min=0).sum(1).max())
    else:
        assert ours.shape[1] == max_len
    assert (ours[3, our_lengths[3]:] == 0).all()  # padding is exactly zero


def test_gradients_flow_to_every_used_phoneme():
    hidden = torch.randn(2, 4, 3, requires_grad=True)
    out, _ = regulate_length(hidden, torch.tensor([[1, 2, 0, 1], [3, 0, 0, 0]]))
    out.sum().backward()
    assert hidden.grad[0, :, 0].tolist() == [1.0, 2.0, 0.0, 1.0]
    assert hidden.grad[1, :, 0].tolist() == [3.0, 0.0, 0.0, 0.0]


@requires_cuda
def test_cuda_matches_cpu():
    hidden = torch.randn(4, 20, 8)
    durations = torch.randint(0, 5, (4, 20))
    cpu, _ = regulate_length(hidden, durations)
    gpu, _ = regulate_length(hidden.cuda(), durations.cuda())
    assert torch.equal(cpu, gpu.cpu())
