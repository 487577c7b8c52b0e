"""Bootstrap the tiny built-in model: oracle corpus → tokenizer → tiny Llama trained by the SFT job.

    python -m jobs.bootstrap [--config configs/local.yaml] [--set sft.bootstrap.theorems=1000] [--force]

1. Generates ``sft.bootstrap.theorems`` built-in theorems (seed ``sft.bootstrap.seed``, plus the textbook
   set), leaves out every statement of the pool the iterate job proves (``theorems.*``: its practice
   theorems are new to the model), and replays the oracle's proofs of the TRAIN split through the
   built-in REPL: (state, tactic) pairs. Valid and test theorems are the contamination check's
   exclusion list.
2. Trains a byte-level BPE tokenizer on the examples and initialises a tiny Llama from scratch.
3. Trains it with the same Ray Train SFT job as every other fine-tune (full parameters).
4. Saves a Hugging Face folder at ``model.path`` (default runs/models/tiny) with fingerprint.json,
   and measures tactic validity on VALID-split states through the REPL (share of generated tactics
   the environment accepts AND that change the state, greedy and sampled; accepted no-ops such as
   ``skip`` are counted apart as ``*_accepted_noop``): ``bootstrap_eval.json`` beside the model.

Exit status 3: a training guard stopped it (too little data for the steps). Console: this job's lines;
Ray Train's go to ``<run.root>/logs/bootstrap.log``.

Cached: ``<model.path>/BOOTSTRAP_COMPLETE`` holds the settings' key; a second call with the same
settings does nothing. Work files go to ``<run.root>/bootstrap/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path

from raylib.config import config_from_args, job_parser
from raylib.logs import setup_logging

log = logging.getLogger("jobs.bootstrap")
MARKER = "BOOTSTRAP_COMPLETE"
VERSION = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = job_parser("jobs.bootstrap", __doc__, "sft.bootstrap.epochs=2")
    p.add_argument("--force", action="store_true", help="rebuild even when the model is complete")
    return p.parse_args(argv)


def bootstrap_theorems(cfg) -> list:
    """The bootstrap's corpus: ``sft.bootstrap.theorems`` generated theorems (seed ``sft.bootstrap.seed``) and the
    textbook set, less every statement of the built-in pool the run proves (``theorems.*``, all splits): the
    theorems expert iteration practises on are new to the model, as a prover's search statements are new
    to its supervised data."""
    from raylib.env.builtin.corpus import generate_theorems, normalized_statement, textbook_theorems
    from raylib.env.theorems import theorems_from_config

    b = cfg.sft.bootstrap
    theorems = generate_theorems(b.theorems, seed=b.seed) + textbook_theorems()
    section = excluded_pool(cfg)
    if section is None:
        return theorems
    pool = {normalized_statement(t.statement) for t in theorems_from_config(section)}
    return [t for t in theorems if normalized_statement(t.statement) not in pool]


def excluded_pool(cfg):
    """The theorem pool the bootstrap's corpus leaves out (all splits, no limit): ``theorems.*`` when it is a
    built-in set, None for a theorem file (its statements are not the built-in corpus's)."""
    if not cfg.theorems.source.startswith("builtin:"):
        return None
    return cfg.theorems.model_copy(update={"split": None, "limit": None})


def bootstrap_key(cfg) -> str:
    from raylib.hashing import json_hash

    pool = excluded_pool(cfg)
    blob = {"version": VERSION, "bootstrap": cfg.sft.bootstrap.model_dump(mode="json"),
            "pool": json_hash(pool.model_dump(mode="json")) if pool is not None else None,
            "guards": cfg.sft.guards.model_dump(mode="json"), "template": cfg.generation.template,
            "seed": cfg.sft.seed, "valid_fraction": cfg.sft.valid_fraction}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def bootstrap_sft(cfg, total_hint: int):
    """The SFT settings of the bootstrap: full parameters, the bootstrap's LR/epochs/batch."""
    from raylib.train.config import SFTSection

    b = cfg.sft.bootstrap
    every = max(50, total_hint // 4)
    raw = cfg.sft.model_dump(mode="json")
    raw.update(mode="full", save="adapter", lr=b.lr, epochs=b.epochs, max_steps=None, batch_size=b.batch_size,
               grad_accum=1, max_seq_len=b.max_seq_len, eval_every=every, checkpoint_every=every,
               keep_checkpoints=2, warmup_ratio=0.03, min_lr_ratio=0.05)
    raw["guards"] = dict(raw["guards"], probe_start_step=total_hint // 2)
    return SFTSection.model_validate(raw)


def _valid_states(theorems, k: int, seed: int):
    """Up to ``k`` (theorem, proofState id, Repl) triples from oracle replays of valid theorems."""
    from raylib.env.builtin.oracle import oracle_proof
    from raylib.env.builtin.server import Repl

    repl = Repl()
    states = []
    for thm in theorems:
        ans = repl.handle({"cmd": thm.command()})
        if not ans.get("sorries"):
            continue
        ps, goals = ans["sorries"][0]["proofState"], [ans["sorries"][0]["goal"]]
        for tac in oracle_proof(thm.statement):
            states.append((ps, "\n\n".join(goals)))
            step = repl.handle({"tactic": tac, "proofState": ps})
            if "message" in step or not step["goals"]:
                break
            ps, goals = step["proofState"], step["goals"]
    random.Random(seed).shuffle(states)
    return repl, states[:k]


def tactic_validity(model_dir: Path, theorems, k: int, seed: int = 0, samples: int = 4,
                    template: str | None = None, device: str = "auto") -> dict:
    """Share of generated tactics the built-in REPL accepts and that change the state, on valid-split states.

    Greedy and sampled; a tactic the REPL accepts but that leaves the goals as they were (``skip``) is a
    no-op, counted apart (``greedy_accepted_noop``, ``sampled_accepted_noop``), never as valid.

    ``template`` must be the prompt template the model was trained with (``generation.template``);
    ``device`` as in ``model.device``.
    """
    from raylib.models.hf import HFGenerator

    repl, states = _valid_states(theorems, k, seed)
    gen = HFGenerator(model_dir, device=device, template=template)
    t0 = time.perf_counter()
    texts = [s for _, s in states]
    greedy = gen.generate_raw(texts, 1, 0.0, 48)
    sampled = gen.generate_raw(texts, samples, 1.0, 48)
    return dict(score_tactics(repl, states, [row[0][0] for row in greedy], [[t for t, _ in row] for row in sampled]),
                sampled_per_state=samples, eval_s=round(time.perf_counter() - t0, 1))


def judge_tactic(repl, filt, ps: int, before: str, tactic: str) -> str:
    """"valid" (accepted and the goals changed, or the proof finished), "noop" (accepted, same goals),
    "error" (the REPL refused it) or "refused" (empty, or stopped by the tactic filter)."""
    if not tactic.strip() or not filt.check(tactic).ok:
        return "refused"
    ans = repl.handle({"tactic": tactic, "proofState": ps})
    if "message" in ans or "sorries" in ans:
        return "error"
    return "noop" if ans.get("goals") and "\n\n".join(ans["goals"]) == before else "valid"


def score_tactics(repl, states, greedy: list[str], sampled: list[list[str]]) -> dict:
    """Validity shares of greedy (one per state) and sampled tactics on ``(proofState, goals text)`` states.

    A tactic counts as valid only when it changes the state: an accepted no-op such as ``skip`` is not
    progress and is counted apart (``*_accepted_noop``)."""
    from raylib.env.filter import TacticFilter

    filt = TacticFilter()
    g = [judge_tactic(repl, filt, ps, text, tac) for (ps, text), tac in zip(states, greedy)]
    s = [judge_tactic(repl, filt, ps, text, t) for (ps, text), row in zip(states, sampled) for t in row]
    n_g, n_s = max(1, len(g)), max(1, len(s))
    return {"states": len(states), "greedy_valid": g.count("valid") / n_g, "sampled_valid": s.count("valid") / n_s,
            "greedy_accepted_noop": g.count("noop") / n_g, "sampled_accepted_noop": s.count("noop") / n_s,
            "distinct_sampled_per_state": sum(len(set(row)) for row in sampled) / max(1, len(sampled))}


def run(cfg, force: bool = False) -> dict:
    from raylib.data.sft import build_sft_examples, oracle_pairs, read_examples
    from raylib.models.tiny import init_tiny_model, save_model, train_tokenizer
    from raylib.rayutil import init_ray
    from raylib.train.schedule import plan_steps
    from raylib.train.sft import run_sft

    b = cfg.sft.bootstrap
    target = Path(cfg.model.path)
    key = bootstrap_key(cfg)
    marker = target / MARKER
    if not force and marker.is_file() and json.loads(marker.read_text()).get("key") == key:
        info = json.loads(marker.read_text())
        if "greedy_accepted_noop" not in info.get("validity", {}):  # made before no-ops were counted apart
            valid = [t for t in bootstrap_theorems(cfg) if t.split == "valid"]
            info["validity"] = tactic_validity(target, valid, b.eval_states, seed=b.seed,
                                               template=cfg.generation.template, device=cfg.model.device)
            for f in (target / "bootstrap_eval.json", marker):
                f.write_text(json.dumps(info, indent=2))
            log.info("bootstrap model at %s: tactic validity measured again (no-ops apart): %s", target,
                     json.dumps(info["validity"]))
        log.info("bootstrap model at %s is complete (key %s): nothing to do", target, key)
        return info
    t0 = time.perf_counter()
    work = Path(cfg.run.root) / "bootstrap" / key
    theorems = bootstrap_theorems(cfg)
    train = [t for t in theorems if t.split == "train"]
    held_out = [t for t in theorems if t.split != "train"]
    build = build_sft_examples(oracle_pairs(train), work / "examples", eval_theorems=held_out,
                               valid_fraction=cfg.sft.valid_fraction, seed=cfg.sft.seed,
                               template=cfg.generation.template)
    t_data = time.perf_counter() - t0
    base = work / "init"
    if not (base / "config.json").is_file():
        rows = read_examples(build.train_path).to_pylist()
        texts = [r["prompt"] + r["completion"] for r in random.Random(b.seed).sample(rows, min(len(rows), 8000))]
        tok = train_tokenizer(texts, vocab_size=b.vocab_size)
        model = init_tiny_model(tok, seed=b.seed, hidden_size=b.hidden_size, layers=b.layers, heads=b.heads)
        save_model(model, tok, base)
    total = plan_steps(build.counts["train"], cfg.sft.model_copy(
        update={"batch_size": b.batch_size, "epochs": b.epochs, "max_steps": None, "grad_accum": 1})).total_steps
    sft = bootstrap_sft(cfg, total)
    log.info("bootstrap: %d oracle steps from %d train theorems; training the tiny model, %d steps (log: %s)",
             build.counts["train"], len(train), total, Path(cfg.run.root) / "logs" / "bootstrap.log")
    init_ray(cfg, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    t1 = time.perf_counter()
    res = run_sft(sft, work / "examples", base, work / "sft", config_hash=key)
    t_train = time.perf_counter() - t1
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(res.model_dir, tmp)
    valid = [t for t in theorems if t.split == "valid"]
    t2 = time.perf_counter()
    figures = tactic_validity(tmp, valid, b.eval_states, seed=b.seed, template=cfg.generation.template,
                              device=cfg.model.device)
    info = {"key": key, "fingerprint": res.fingerprint.get("id"), "steps": res.steps,
            "final_loss": res.history[-1]["loss"] if res.history else None,
            "eval_loss": res.metrics.get("eval_loss"), "examples": build.counts,
            "validity": figures, "seconds": {"data": round(t_data, 1), "train": round(t_train, 1),
                                             "validity": round(time.perf_counter() - t2, 1),
                                             "total": round(time.perf_counter() - t0, 1)}}
    (tmp / "bootstrap_eval.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / MARKER).write_text(json.dumps(info, indent=2))
    log.info("bootstrap done in %.0f s: %s", info["seconds"]["total"], json.dumps(info["validity"]))
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging()
    cfg = config_from_args(args, log)
    if cfg is None:
        return 2
    from raylib.logs import quiet_console

    from raylib.train.guards import GuardStop

    quiet_console(Path(cfg.run.root) / "logs" / "bootstrap.log", log.name)  # Ray Train's lines go to the file
    try:
        run(cfg, force=args.force)
    except GuardStop as e:
        log.error("bootstrap stopped by the %s guard: %s (too little data to learn from: raise sft.bootstrap.theorems "
                  "or sft.bootstrap.epochs)", e.guard, e.reason)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
