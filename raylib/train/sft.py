"""Supervised fine-tuning on (prompt, completion) examples with Ray Train (V2): LoRA or full parameters.

``run_sft`` reads ``train.parquet`` (and ``valid.parquet``) with Ray Data, runs ``sft_worker_loop`` on
``sft.num_workers`` workers (``TorchTrainer``), checkpoints through ``ray.train.report`` and, when the
same job is run again after an interruption, resumes from the latest checkpoint (model or adapter,
optimizer, scheduler, step, data position, loss history, collapse-guard record); a rerun with other
training settings starts afresh (``resume_key``). The result lands in ``<out>/model`` (the
adapter, the merged model or the full model) with ``fingerprint.json``; ``<out>/COMPLETE`` marks a
finished job, so an identical rerun does nothing. Guards (``raylib.train.guards``) stop a run with a
clear reason: the worker loop ends normally and returns the stop, which the driver raises as
``GuardStop`` (a guard stop is not a worker failure, so ``max_failures`` never repeats it).

The loss covers the completion (tactic + end marker + EOS) only: prompt and padding labels are -100.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raylib.hashing import file_hash, json_hash
from raylib.train.config import SFTSection
from raylib.train.guards import GuardStop, check_plan
from raylib.train.jobdir import complete_marker, open_job_dir
from raylib.train.options import SettingRefused
from raylib.train.schedule import plan_steps

log = logging.getLogger(__name__)

__all__ = ["Collator", "SFTResult", "eval_loss", "file_hash", "model_fingerprint", "resume_key", "run_sft",
           "sft_step"]

IGNORE = -100


class Collator:
    """Tokenizes {prompt, completion} batches into right-padded input_ids / attention_mask / labels.

    A sequence longer than ``max_len`` first loses the end of a completion too long to leave the prompt
    half of ``max_len`` (or all of it if shorter; never less than its template plus a cut marker; the
    completion keeps at least ``tail`` tokens); then, if the prompt still does not fit, its state is cut
    by the one truncation policy (``raylib.models.truncate``: ``⊢`` targets and case tags kept, hypotheses dropped
    from the middle, the cut marked). A prompt not made with ``template`` is cut by the same policy
    as a whole. A prompt that fits is never cut; ``truncated`` counts cut examples, ``cuts`` the details.
    """

    def __init__(self, tokenizer, max_len: int, tail: int = 8, template: str | None = None):
        self.tok, self.max_len, self.tail, self.template = tokenizer, max_len, tail, template
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos = tokenizer.eos_token_id
        self.truncated = 0
        from raylib.models.truncate import TruncationStats

        self.cuts = TruncationStats()
        self._floor: dict[bool, int] = {}

    def _fit_prompt(self, prompt: str, keep: int) -> str:
        from raylib.models.prompt import fit_prompt, split_prompt
        from raylib.models.truncate import truncate_state

        state = split_prompt(prompt, self.template)
        if state is not None:
            text, t = fit_prompt(state, self.tok, keep, self.template)
        else:
            t = truncate_state(prompt, self.tok, keep)
            text = t.text
        self.cuts.add(t)
        return text

    def _prompt_floor(self, prompt: str) -> int:
        """Tokens of the shortest prompt the policy can make (template around a bare cut marker)."""
        from raylib.models.prompt import format_prompt, split_prompt
        from raylib.models.truncate import CUT_MARK, count_tokens

        templated = split_prompt(prompt, self.template) is not None
        if templated not in self._floor:
            self._floor[templated] = count_tokens(self.tok, format_prompt(CUT_MARK, self.template)
                                                  if templated else CUT_MARK)
        return self._floor[templated]

    def encode(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        p = self.tok(prompt)["input_ids"]
        c = self.tok(completion, add_special_tokens=False)["input_ids"]
        if self.eos is not None and (not c or c[-1] != self.eos):
            c = c + [self.eos]
        if len(p) + len(c) > self.max_len:
            self.truncated += 1
            c = c[: max(self.tail, self.max_len - min(len(p), max(self._prompt_floor(prompt), self.max_len // 2)))]
            keep = self.max_len - len(c)
            if len(p) > keep:
                p = self.tok(self._fit_prompt(prompt, keep))["input_ids"]
        return p + c, [IGNORE] * len(p) + c

    def __call__(self, batch: dict) -> dict:
        import torch

        pairs = [self.encode(str(p), str(c)) for p, c in zip(batch["prompt"], batch["completion"])]
        width = max(len(ids) for ids, _ in pairs)
        ids = torch.full((len(pairs), width), self.pad, dtype=torch.long)
        labels = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (x, y) in enumerate(pairs):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _token_loss_sum(model, batch: dict, amp: str | None = None):
    import torch.nn.functional as F

    from raylib.train.options import train_autocast

    with train_autocast(amp or "float32", batch["input_ids"].device.type):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def sft_step(model, micro_batches: Sequence[dict], params: Sequence, max_grad_norm: float = 1.0,
             no_sync=None, amp: str | None = None) -> tuple[float, int, float]:
    """Forward/backward over the micro-batches (token-weighted mean loss), then the gradient norm.

    ``amp``: the autocast dtype of the forward (``bfloat16``; None: none), over float32 parameters.

    Returns (loss, completion tokens, grad norm before clipping); the caller steps the optimizer.
    A model with no trainable parameter reaches the loss without a graph: the norm is then 0.
    """
    import contextlib

    import torch

    tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro_batches)
    total = 0.0
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
        with ctx:
            loss = _token_loss_sum(model, batch, amp) / max(1, tokens)
            if loss.requires_grad:
                loss.backward()
        total += float(loss.detach())
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return total, tokens, 0.0
    limit = max_grad_norm if max_grad_norm > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(grads, limit)
    return total, tokens, float(norm)


def eval_loss(model, batches: Sequence[dict], amp: str | None = None) -> float:
    """Token-weighted mean completion loss over collated batches (no gradient)."""
    import torch

    was = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for b in batches:
            total += float(_token_loss_sum(model, b, amp))
            tokens += int((b["labels"][:, 1:] != IGNORE).sum())
    model.train(was)
    return total / max(1, tokens)


# -- the driver ---------------------------------------------------------------------------------

@dataclass
class SFTResult:
    model_dir: Path
    steps: int
    history: list[dict]
    metrics: dict
    fingerprint: dict
    resumed_from: int = 0
    cached: bool = False
    plan: dict = field(default_factory=dict)


def model_fingerprint(model_dir: str | Path) -> str:
    """The id in ``fingerprint.json`` if the directory has one, else a sampled hash of the weights' content."""
    from raylib.models.loading import model_hash

    d = Path(model_dir)
    fp = d / "fingerprint.json"
    if fp.is_file():
        return json.loads(fp.read_text()).get("id", "")
    return model_hash(d)


