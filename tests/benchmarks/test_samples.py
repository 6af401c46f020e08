"""benchmarks.samples: a run that lost more than 1 % of its samples, overall or in any part, fails."""

from benchmarks.samples import loss_problem, lost_pct


def test_the_worst_part_decides_not_the_total():
    summary = {
        "samples_expected": 3030,
        "samples_measured": 3027,
        "samples_by_part": {
            "render": {"expected": 3000, "measured": 3000},
            "mouth": {"expected": 30, "measured": 27},
        },
    }
    assert lost_pct(summary) == 0.1
    problem = loss_problem(summary)
    assert problem is not None and "mouth" in problem and "10 %" in problem and "render" not in problem


def test_counts_within_one_percent_pass_and_a_suite_without_counts_is_not_judged():
    assert loss_problem({"samples_expected": 1000, "samples_measured": 990}) is None
    assert loss_problem({"samples_expected": 1000, "samples_measured": 989}) is not None
    assert loss_problem({"frames": 10}) is None
    assert loss_problem({"samples_expected": 0, "samples_measured": 0}) is not None  # nothing measured
