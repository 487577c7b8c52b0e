"""SFT examples: (state, tactic) pairs → {prompt, completion, theorem, source} parquet.

Sources of pairs:

* ``trajectory_pairs``: proof-path steps of searched trees (parent state, tactic that led to the child);
* ``oracle_pairs``: the built-in oracle's scripts replayed through the built-in REPL (base pairs);
* ``jsonl_pairs``: pairs extracted elsewhere (LeanDojo traced repos), one ``{state, tactic, theorem}``
  object a line (``statement`` optional, used by the contamination check).

``build_sft_examples`` drops empty, give-up/denied (the tactic filter) and duplicate pairs, and the
steps the search's probe tactics made (unless ``probe_steps``), and counts each; refuses
(``ContaminationError``) any pair whose theorem belongs to the evaluation theorems by name or by
normalized statement (``normalize_statement``; pairs without a statement are checked by name only);
splits by theorem into train/valid and writes both files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raylib.data.trajectory import atomic_write_table, read_trajectories, trajectory_files
from raylib.env.filter import TacticFilter
from raylib.env.theorems import Theorem

log = logging.getLogger(__name__)

__all__ = [
    "EXAMPLE_SCHEMA",
    "ContaminationError",
    "Pair",
    "SFTBuild",
    "build_sft_examples",
    "check_contamination",
    "jsonl_pairs",
    "normalize_statement",
    "oracle_pairs",
    "read_examples",
    "sft_split",
    "trajectory_pairs",
]

EXAMPLE_SCHEMA = pa.schema([("prompt", pa.string()), ("completion", pa.string()),
                            ("theorem", pa.string()), ("source", pa.string())])


@dataclass(frozen=True)
class Pair:
    theorem: str
    state: str
    tactic: str
    source: str
    statement: str | None = None
    probe: bool = False        # the step's tactic came from the search's probe list, not the generator


class ContaminationError(RuntimeError):
    """Evaluation theorems reached the training data; the message names them."""


@dataclass
class SFTBuild:
    train_path: Path
    valid_path: Path
    counts: dict[str, int] = field(default_factory=dict)
    data_hash: str = ""
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)  # input/empty/sorry/denied/duplicate/kept


# -- sources ------------------------------------------------------------------------------------

def trajectory_pairs(paths) -> Iterator[Pair]:
    """Proof-path steps of trajectory files: (state of the parent, tactic of the proof-path child).

    ``paths``: a folder (its ``*.parquet``), a file or a list of files. Each file holds one search tree
    (one theorem of one run and iteration); parents are looked up inside the same file and, within it,
    by (run, iteration, theorem, node_id), so trees of the same theorem from different iterations or
    runs never lend each other states.
    """
    for f in trajectory_files(paths):
        cols = read_trajectories(f).select(["run", "iteration", "theorem", "statement", "node_id", "parent_id",
                                            "state", "tactic", "on_proof_path", "probe"]).to_pylist()
        states = {(r["run"], r["iteration"], r["theorem"], r["node_id"]): r["state"] for r in cols}
        for r in cols:
            if not r["on_proof_path"] or r["parent_id"] is None:
                continue
            parent = states.get((r["run"], r["iteration"], r["theorem"], r["parent_id"]))
            if parent is None:
                log.warning("trajectory of %s (%s): node %s has unknown parent %s", r["theorem"], f,
                            r["node_id"], r["parent_id"])
                continue
            yield Pair(r["theorem"], parent, r["tactic"] or "", "trajectory", r["statement"], bool(r["probe"]))


def oracle_pairs(theorems: Iterable[Theorem], failures: Counter | None = None) -> Iterator[Pair]:
    """Replay the built-in oracle's proof of each theorem through ``Repl``; one pair per tactic line.

    A theorem whose replay fails is skipped and counted in ``failures['replay_error']``.
    """
    from raylib.env.builtin.oracle import oracle_proof
    from raylib.env.builtin.server import Repl

    repl = Repl()
    for thm in theorems:
        pairs = _replay(repl, thm, oracle_proof)
        if pairs is None:
            if failures is not None:
                failures["replay_error"] += 1
            log.warning("oracle replay of %s failed; theorem skipped", thm.name)
            continue
        if len(repl.states) > 50_000:  # a Repl keeps every proof state: start afresh now and then
            repl = Repl()
        yield from pairs


def _replay(repl, thm: Theorem, prover) -> list[Pair] | None:
    try:
        lines = prover(thm.statement)
    except ValueError as e:
        log.warning("oracle cannot prove %s: %s", thm.name, e)
        return None
    ans = repl.handle({"cmd": thm.command()})
    sorries = ans.get("sorries") or []
    if not lines or not sorries:
        return None
    ps, goals = sorries[0]["proofState"], [sorries[0]["goal"]]
    pairs, step = [], {}
    for tac in lines:
        step = repl.handle({"tactic": tac, "proofState": ps})
        if "message" in step:
            return None
        pairs.append(Pair(thm.name, "\n\n".join(goals), tac, "oracle", thm.statement))
        ps, goals = step["proofState"], step["goals"]
    return pairs if step.get("proofStatus") == "Completed" else None


def jsonl_pairs(path: str | Path, source: str = "leandojo") -> Iterator[Pair]:
    """Pairs from a JSONL file of ``{state, tactic, theorem[, statement]}`` objects (LeanDojo extraction)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pairs file not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            missing = [k for k in ("state", "tactic", "theorem") if not isinstance(row.get(k), str)]
            if missing:
                raise ValueError(f"{path}:{lineno}: missing string fields {missing}; expected {{state, tactic, theorem}}")
            yield Pair(row["theorem"], row["state"], row["tactic"], source, row.get("statement"))


