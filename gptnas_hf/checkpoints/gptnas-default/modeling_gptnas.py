"""The architecture GPT: a GPT-2 decoder that predicts the next layer type, and the FCN
block classifier that turns the context plus the predicted layer into a block class
(paper section 3.4, Fig. 3, Algorithm 1). One checkpoint holds both heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.modeling_outputs import ModelOutput
from transformers.models.gpt2.modeling_gpt2 import GPT2Model, GPT2PreTrainedModel

from .configuration_gptnas import GPTNASConfig


@dataclass
class ArchitectureModelingOutput(ModelOutput):
    """Outputs of :class:`GPTNASForArchitectureModeling`.

    loss: next-layer loss plus ``block_loss_weight`` times the block loss (when labels given).
    logits: next-layer-type logits, ``(batch, seq, vocab)``.
    block_logits: block-class logits of the last window, ``(batch, num_block_labels)``.
    """

    loss: torch.FloatTensor | None = None
    lm_loss: torch.FloatTensor | None = None
    block_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    block_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class GPTNASPreTrainedModel(GPT2PreTrainedModel):
    config_class = GPTNASConfig
    config: GPTNASConfig

    def _init_weights(self, module):
        super()._init_weights(module)


class FCNBlockHead(nn.Module):
    """The FCN of the paper: the token embeddings of the k context layers and the predicted
    layer (``k + 1`` tokens, left-padded), flattened, through ``fcn_layers`` hidden layers."""

    def __init__(self, config: GPTNASConfig):
        super().__init__()
        width = (config.window_size + 1) * config.n_embd
        layers: list[nn.Module] = []
        for _ in range(config.fcn_layers):
            layers += [nn.Linear(width, config.fcn_hidden_size), nn.GELU(), nn.Dropout(config.fcn_dropout)]
            width = config.fcn_hidden_size
        layers.append(nn.Linear(width, config.num_block_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, window_embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(window_embeddings.flatten(1))


class GPTNASForArchitectureModeling(GPTNASPreTrainedModel, GenerationMixin):
    """GPT-2 decoder + tied next-layer head + FCN block head."""

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPTNASConfig):
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.location_embeddings = (nn.Embedding(config.location_buckets + 1, config.n_embd)
                                    if getattr(config, "location_buckets", 0) else None)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.block_head = FCNBlockHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    # -- the FCN ------------------------------------------------------------------------
    def block_window(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     pad: int | None = None) -> torch.Tensor:
        """The last ``k + 1`` real tokens of each row, left-padded with the pad id (or ``pad``)."""
        k1 = self.config.window_size + 1
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(dim=1)
        fill = self.config.pad_token_id if pad is None else pad
        window = torch.full((input_ids.shape[0], k1), fill, dtype=input_ids.dtype, device=input_ids.device)
        for row, length in enumerate(lengths.tolist()):
            take = min(length, k1)
            if take:
                window[row, k1 - take:] = input_ids[row, length - take:length]
        return window

    def classify_block(self, window_ids: torch.Tensor, window_locations: torch.Tensor | None = None) -> torch.Tensor:
        """Block-class logits for windows of ``k + 1`` token ids (k context + predicted layer),
        with their location ids when the model uses locations."""
        if window_ids.shape[1] != self.config.window_size + 1:
            raise ValueError(f"the FCN reads windows of {self.config.window_size + 1} tokens, got {window_ids.shape[1]}")
        return self.block_head(self._embed(window_ids, window_locations))

    def _embed(self, input_ids: torch.Tensor, location_ids: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings plus, for a model with locations, the location embeddings."""
        embeddings = self.transformer.wte(input_ids)
        if self.location_embeddings is not None:
            if location_ids is None:
                raise ValueError("this model reads location_ids (config.location_buckets > 0); pass them with the "
                                 "input_ids (gptnas_hf.configuration_gptnas.location_id)")
            embeddings = embeddings + self.location_embeddings(location_ids)
        return embeddings

    # -- forward ------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        block_labels: torch.LongTensor | None = None,
        return_block_logits: bool | None = None,
        location_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> ArchitectureModelingOutput:
        """``labels``: next-layer targets (shifted inside, -100 ignored), Eq. 2.
        ``block_labels``: the block class of each row's last real token (-100 ignored).
        ``location_ids``: each token's location (config ``location_buckets``), same shape as
        ``input_ids``; required when the model uses locations, ignored otherwise.
        At most ``n_positions`` tokens (k + 1): longer input raises a ``ValueError`` (slide
        a window over a long network, as training and the pipeline do)."""
        if input_ids is not None and input_ids.shape[-1] > self.config.n_positions:
            raise ValueError(
                f"the architecture GPT reads at most {self.config.n_positions} layers at once (window k + 1), got "
                f"{input_ids.shape[-1]}; cut the sequence into windows of at most {self.config.n_positions} "
                "(tokenizer(..., truncation=True) keeps the last ones)"
            )
        if input_ids is not None and "inputs_embeds" not in kwargs:
            kwargs["inputs_embeds"] = self._embed(input_ids, location_ids)
            outputs = self.transformer(attention_mask=attention_mask, **kwargs)
        else:
            outputs = self.transformer(input_ids, attention_mask=attention_mask, **kwargs)
        logits = self.lm_head(outputs.last_hidden_state)
        lm_loss = block_loss = block_logits = None
        if labels is not None:
            lm_loss = nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
        if block_labels is not None or return_block_logits:
            window_locations = None
            if self.location_embeddings is not None and location_ids is not None:
                window_locations = self.block_window(location_ids, attention_mask, pad=0)
            block_logits = self.classify_block(self.block_window(input_ids, attention_mask), window_locations)
        if block_labels is not None:
            if (block_labels != -100).any():
                block_loss = nn.functional.cross_entropy(block_logits.float(), block_labels, ignore_index=-100)
            else:
                block_loss = block_logits.sum() * 0.0
        loss = None
        if lm_loss is not None or block_loss is not None:
            loss = (lm_loss if lm_loss is not None else 0.0) + self.config.block_loss_weight * (
                block_loss if block_loss is not None else 0.0
            )
        return ArchitectureModelingOutput(
            loss=loss,
            lm_loss=lm_loss,
            block_loss=block_loss,
            logits=logits,
            block_logits=block_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @torch.no_grad()
    def next_layer_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          location_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the layer that follows each (right-padded) row: ``(batch, vocab)``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self(input_ids=input_ids, attention_mask=attention_mask, location_ids=location_ids).logits
        last = attention_mask.sum(dim=1) - 1
        return logits[torch.arange(logits.shape[0], device=logits.device), last]