def _example_files(examples: str | Path) -> tuple[Path, Path | None]:
    p = Path(examples)
    if p.is_dir():
        train, valid = p / "train.parquet", p / "valid.parquet"
        if not train.is_file():
            raise FileNotFoundError(f"{p}: no train.parquet (build it with raylib.data.sft.build_sft_examples)")
        return train, (valid if valid.is_file() else None)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: examples parquet not found")
    return p, None


# Settings that change neither the weights nor the data order: a rerun that changes only these resumes.
RESUME_NEUTRAL = ("log_every", "keep_checkpoints", "max_failures")


def resume_key(sft: SFTSection, base_fingerprint: str, data_hash: str) -> dict:
    """What a checkpoint must share with a run for the run to resume from it: the base model, the data
    and every ``sft`` setting except ``RESUME_NEUTRAL`` (LR, steps, batch, schedule, seed, guards...)."""
    settings = {k: v for k, v in sft.model_dump(mode="json").items() if k not in RESUME_NEUTRAL}
    return {"base": base_fingerprint, "data": data_hash, "sft": settings}


def _no_held_out(examples) -> str:
    return (f"sft.early_stopping needs held-out examples for the eval loss and {examples} has none (no "
            "valid.parquet, or an empty one): build the examples with a held-out share (sft.valid_fraction > 0) "
            "or set sft.early_stopping: null")


