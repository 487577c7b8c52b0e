"""Config section ``iterate:`` of the expert-iteration job: budgets per iteration, theorem splits, the gate."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from raylib.configbase import Section


class IterateSection(Section):
    iterations: int = Field(2, ge=1, description="expert iterations (the --iterations default)")
    train_split: Literal["train", "valid", "test"] = Field("train", description="split the prove stage searches")
    train_theorems: int = Field(64, ge=1, description="train theorems proved per iteration: iteration k takes the "
                                "k-th window of this many (wrapping), so every iteration sees new theorems")
    heldout_split: Literal["train", "valid", "test"] = Field("valid", description="split of the evaluate stage; "
                                                             "checked disjoint from every trained theorem")
    heldout_theorems: Optional[int] = Field(48, ge=1, description="held-out theorems evaluated; null: the split")
    eval_attempts: int = Field(1, ge=1, description="seeded attempts per held-out theorem (pass@k, mean ± sd)")
    prove_max_nodes: Optional[int] = Field(64, ge=1, description="search.max_nodes of the prove stage; null: search.max_nodes")
    eval_max_nodes: Optional[int] = Field(32, ge=1, description="search.max_nodes of the evaluate stage; null: search.max_nodes")
    sft_steps: Optional[int] = Field(200, ge=1, description="SFT optimizer steps per iteration; null: sft.max_steps/epochs")
    sft_probe_steps: bool = Field(False, description="fine-tune on proof steps made by search.probe_tactics too; "
                                  "false: only the generator's own steps (the probes are tried at every node anyway; "
                                  "the sft_data table counts the steps left out under 'probe')")
    ebm_steps: Optional[int] = Field(40, ge=1, description="EBM training steps per iteration; null: the ebm section's")
    noise: bool = Field(True, description="iteration 0 also evaluates the starting model (LLM-only) on the next "
                        "seed: the evaluation's own noise, set beside the rise of the proof rate in summary.json")
    value_model: bool = Field(True, description="train and use the EBM (encode + train-ebm stages); false: policy only")
    tolerance: float = Field(0.02, ge=0, le=1, description="gate: largest allowed fall of the held-out proof rate")
    max_centroid_drop: float = Field(0.5, ge=0, le=1, description="gate: largest relative fall of the separation "
                                     "probe's centroid L2 (provable vs unprovable states)")
    max_probe_drop: float = Field(0.1, ge=0, le=1, description="gate: largest fall of the separation probe's "
                                  "linear-probe accuracy")
