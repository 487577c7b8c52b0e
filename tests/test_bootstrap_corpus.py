"""The bootstrap's corpus leaves out the theorem pool expert iteration proves (``theorems.*``), by
statement, so the iterate job's train theorems are new to the bootstrapped model."""

from jobs.bootstrap import bootstrap_key, bootstrap_theorems
from raylib.config import load_config
from raylib.env.builtin.corpus import generate_theorems, normalized_statement, textbook_theorems
from raylib.env.theorems import theorems_from_config


def _cfg(*extra):
    return load_config(None, ["theorems.n=200", "sft.bootstrap.theorems=200", *extra])


def _statements(theorems) -> set[str]:
    return {normalized_statement(t.statement) for t in theorems}


def test_corpus_leaves_out_every_split_of_the_iteration_pool():
    cfg = _cfg()
    pool = _statements(theorems_from_config(cfg.theorems.model_copy(update={"split": None})))
    corpus = bootstrap_theorems(cfg)
    assert len(corpus) > 150 and not pool & _statements(corpus)
    # the pool's own seed: every generated theorem is one of the pool's, only the textbook set is left
    same = bootstrap_theorems(_cfg("sft.bootstrap.seed=0"))
    assert same and all(not t.name.startswith("gen_") for t in same)


def test_bootstrap_key_follows_the_pool_not_its_split():
    assert bootstrap_key(_cfg()) != bootstrap_key(_cfg("theorems.seed=5"))
    assert bootstrap_key(_cfg()) == bootstrap_key(_cfg("theorems.split=test", "theorems.limit=7"))
    # a theorem file is not the built-in corpus's: nothing is left out, and its settings leave the key alone
    files = [_cfg(f"theorems.source=/data/{name}.jsonl") for name in ("a", "b")]
    assert bootstrap_key(files[0]) == bootstrap_key(files[1]) != bootstrap_key(_cfg())
    assert [t.name for t in bootstrap_theorems(files[0])] == \
        [t.name for t in generate_theorems(200, seed=1) + textbook_theorems()]