def run_sft(sft: SFTSection, examples: str | Path, base: str | Path, out: str | Path,
            config_hash: str = "", interrupt_after_step: int | None = None,
            callbacks: Sequence[Any] = ()) -> SFTResult:
    """Train and save under ``out``; resume or skip as the files in ``out`` say. Needs Ray up (``init_ray``).

    Checkpoints live in ``<out>/train/sft-<key>``, ``<key>`` a hash of ``resume_key``: a rerun with the
    same base, data and training settings resumes there; any other rerun trains afresh (the stale run
    folder is removed). ``callbacks``: Ray Train ``UserCallback`` objects (they run on the controller).
    ``interrupt_after_step`` (tests) makes the workers fail right after the checkpoint of that step.
    Raises ModelLoadError for an unusable ``base``, FileNotFoundError for missing examples,
    SettingRefused for a setting that cannot run (early stopping without held-out examples here; a
    quantized base on a worker without CUDA or bitsandbytes, from the workers before any training) and
    GuardStop when a guard stopped the run. An early stop is a normal end: the metrics say why.
    """
    import ray
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train import (
        CheckpointConfig,
        DataConfig,
        FailureConfig,
        RunConfig,
        ScalingConfig,
    )
    from ray.train.torch import TorchTrainer

    from raylib.data.sft import read_examples
    from raylib.models.loading import check_model_dir
    from raylib.train.devices import torch_config
    from raylib.train.worker import sft_worker_loop

    base = check_model_dir(base).resolve()
    out = Path(out).resolve()
    train_file, valid_file = _example_files(examples)
    if sft.early_stopping is not None and valid_file is None:
        raise SettingRefused(_no_held_out(examples))
    data_hash = file_hash(train_file, valid_file)
    sft_json = sft.model_dump(mode="json")
    rkey = resume_key(sft, model_fingerprint(base), data_hash)
    run_name = "sft-" + json_hash(rkey)
    job_key = dict(rkey, sft=sft_json, config_hash=config_hash)
    job_id = json_hash(job_key)
    if open_job_dir(out, run_name, job_id, "SFT"):
        return _load_result(out, cached=True)
    done = complete_marker(out)
    storage = out / "train"
    (out / "resume_key.json").write_text(json.dumps(dict(rkey, run=run_name), indent=2, sort_keys=True))

    ray.data.DataContext.get_current().enable_progress_bars = False
    train_ds = ray.data.read_parquet(str(train_file)).select_columns(["prompt", "completion", "theorem"])
    n = train_ds.count()
    valid_rows = (read_examples(valid_file).slice(0, max(sft.eval_examples, sft.guards.probe_states)).to_pylist()
                  if valid_file else [])
    if sft.early_stopping is not None and not valid_rows:
        raise SettingRefused(_no_held_out(examples))
    plan = plan_steps(n, sft)
    report = check_plan(plan, sft, held_out=len(valid_rows))
    report.enforce(sft.guards.stop_on_plan)
    log.info("SFT plan: %d examples, %d steps x %d (coverage %.2f epochs), LR peak %g, %d held-out examples",
             n, plan.total_steps, plan.global_batch, plan.coverage, sft.lr, len(valid_rows))
    loop_cfg = {"sft": sft_json, "base": str(base), "total_steps": plan.total_steps, "dataset_size": n,
                "valid_rows": valid_rows, "plan": report.metrics(),
                "interrupt_after_step": interrupt_after_step}
    from raylib.placement import section_scaling

    scaling = ScalingConfig(**section_scaling(sft))
    run_config = RunConfig(name=run_name, storage_path=str(storage),
                           checkpoint_config=CheckpointConfig(num_to_keep=sft.keep_checkpoints),
                           failure_config=FailureConfig(max_failures=sft.max_failures),
                           callbacks=list(callbacks))
    trainer = TorchTrainer(sft_worker_loop, train_loop_config=loop_cfg, scaling_config=scaling,
                           torch_config=torch_config(sft.num_workers),
                           run_config=run_config, datasets={"train": train_ds},
                           dataset_config=DataConfig(datasets_to_split=["train"],
                                                     execution_options=ExecutionOptions(preserve_order=True)))
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        for exc in (getattr(e, "worker_failures", None) or {}).values():
            if isinstance(exc, GuardStop):  # a guard outside the worker loop's own handling
                raise GuardStop(exc.guard, exc.reason, exc.step, exc.last_healthy) from None
        raise
    stop = result.return_value  # the worker loop returns a guard stop as metrics (no failure, no retry)
    if isinstance(stop, dict) and stop.get("refused"):
        raise SettingRefused(stop["refused"])
    if isinstance(stop, dict) and stop.get("stop_guard"):
        raise GuardStop.from_metrics(stop)
    metrics = dict(result.metrics or {})
    if result.checkpoint is None:
        raise RuntimeError(f"SFT run in {storage} ended without a checkpoint")
    model_dir = out / "model"
    with result.checkpoint.as_directory() as ckpt:
        ckpt = Path(ckpt)
        src = ckpt / ("merged" if (ckpt / "merged").is_dir() else "model")
        tmp = out / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        state = json.loads((ckpt / "history.json").read_text())
    history, step = state["history"], state["step"]
    fingerprint = {
        "base_model": str(base), "base_fingerprint": rkey["base"], "mode": sft.mode,
        "adapter": ({"r": sft.lora.r, "alpha": sft.lora.alpha, "target_modules": sft.lora.target_modules}
                    if sft.mode == "lora" and src.name == "model" else None),
        "merged": src.name == "merged", "dtype": sft.dtype, "quantization": sft.quantization,
        "config_hash": config_hash, "step": step,
        "data_hash": data_hash, "job": job_id,
    }
    fingerprint["id"] = json_hash(fingerprint)
    (tmp / "fingerprint.json").write_text(json.dumps(fingerprint, indent=2, sort_keys=True))
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (out / "result.json").write_text(json.dumps({"metrics": metrics, "resumed_from": state.get("resumed_from", 0),
                                                 "plan": report.metrics()}, indent=2, default=str))
    done.write_text(json.dumps({"job": job_id, "fingerprint": fingerprint["id"]}))
    log.info("SFT done: %d steps, final loss %.4f → %s", step, history[-1]["loss"] if history else float("nan"),
             model_dir)
    return _load_result(out)


def _load_result(out: Path, cached: bool = False) -> SFTResult:
    model_dir = out / "model"
    fp = json.loads((model_dir / "fingerprint.json").read_text())
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines() if x.strip()]
    res: dict[str, Any] = json.loads((out / "result.json").read_text())
    return SFTResult(model_dir, fp["step"], history, res.get("metrics", {}), fp,
                     res.get("resumed_from", 0), cached, res.get("plan", {}))
