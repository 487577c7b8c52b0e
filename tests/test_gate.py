"""The promotion gate as a pure function: each check refuses on its own, with its figures before/after."""

import pytest

from raylib.eval.gate import Thresholds, decide

T = Thresholds(tolerance=0.02, max_centroid_drop=0.5, max_probe_drop=0.1)
CURRENT = {"proof_rate": 0.40, "separation": {"centroid_l2": 6.40, "probe_accuracy": 0.83}}


def cand(rate=0.42, passed=True, centroid=6.0, acc=0.82):
    return {"proof_rate": rate, "generation_probe": {"passed": passed, "reason": None if passed else "90% empty"},
            "separation": {"centroid_l2": centroid, "probe_accuracy": acc}}


def failed(d):
    return [c.name for c in d.checks if not c.passed]


def test_a_candidate_passing_every_check_is_promoted():
    d = decide(CURRENT, cand(), T)
    assert d.promote and failed(d) == [] and d.reason.startswith("promoted")


def test_within_tolerance_is_promoted_past_it_is_not():
    assert decide(CURRENT, cand(rate=0.38), T).promote  # fell by exactly the tolerance
    d = decide(CURRENT, cand(rate=0.37), T)
    assert not d.promote and failed(d) == ["proof_rate"]
    c = d.checks[0]
    assert (c.before, c.after, c.limit) == (0.40, 0.37, 0.38)
    assert "0.400 -> 0.370" in d.reason and "kept the current model" in d.reason


def test_generation_probe_failure_refuses():
    d = decide(CURRENT, cand(passed=False), T)
    assert not d.promote and failed(d) == ["generation_probe"] and "90% empty" in d.reason


def test_separation_collapse_refuses_the_field_case():
    """The case the separation guard is for: centroid L2 6.40 -> 1.33, probe 0.83 -> 0.68, rate 34% -> 30%."""
    d = decide({"proof_rate": 0.34, "separation": {"centroid_l2": 6.40, "probe_accuracy": 0.83}},
               cand(rate=0.30, centroid=1.33, acc=0.68), Thresholds(tolerance=0.05))
    assert not d.promote
    assert failed(d) == ["separation_centroid", "separation_probe_accuracy"]
    assert "6.400 -> 1.330" in d.reason and "0.830 -> 0.680" in d.reason


@pytest.mark.parametrize("missing", ["proof_rate", "generation_probe", "separation"])
def test_unmeasured_figures_never_promote(missing):
    c = cand()
    c.pop(missing)
    d = decide(CURRENT, c, T)
    assert not d.promote and "not measured" in d.reason


def test_separation_can_be_made_optional():
    c = cand()
    c.pop("separation")
    assert decide(CURRENT, c, Thresholds(require_separation=False)).promote


def test_decision_json_names_every_check():
    j = decide(CURRENT, cand(rate=0.1), T).to_json()
    assert j["promote"] is False
    assert [c["name"] for c in j["checks"]] == ["proof_rate", "generation_probe", "separation_centroid",
                                                "separation_probe_accuracy"]
    assert all({"before", "after", "limit", "detail", "passed"} <= set(c) for c in j["checks"])
