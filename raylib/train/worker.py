"""The per-worker SFT loop run by ``TorchTrainer`` (see ``raylib.train.sft.run_sft``).

Checkpoint layout (``checkpoint_<step>``): ``model/`` (the adapter for LoRA, the whole model for full
training; tokenizer files beside it), ``merged/`` (final LoRA checkpoint with ``save: merged``),
``trainer_state.pt`` (optimizer, scheduler, RNG, data position) and ``history.json`` (step, per-step
history with the eval loss and probe shares at evaluated steps, the collapse guard's record).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from raylib.train.config import SFTSection
from raylib.train.guards import (
    CollapseGuard,
    GradNormGuard,
    GuardStop,
    analyze_probe,
    probe_generate,
)
from raylib.train.options import (
    EarlyStopping,
    SettingRefused,
    restore_rng,
    rng_state,
    runtime_refusal,
    train_autocast,
)
from raylib.train.sft import Collator, eval_loss, sft_step

log = logging.getLogger(__name__)


def _load_model(sft: SFTSection, base: str, ckpt_dir: Path | None, device):
    """The model to train, on ``device``. Every trained parameter is float32 whatever ``sft.dtype`` (the
    compute dtype, applied by autocast): ``mode: full`` loads the weights in float32 (master weights);
    ``mode: lora`` loads the frozen base in ``sft.dtype`` (or quantized, QLoRA) and keeps the adapter in
    float32. ``sft.gradient_checkpointing`` turns on non-reentrant activation checkpointing."""
    import torch
    from transformers import AutoModelForCausalLM

    ckpt_kwargs = {"gradient_checkpointing_kwargs": {"use_reentrant": False}}
    if sft.mode == "full":
        src = ckpt_dir / "model" if ckpt_dir else Path(base)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).to(device)
        if sft.gradient_checkpointing:
            model.gradient_checkpointing_enable(**ckpt_kwargs)
        return model
    from peft import LoraConfig, PeftModel, get_peft_model

    if sft.quantization is not None:
        from peft import prepare_model_for_kbit_training

        from raylib.models.loading import load_quantized_causal_lm

        model = load_quantized_causal_lm(base, sft.quantization, sft.dtype, device)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=sft.gradient_checkpointing,
                                                **ckpt_kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, sft.dtype)).to(device)
        if sft.gradient_checkpointing:
            model.gradient_checkpointing_enable(**ckpt_kwargs)
    if ckpt_dir:
        model = PeftModel.from_pretrained(model, ckpt_dir / "model", is_trainable=True)
    else:
        lcfg = LoraConfig(r=sft.lora.r, lora_alpha=sft.lora.alpha, lora_dropout=sft.lora.dropout,
                          target_modules=list(sft.lora.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg)
    for prm in model.parameters():  # the adapter in float32 over a low-precision base (master weights)
        if prm.requires_grad and prm.dtype != torch.float32:
            prm.data = prm.data.float()
    return model


def _probe_prompts(rows: list[dict], k: int) -> list[str]:
    """Up to ``k`` distinct held-out prompts, round-robin over the first word of their tactics."""
    groups: dict[str, list[str]] = {}
    seen = set()
    for r in rows:
        if r["prompt"] in seen:
            continue
        seen.add(r["prompt"])
        groups.setdefault((r["completion"].split() or [""])[0], []).append(r["prompt"])
    out: list[str] = []
    while len(out) < k and any(groups.values()):
        for g in list(groups.values()):
            if g and len(out) < k:
                out.append(g.pop(0))
    return out


def _broadcast(obj, world: int):
    """Rank 0's value on every rank (guard decisions made on rank 0 only)."""
    if world <= 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sft_worker_loop(cfg: dict) -> dict | None:
    """Train; a guard stop ends the loop normally and returns its metrics (reported too), else None.

    Guard decisions are the same on every rank, so every rank returns; the driver reads rank 0's value
    (``Result.return_value``) and raises GuardStop. Raising instead would make it a worker failure that
    ``FailureConfig`` retries, repeating the same deterministic stop.
    """
    import ray.train

    try:
        _train(cfg)
    except SettingRefused as e:  # before any work; deterministic, so no retry either
        log.error("rank %d: %s", ray.train.get_context().get_world_rank(), e)
        ray.train.report({"refused": str(e)})
        return {"refused": str(e)}
    except GuardStop as e:
        metrics = e.as_metrics()
        log.error("rank %d: %s", ray.train.get_context().get_world_rank(), e)
        ray.train.report(metrics)
        return metrics
    return None


