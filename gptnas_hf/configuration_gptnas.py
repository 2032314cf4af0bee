"""Configuration of the architecture GPT (paper section 4.3)."""

from __future__ import annotations

from transformers import GPT2Config

from .block_labels import BLOCK_LABELS


class GPTNASConfig(GPT2Config):
    """A ``GPT2Config`` sized as in the paper (4 layers, 4 heads) plus the FCN block head.

    Args:
        window_size: k, the layers of context the GPT reads to predict the next layer (10).
        block_labels: the block classes the FCN chooses among (the paper's Table 2).
        fcn_hidden_size / fcn_layers: width and depth of the FCN block classifier, which reads
            the token embeddings of the k context layers plus the predicted layer.
        fcn_dropout: dropout inside the FCN.
        block_loss_weight: weight of the block-classification loss beside the next-layer loss.
        mask_token_id: id of the tokenizer's mask token.
        location_buckets: Algorithm 1's "location information": each token also carries where its
            layer sits in the network, as relative depth (the index of its block over the
            network's block count) in this many equal buckets, through a learned embedding added
            to the token's (ids 1..location_buckets; 0 for special tokens and padding). 0 turns it
            off. See :func:`location_id`.
        Other arguments are ``GPT2Config``'s; ``n_positions`` defaults to ``window_size + 1``.
    """

    model_type = "gptnas"

    def __init__(
        self,
        vocab_size: int = 200,
        window_size: int = 10,
        n_positions: int | None = None,
        n_embd: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        block_labels: list[str] | tuple[str, ...] = BLOCK_LABELS,
        fcn_hidden_size: int = 256,
        fcn_layers: int = 2,
        fcn_dropout: float = 0.1,
        block_loss_weight: float = 1.0,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        unk_token_id: int = 3,
        mask_token_id: int = 4,
        location_buckets: int = 0,
        **kwargs,
    ):
        if window_size < 1:
            raise ValueError(f"window_size must be at least 1, got {window_size}")
        self.window_size = window_size
        self.block_labels = list(block_labels)
        self.fcn_hidden_size = fcn_hidden_size
        self.fcn_layers = fcn_layers
        self.fcn_dropout = fcn_dropout
        self.block_loss_weight = block_loss_weight
        self.unk_token_id = unk_token_id
        self.mask_token_id = mask_token_id
        if location_buckets < 0:
            raise ValueError(f"location_buckets must be >= 0, got {location_buckets}")
        self.location_buckets = location_buckets
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(
            vocab_size=vocab_size,
            n_positions=n_positions if n_positions is not None else window_size + 1,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    @property
    def num_block_labels(self) -> int:
        return len(self.block_labels)


def location_id(block_index: int, num_blocks: int, buckets: int) -> int:
    """The location id of a layer in block ``block_index`` (0-based) of a network of
    ``num_blocks`` blocks: ``1 + floor(buckets * block_index / num_blocks)``, in 1..buckets."""
    if buckets <= 0:
        return 0
    num_blocks = max(int(num_blocks), 1)
    return 1 + min(buckets - 1, max(0, int(buckets * int(block_index) / num_blocks)))
