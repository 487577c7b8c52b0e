"""Config section of the training room: SFT (LoRA or full parameters), its guards and the bootstrap.

Defaults are sized for CPU tests with the tiny model (one CPU worker, short sequences, a few hundred
steps at most); the GPU configs raise batch size, sequence length and workers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raylib.configbase import Section

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraSection(Section):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_PROJECTIONS), min_length=1,
                                      description="module names to adapt; default: all 7 Llama projections")


class GuardsSection(Section):
    min_coverage: float = Field(1.0, ge=0, description="warn when planned samples seen / dataset size is below")
    lr_floor_fraction: float = Field(0.01, ge=0, lt=1, description="an LR below this share of the peak is 'dead'")
    lr_floor_max_share: float = Field(0.5, ge=0, le=1,
                                      description="warn when more than this share of steps has a dead LR")
    stop_on_plan: bool = Field(False, description="stop before training when the plan check warns")
    grad_patience: int = Field(3, ge=1, description="stop after this many consecutive zero or NaN grad norms")
    grad_zero_eps: float = Field(0.0, ge=0, description="a grad norm <= this counts as zero")
    probe_states: int = Field(8, ge=0, description="held-out states probed at each evaluation (0: no probe)")
    probe_samples: int = Field(2, ge=0, description="sampled tactics per probe state, beside the greedy one")
    probe_temperature: float = Field(1.0, gt=0)
    probe_max_tokens: int = Field(32, ge=1)
    probe_start_step: int = Field(0, ge=0, description="collapse stops the run only from this step on "
                                                       "(a model trained from scratch starts degenerate)")
    max_empty_share: float = Field(0.5, ge=0, le=1, description="collapse: empty/whitespace-only outputs")
    max_repetitive_share: float = Field(0.5, ge=0, le=1, description="collapse: repeated n-gram/char outputs")
    max_identical_share: float = Field(0.9, ge=0, le=1,
                                       description="collapse: share of probe states given the same greedy output")


class BootstrapSection(Section):
    theorems: int = Field(1000, ge=10, description="generated theorems (train split used for the corpus)")
    seed: int = Field(1, description="generator seed of the corpus; theorems.* (the pool expert iteration proves) "
                                     "is left out of it, so differ from theorems.seed or little is left")
    vocab_size: int = Field(512, ge=300)
    hidden_size: int = Field(128, ge=64, description="tiny Llama width (head_dim 64: heads = hidden / 64)")
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    lr: float = Field(3e-3, gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=1)
    max_seq_len: int = Field(320, ge=16)
    eval_states: int = Field(200, ge=1, description="valid-split states for the tactic-validity figure")


class EarlyStoppingSection(Section):
    patience: int = Field(3, ge=1, description="stop after this many evaluations in a row without improvement")
    min_delta: float = Field(0.0, ge=0, description="an eval loss must fall below the best by more than this")


class SFTSection(Section):
    """``dtype`` is the compute dtype. ``float32``: weights, optimizer and arithmetic in float32.
    ``bfloat16``: the forward and backward run under ``torch.autocast(bfloat16)`` while every trained
    parameter and the optimizer state stay float32 (master weights; a pure-bf16 AdamW rounds small
    updates away): ``mode: full`` loads the weights in float32; ``mode: lora`` loads the frozen base in
    bfloat16 and keeps the adapter in float32. ``float16`` is refused for training (it needs loss
    scaling, which this trainer does not do). ``quantization`` (4bit / 8bit, bitsandbytes, CUDA only)
    loads the frozen base quantized for QLoRA (``mode: lora`` only); ``gradient_checkpointing``
    recomputes activations in the backward pass; ``early_stopping`` stops when the eval loss has not
    improved for ``patience`` evaluations (the model is the one at the stopping step; the run's metrics
    name the best step and why it stopped)."""

    mode: Literal["lora", "full"] = "lora"
    lora: LoraSection = LoraSection()
    save: Literal["adapter", "merged"] = Field("adapter", description="LoRA output: adapter dir or merged model")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="compute dtype; bfloat16 autocasts with float32 master weights (see the class doc)")
    quantization: Literal["4bit", "8bit"] | None = Field(
        None, description="QLoRA: frozen base loaded 4-bit (nf4) or 8-bit by bitsandbytes; CUDA and mode lora only")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (less memory)")
    early_stopping: EarlyStoppingSection | None = Field(
        None, description="stop when the eval loss stalls; needs eval_every > 0 and held-out examples")
    lr: float = Field(1e-3, ge=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int | None = Field(None, ge=0, description="null: warmup_ratio of the total steps")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine/linear decay floor, share of the peak")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; null: from epochs")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1, description="examples per device per micro-batch")
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, ge=0, description="clip threshold (0: no clipping)")
    max_seq_len: int = Field(256, ge=16, description="prompt+tactic tokens; long prompts are cut in the middle")
    shuffle_buffer: int = Field(256, ge=0, description="local shuffle buffer of the data iterator (0: off)")
    eval_every: int = Field(50, ge=0, description="steps between evaluations (0: only at the end)")
    eval_examples: int = Field(128, ge=1, description="held-out examples for the eval loss")
    checkpoint_every: int = Field(50, ge=0, description="steps between checkpoints (0: only at the end)")
    keep_checkpoints: int | None = Field(None, ge=1, description="null: keep all")
    log_every: int = Field(10, ge=1, description="steps between metric reports")
    max_failures: int = Field(0, ge=-1, description="worker-failure retries (-1: unlimited)")
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = Field(None, description="e.g. {CPU: 1} or {GPU: 1}")
    valid_fraction: float = Field(0.02, ge=0, lt=1, description="theorems held out of SFT for eval/probe")
    seed: int = 0
    guards: GuardsSection = GuardsSection()
    bootstrap: BootstrapSection = BootstrapSection()

    @model_validator(mode="after")
    def _check(self) -> SFTSection:
        if self.mode == "full" and self.save == "merged":
            raise ValueError("sft.save=merged applies to mode=lora only")
        if self.dtype == "float16":
            raise ValueError("sft.dtype=float16 is refused for training: float16 needs loss scaling, which this "
                             "trainer does not do; set sft.dtype: bfloat16 (autocast, float32 master weights) "
                             "or float32")
        if self.quantization is not None:
            q = f"sft.quantization={self.quantization}"
            if self.mode != "lora":
                raise ValueError(f"{q} needs sft.mode=lora (a quantized base is frozen: QLoRA trains LoRA "
                                 "adapters on it); set sft.mode: lora or sft.quantization: null")
            if self.save == "merged":
                raise ValueError(f"{q}: merging an adapter into a quantized base loses its precision; set "
                                 "sft.save: adapter or sft.quantization: null")
            if not self.use_gpu:
                raise ValueError(f"{q} needs CUDA GPUs (bitsandbytes): set sft.use_gpu: true on GPU workers "
                                 "or sft.quantization: null")
        if self.early_stopping is not None and not self.eval_every:
            raise ValueError("sft.early_stopping needs evaluations during training: set sft.eval_every > 0 "
                             "or sft.early_stopping: null")
        return self


NEGATIVE_KINDS = ("hard", "medium", "easy")


class EBMSection(Section):
    """The energy-based value head trained on state embeddings (``jobs.train_ebm``).

    Negatives per positive (a proof-path state): ``hard`` = its siblings, ``medium`` = other states of
    the same theorem, ``easy`` = states of other theorems. ``K = negatives`` slots are split by the
    ratios; when a kind runs short, the missing slots are filled from the kinds in ``fallback`` order.
    """

    hidden_sizes: list[int] = Field(default_factory=lambda: [512, 512], min_length=1,
                                    description="MLP widths from the embedding to the scalar energy")
    dropout: float = Field(0.1, ge=0, lt=1)
    loss: Literal["info_nce", "margin_ranking"] = "info_nce"
    temperature: float = Field(1.0, gt=0, description="info_nce: logits are -energy / temperature")
    margin: float = Field(1.0, ge=0, description="margin_ranking: wanted gap between negative and positive")
    negatives: int = Field(7, ge=1, description="K negatives per positive")
    hard_ratio: float = Field(0.5, ge=0)
    medium_ratio: float = Field(0.25, ge=0)
    easy_ratio: float = Field(0.25, ge=0)
    fallback: list[Literal["hard", "medium", "easy"]] = Field(
        default_factory=lambda: list(NEGATIVE_KINDS), description="order in which kinds fill a shortfall")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0, description="clip threshold (0: no clipping)")
    epochs: int = Field(10, ge=1, description="passes over the positives (negatives resampled each pass)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; null: from epochs")
    batch_size: int = Field(256, ge=1, description="groups (1 positive + K negatives) per step, all workers")
    eval_every: int = Field(100, ge=0, description="steps between evaluations (0: only at the end)")
    eval_groups: int = Field(2048, ge=1, description="groups of each split scored at an evaluation")
    checkpoint_every: int = Field(100, ge=0, description="steps between checkpoints (0: only at the end)")
    keep_checkpoints: int | None = Field(None, ge=1, description="null: keep all")
    log_every: int = Field(50, ge=1, description="steps between metric reports")
    max_failures: int = Field(0, ge=-1, description="worker-failure retries (-1: unlimited)")
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = Field(None, description="e.g. {CPU: 1} or {GPU: 1}")
    valid_fraction: float = Field(0.2, ge=0, lt=1, description="theorems held out for validation")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> EBMSection:
        if sorted(self.fallback) != sorted(NEGATIVE_KINDS):
            raise ValueError(f"ebm.fallback must order each of {', '.join(NEGATIVE_KINDS)} once")
        if self.hard_ratio + self.medium_ratio + self.easy_ratio <= 0:
            raise ValueError("ebm: hard_ratio + medium_ratio + easy_ratio must be > 0")
        return self