def _train(cfg: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch
    from transformers import AutoTokenizer

    from raylib.train.schedule import make_scheduler

    sft = SFTSection.model_validate(cfg["sft"])
    refusal = runtime_refusal(sft)
    if refusal:
        raise SettingRefused(refusal)
    total = int(cfg["total_steps"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    from raylib.train.devices import worker_device

    device = worker_device()
    torch.manual_seed(sft.seed)
    tokenizer = AutoTokenizer.from_pretrained(cfg["base"])
    collate = Collator(tokenizer, sft.max_seq_len)

    ckpt = ray.train.get_checkpoint()
    state, history, step, resumed_from, meta = None, [], 0, 0, {}
    if ckpt:
        with ckpt.as_directory() as d:
            d = Path(d)
            model = _load_model(sft, cfg["base"], d, device)
            state = torch.load(d / "trainer_state.pt", map_location="cpu", weights_only=False)
            meta = json.loads((d / "history.json").read_text())
        history, step = meta["history"], meta["step"]
        resumed_from = step
        log.info("rank %d: resuming from checkpoint at step %d", rank, step)
    else:
        model = _load_model(sft, cfg["base"], None, device)
    model.train()
    raw = model
    model = ray.train.torch.prepare_model(model) if world > 1 else model
    params = [p for p in raw.parameters() if p.requires_grad]
    if not params:
        raise GuardStop("grad_norm", "no trainable parameters")
    optim = torch.optim.AdamW(params, lr=sft.lr, weight_decay=sft.weight_decay)
    sched = make_scheduler(optim, total, sft)
    epoch, micro_done = 0, 0
    if state:
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        restore_rng(state)
        epoch, micro_done = state["epoch"], state["micro_in_epoch"]

    grad_guard = GradNormGuard(sft.guards.grad_patience, sft.guards.grad_zero_eps)
    collapse = CollapseGuard(sft.guards)
    collapse.load_state(meta.get("collapse"))
    early = EarlyStopping(sft.early_stopping.patience, sft.early_stopping.min_delta) if sft.early_stopping else None
    if early:
        early.load_state(meta.get("early_stopping"))
    amp = sft.dtype if sft.dtype != "float32" else None  # autocast compute dtype over float32 trained weights
    valid_rows = cfg["valid_rows"]
    eval_batches = [collate({"prompt": [r["prompt"] for r in valid_rows[i:i + sft.batch_size]],
                             "completion": [r["completion"] for r in valid_rows[i:i + sft.batch_size]]})
                    for i in range(0, min(len(valid_rows), sft.eval_examples), sft.batch_size)]
    probe_prompts = _probe_prompts(valid_rows, sft.guards.probe_states)
    shard = ray.train.get_dataset_shard("train")
    no_sync = getattr(model, "no_sync", None) if world > 1 else None

    def evaluate(at: int, baseline: bool = False) -> dict:
        m: dict = {}
        if rank == 0:
            if eval_batches:
                m["eval_loss"] = eval_loss(raw, [{k: v.to(device) for k, v in b.items()} for b in eval_batches],
                                           amp)
            if probe_prompts:
                with train_autocast(sft.dtype, torch.device(device).type):
                    greedy, sampled = probe_generate(raw, tokenizer, probe_prompts, sft.guards.probe_samples,
                                                     sft.guards.probe_temperature, sft.guards.probe_max_tokens,
                                                     seed=sft.seed + at)
                rep = analyze_probe(greedy, sampled)
                if baseline:
                    m.update({f"base_{k}": v for k, v in rep.metrics().items()})
                else:
                    try:
                        m.update(collapse.check(rep, at))
                    except GuardStop as e:
                        m.update(e.as_metrics())
        m = _broadcast(m, world)
        if m.get("stop_guard"):
            raise GuardStop.from_metrics(m)  # on every rank; sft_worker_loop returns it to the driver
        return m

    def save(at: int, metrics: dict, final: bool) -> None:
        name = f"checkpoint_{at:06d}"
        collapse.note_checkpoint(at, name)
        with tempfile.TemporaryDirectory() as tmp:
            ck = None
            if rank == 0:
                t = Path(tmp)
                raw.save_pretrained(t / "model")
                tokenizer.save_pretrained(t / "model")
                torch.save({"optimizer": optim.state_dict(), "scheduler": sched.state_dict(), **rng_state(),
                            "epoch": epoch, "micro_in_epoch": micro_done},
                           t / "trainer_state.pt")
                (t / "history.json").write_text(json.dumps({"step": at, "history": history,
                                                            "resumed_from": resumed_from,
                                                            "collapse": collapse.state(),
                                                            "early_stopping": early.state() if early else None}))
                if final and sft.mode == "lora" and sft.save == "merged":
                    merged = raw.merge_and_unload()
                    merged.save_pretrained(t / "merged")
                    tokenizer.save_pretrained(t / "merged")
                ck = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ck, checkpoint_dir_name=name)

    base_metrics = dict(cfg["plan"], resumed_from=resumed_from, dataset_size=cfg["dataset_size"])
    if step == 0 and sft.mode == "lora" and probe_prompts:
        pre = evaluate(0, baseline=True)  # the base model's probe: a collapse later can be told from a degenerate start
        log.info("rank %d: probe of the base model: %s", rank, pre)
    micro: list[dict] = []
    while step < total:
        skip = micro_done
        batches = shard.iter_batches(batch_size=sft.batch_size, batch_format="numpy",
                                     local_shuffle_buffer_size=sft.shuffle_buffer or None,
                                     local_shuffle_seed=sft.seed + epoch if sft.shuffle_buffer else None)
        seen_batches = 0
        for batch in batches:
            seen_batches += 1
            if skip:
                skip -= 1
                continue
            micro.append({k: v.to(device) for k, v in collate(batch).items()})
            micro_done += 1
            if len(micro) < sft.grad_accum:
                continue
            loss, tokens, norm = sft_step(model, micro, params, sft.max_grad_norm, no_sync, amp)
            micro = []
            lr = optim.param_groups[0]["lr"]
            if math.isfinite(norm):
                optim.step()
            optim.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            history.append({"step": step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens,
                            "epoch": epoch})
            metrics = dict(base_metrics, step=step, loss=loss, lr=lr, grad_norm=norm, epoch=epoch,
                           truncated=collate.truncated)
            metrics.update(grad_guard.update(step, norm))  # GuardStop: same norm, same decision on every rank
            final = step >= total
            evaluated = final or bool(sft.eval_every and step % sft.eval_every == 0)
            if evaluated:
                found = evaluate(step)
                metrics.update(found)
                history[-1].update({k: v for k, v in found.items() if k == "eval_loss" or k.startswith("probe_")})
                if early and not final:
                    metrics.update(early.update(step, found.get("eval_loss")))  # same on every rank (broadcast)
                    if early.stopped:
                        log.info("rank %d: %s", rank, metrics["stop_reason"])
                        final = True  # the last checkpoint (and merged model) at this step
            if final or (sft.checkpoint_every and step % sft.checkpoint_every == 0):
                save(step, metrics, final)
                if cfg.get("interrupt_after_step") == step:
                    raise RuntimeError(f"interrupted after the checkpoint of step {step} (test hook)")
            elif evaluated or step % sft.log_every == 0:
                ray.train.report(metrics)
            if final:
                break
        else:
            if not seen_batches:
                raise RuntimeError(f"rank {rank}: the training shard is empty")
            epoch, micro_done = epoch + 1, 0
            continue
        break
