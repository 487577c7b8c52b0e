"""Config sections of the model room: which model serves tactics (``model``) and how it samples (``generation``)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from raylib.configbase import Section


class ModelSection(Section):
    path: str = Field("runs/models/tiny", min_length=1,
                      description="local model directory (config.json, weights, tokenizer); the bootstrap "
                                  "job saves the tiny model here; never downloaded from the hub")
    backend: Literal["hf", "vllm"] = Field("hf", description="generation backend: hf (transformers) or vllm")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="weights and activations dtype; part of the model fingerprint")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when a GPU is visible, else cpu")
    adapter: Optional[str] = Field(None, description="peft LoRA adapter directory applied on top; null: none")
    gpu_memory_utilization: float = Field(
        0.1, gt=0, le=1, description="vllm: share of GPU memory (on CPU: of RAM) the engine reserves; "
                                     "keep it low beside Ray on CPU")
    max_model_len: Optional[int] = Field(1024, ge=16, description="vllm: longest prompt+completion in tokens; null: the model's")
    max_lora_rank: int = Field(32, ge=1, description="vllm: largest LoRA rank an adapter may have")
    max_num_seqs: int = Field(64, ge=1, description="vllm: sequences the engine schedules at once")
    enforce_eager: bool = Field(True, description="vllm: skip CUDA graph capture (faster start, slower decode)")
    seed: int = Field(0, description="sampling seed of the backend")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model.path must name a local directory")
        return v


class GenerationSection(Section):
    """How the backend serves requests. What to sample (n, temperature, max tokens) is the caller's:
    the search asks with ``search.num_candidates``, ``search.temperature`` and ``search.max_tokens``."""

    template: Optional[str] = Field(None, description="prompt template with one {state} placeholder; null: "
                                                      "raylib.models.prompt.DEFAULT_TEMPLATE")
    max_batch_prompts: int = Field(16, ge=1, description="hf: prompts per generate call")
    max_batch_tokens: Optional[int] = Field(
        32768, ge=64, description="hf: cap of prompts x n x (prompt + max_tokens) tokens per generate call; null: none")

    @field_validator("template")
    @classmethod
    def _template(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            from raylib.models.prompt import validate_template

            validate_template(v)  # TemplateError is a ValueError: pydantic reports it under this key
        return v