# -- contamination ------------------------------------------------------------------------------

_DECL_NAME = re.compile(r"^(?:theorem|lemma)\s+[^\s({\[:]+")
_MODIFIERS = re.compile(r"^(?:private|protected|noncomputable|nonrec)\s+")
_OPEN, _CLOSE = "([{⟨", ")]}⟩"


def _skip_block(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the block opened at ``text[i]`` (nested ``open_``/``close``); len(text) if unclosed."""
    depth = 0
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif text.startswith(close, i):
            depth -= 1
            i += len(close)
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _strip_preamble(text: str) -> str:
    """Drop leading comments (``/- -/``, ``/-- -/``, ``--``), attributes ``@[...]`` and modifiers."""
    while True:
        text = text.lstrip()
        if text.startswith("/-"):
            text = text[_skip_block(text, 0, "/-", "-/"):]
        elif text.startswith("--"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
        elif text.startswith("@["):
            text = text[_skip_block(text, 1, "[", "]"):]
        elif _MODIFIERS.match(text):
            text = _MODIFIERS.sub("", text, count=1)
        else:
            return text


def _cut_proof(text: str) -> str:
    """The text before the first ``:=`` outside brackets (a binder's default value stays)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and text.startswith(":=", i):
            return text[:i]
    return text


def normalize_statement(statement: str) -> str:
    """A statement reduced for comparison: leading doc comments, attributes and modifiers dropped, the
    proof cut at the first top-level ``:=``, ``theorem``/``lemma``/``example`` and the declaration name
    replaced by ``theorem _``, whitespace normalized."""
    text = _cut_proof(_strip_preamble(statement))
    text = " ".join(text.split())
    if re.match(r"^example\b", text):
        text = "theorem _ " + text[len("example"):]
    else:
        text = _DECL_NAME.sub("theorem _ ", text, count=1)
    return " ".join(text.split())


def check_contamination(pairs: Iterable[Pair], eval_theorems: Iterable[Theorem]) -> None:
    """Raise ContaminationError naming every evaluation theorem found in ``pairs``.

    A pair matches by theorem name, or by statement (``normalize_statement`` of both sides). Pairs that
    carry no statement (trajectories or JSONL rows without one) can only be checked by name: their
    theorems are counted and logged as such.
    """
    by_name = {t.name: t for t in eval_theorems}
    by_stmt = {normalize_statement(t.statement): t.name for t in by_name.values()}
    hits: dict[str, str] = {}
    name_only: set[str] = set()
    for p in pairs:
        if p.theorem in by_name:
            hits.setdefault(p.theorem, f"{p.theorem} (same name, source {p.source})")
        if p.statement:
            other = by_stmt.get(normalize_statement(p.statement))
            if other is not None:
                hits.setdefault(other, f"{other} (same statement as training theorem {p.theorem}, source {p.source})")
        else:
            name_only.add(p.theorem)
    if name_only and by_name:
        log.warning("contamination check: %d training theorems carry no statement and were checked by name "
                    "only (e.g. %s)", len(name_only), ", ".join(sorted(name_only)[:5]))
    if hits:
        names = sorted(hits)
        shown = "; ".join(hits[n] for n in names[:20])
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        raise ContaminationError(f"{len(names)} evaluation theorems reached the training data: {shown}{more}")


def sft_split(theorem: str, valid_fraction: float, seed: int = 0) -> str:
    """``train`` or ``valid`` for a theorem, fixed by a hash of its name and the seed."""
    digest = hashlib.sha256(f"{seed}:{theorem}".encode()).digest()
    return "valid" if int.from_bytes(digest[:8], "big") / 2.0 ** 64 < valid_fraction else "train"


# -- building -----------------------------------------------------------------------------------

def build_sft_examples(pairs: Iterable[Pair], out_dir: str | Path, eval_theorems: Sequence[Theorem] = (),
                       valid_fraction: float = 0.02, seed: int = 0, template: str | None = None,
                       tactic_filter: TacticFilter | None = None, probe_steps: bool = False) -> SFTBuild:
    """Filter (counted), check contamination, split by theorem and write ``train.parquet``/``valid.parquet``.

    A proof step whose tactic came from the search's probe list (``Pair.probe``) is the search's, not the
    model's: it is counted under ``probe`` and left out unless ``probe_steps``. The search tries the probes
    at every node anyway, and a model whose tokenizer never saw them would spend its update spelling them.

    Also writes ``stats.json`` (the counts and the data hash). Raises ContaminationError before
    writing anything when an evaluation theorem is among the pairs.
    """
    from raylib.models.prompt import format_example

    pairs = list(pairs)
    check_contamination(pairs, eval_theorems)
    filt = tactic_filter or TacticFilter()
    counts: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    rows: dict[str, list[dict]] = {"train": [], "valid": []}
    by_source: dict[str, Counter] = {}
    for p in pairs:
        counts["input"] += 1
        counts[f"input_{p.source}"] += 1
        src = by_source.setdefault(p.source, Counter(input=0, empty=0, sorry=0, denied=0, probe=0, duplicate=0,
                                                     kept=0))
        src["input"] += 1
        state, tactic = p.state.strip("\n"), p.tactic.strip()
        if not state.strip() or not tactic:
            counts["empty"] += 1
            src["empty"] += 1
            continue
        verdict = filt.check(tactic)
        if not verdict.ok:
            counts["sorry" if verdict.kind == "sorry" else "denied"] += 1
            src["sorry" if verdict.kind == "sorry" else "denied"] += 1
            continue
        if p.probe and not probe_steps:
            counts["probe"] += 1
            src["probe"] += 1
            continue
        key = (state, tactic)
        if key in seen:
            counts["duplicate"] += 1
            src["duplicate"] += 1
            continue
        src["kept"] += 1
        seen.add(key)
        prompt, completion = format_example(state, tactic, template)
        split = sft_split(p.theorem, valid_fraction, seed)
        rows[split].append({"prompt": prompt, "completion": completion, "theorem": p.theorem, "source": p.source})
    for k in ("empty", "sorry", "denied", "probe", "duplicate"):
        counts.setdefault(k, 0)
    counts["kept"] = len(rows["train"]) + len(rows["valid"])
    if not rows["train"]:
        hint = (f" ({counts['probe']} steps made by the search's probe tactics were left out; probe_steps=True, "
                "iterate.sft_probe_steps in the iterate job, trains on them)" if counts["probe"] else "")
        raise ValueError(f"no training examples left after filtering: {dict(counts)}{hint}")
    random.Random(seed).shuffle(rows["train"])
    out = Path(out_dir)
    digest = hashlib.sha256()
    paths = {}
    for split, items in rows.items():
        counts[split] = len(items)
        counts[f"{split}_theorems"] = len({r["theorem"] for r in items})
        table = pa.Table.from_pylist(items, schema=EXAMPLE_SCHEMA)
        paths[split] = atomic_write_table(table, out / f"{split}.parquet")
        for r in items:
            digest.update(f"{split}\0{r['prompt']}\0{r['completion']}\0".encode())
    build = SFTBuild(paths["train"], paths["valid"], dict(counts), digest.hexdigest()[:16],
                     {k: dict(v) for k, v in by_source.items()})
    (out / "stats.json").write_text(json.dumps({"counts": build.counts, "data_hash": build.data_hash,
                                                "by_source": build.by_source}, indent=2, sort_keys=True))
    log.info("SFT examples: %s (data hash %s) → %s", build.counts, build.data_hash, out)
    return build


def read_examples(path: str | Path) -> pa.Table:
    """Read an examples parquet, checking its columns; the error names the file and what is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: examples file not found")
    table = pq.read_table(path)
    missing = [n for n in EXAMPLE_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing example columns {missing} (has {table.column_names})")
    return table.select(EXAMPLE_SCHEMA.names)
