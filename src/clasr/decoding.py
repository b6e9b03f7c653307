"""Batched greedy decoding with a per-utterance bound on generated tokens.

A fine-tuned Whisper can fall into a loop ("m m m …") on audio unlike its training data;
left alone it runs to the 448-token limit, which costs minutes on a CPU and inflates WER
with hundreds of insertions. Every utterance therefore gets a budget proportional to its
duration::

    budget(d) = min(max_new_tokens, ceil(tokens_per_second · d) + extra_tokens)

The defaults (10 tokens/s + 16) leave several times the token rate of fast read speech
(~4 tokens/s) and of spelled letters (~3 letters/s, one token each). A hypothesis that
reaches its budget is flagged ``hit_token_limit`` in the hypothesis files, so loops are
counted rather than hidden.

Only text tokens and the end-of-text token can be produced: every special or timestamp
token (ids above end-of-text) is suppressed, together with the checkpoint's
``suppress_tokens`` and, at the first step, its ``begin_suppress_tokens``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field


class DecodeLimits(BaseModel):
    """The token budget of one utterance: ``min(max_new_tokens, ceil(tokens_per_second·d) + extra_tokens)``."""

    model_config = ConfigDict(extra="forbid")

    tokens_per_second: float = Field(10.0, gt=0)
    extra_tokens: int = Field(16, ge=1)
    max_new_tokens: int = Field(224, ge=1)

    def budget(self, duration: float) -> int:
        return min(self.max_new_tokens, math.ceil(self.tokens_per_second * duration) + self.extra_tokens)


@dataclass
class DecodedTokens:
    tokens: list[int]  # generated text tokens, without the end-of-text token
    hit_token_limit: bool


def suppressed_ids(model, eot: int, first_step: bool) -> list[int]:
    """Token ids that may not be generated (at the first step, or at any later step)."""
    gen = model.generation_config
    vocab = model.config.vocab_size
    ids = set(range(eot + 1, vocab)) | set(gen.suppress_tokens or [])
    if first_step:
        ids |= set(gen.begin_suppress_tokens or [])
    return sorted(i for i in ids if i < vocab)


@torch.no_grad()
def greedy_decode(
    model, input_features: torch.Tensor, prompt: list[int], eot: int, budgets: list[int]
) -> list[DecodedTokens]:
    """Greedy decoding of a batch; row i stops at end-of-text or after ``budgets[i]`` tokens
    (never beyond the decoder's last position)."""
    room = model.config.max_target_positions - len(prompt)
    budgets = [min(b, room) for b in budgets]
    batch = input_features.shape[0]
    device = input_features.device
    encoder_states = model.model.encoder(input_features).last_hidden_state
    later_mask = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=device)
    later_mask[suppressed_ids(model, eot, first_step=False)] = True
    first_mask = torch.zeros_like(later_mask)
    first_mask[suppressed_ids(model, eot, first_step=True)] = True

    step_input = torch.tensor([prompt] * batch, device=device)
    budget = torch.tensor(budgets, device=device)
    generated = torch.zeros(batch, 0, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    hit = torch.zeros_like(finished)
    cache = None
    for step in range(max(budgets)):
        out = model.model.decoder(
            input_ids=step_input, encoder_hidden_states=encoder_states, past_key_values=cache, use_cache=True
        )
        cache = out.past_key_values
        logits = model.proj_out(out.last_hidden_state[:, -1]).float()
        logits.masked_fill_(first_mask if step == 0 else later_mask, float("-inf"))
        next_token = logits.argmax(dim=-1).masked_fill(finished, eot)
        generated = torch.cat([generated, next_token[:, None]], dim=1)
        finished |= next_token == eot
        over = ~finished & (step + 1 >= budget)
        hit |= over
        finished |= over
        if finished.all():
            break
        step_input = next_token[:, None]
    return [_strip(generated[i].tolist(), eot, bool(hit[i])) for i in range(batch)]


def _strip(tokens: list[int], eot: int, hit: bool) -> DecodedTokens:
    if eot in tokens:
        tokens = tokens[: tokens.index(eot)]
    return DecodedTokens(tokens, hit)
