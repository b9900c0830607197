"""The lessons' check runner: a 2D lesson's seeds trained as one ensemble judge as their solo runs do, the
checks' training requests are discovered round by round, and lessons spread over processes come back whole
and in order."""
from __future__ import annotations

import dataclasses

import pytest

from ganlab import check_runner, checks, cli
from ganlab.check_runner import check_all, train_members
from ganlab.config import get_preset
from ganlab.lesson_book import get_lesson


def test_an_ensembled_lesson_judges_like_its_solo_runs():
    lesson = get_lesson("strong-d")
    together = check_runner._run_seeds(lesson, [0, 1, 2], 40, "cpu", ensembles=True)
    alone = check_runner._run_seeds(lesson, [0, 1, 2], 40, "cpu", ensembles=False)
    assert [r["seed"] for r in together] == [0, 1, 2]
    for a, b in zip(together, alone):
        for key in ("d_real_tail", "d_fake_tail"):
            assert a["measures"][key] == pytest.approx(b["measures"][key], rel=1e-3, abs=1e-4), key
        assert a["appeared"] == b["appeared"]
    assert len({r["seconds"] for r in together}) == 1     # each seed's share of one ensemble's wall time


def test_a_check_that_trains_twice_is_asked_again_until_all_is_trained():
    lesson = get_lesson("saturating")   # trains the minimax run, then the non-saturating one
    asked = []
    real_train_members = check_runner.train_members

    def counting(cfg, seeds, device, every=0):
        asked.append((cfg.loss, tuple(seeds)))
        return real_train_members(cfg, seeds, device, every)

    check_runner.train_members = counting
    try:
        together = check_runner._run_seeds(lesson, [0, 1], 30, "cpu", ensembles=True)
    finally:
        check_runner.train_members = real_train_members
    assert asked == [("minimax", (0, 1)), ("nonsaturating", (0, 1))]   # two rounds, both seeds at once
    alone = check_runner._run_seeds(lesson, [0, 1], 30, "cpu", ensembles=False)
    for a, b in zip(together, alone):
        assert a["measures"]["ratio"] == pytest.approx(b["measures"]["ratio"], rel=1e-3)
    assert checks.train.__module__ == "ganlab.checks" and checks._TRAIN is checks.solo_train   # routing undone


def test_members_come_back_as_trainers_with_their_own_histories():
    cfg = get_preset("ring8").config(device="cpu").replace(steps=20, stats_every=5)
    got = train_members(cfg, [3, 4], "cpu")
    assert set(got) == {3, 4}
    (t3, h3, _), (t4, h4, _) = got[3], got[4]
    assert t3.step == 20 and t3.cfg.seed == 3 and t4.cfg.seed == 4
    assert list(h3["step"]) == [5, 10, 15, 20] and (h3["loss_d"] != h4["loss_d"]).any()
    assert (t3.generate(t3.fixed_z) != t4.generate(t4.fixed_z)).any()


def test_a_check_that_looks_during_training_sees_each_member_when_a_solo_run_would(monkeypatch):
    def looking(check, cfg, device):
        seen = []

        def look(t):
            return t.step, round(float(t.generate(t.fixed_z).mean()), 4)
        trainer, _ = checks.train(cfg, device, 10, lambda t: seen.append(look(t)))
        return True, "", {"seen": seen, "end": look(trainer)}

    monkeypatch.setitem(checks.CHECKS, "looking", looking)
    base = get_lesson("strong-d")
    lesson = dataclasses.replace(base, check=dataclasses.replace(base.check, kind="looking"))
    together = check_runner._run_seeds(lesson, [0, 1], 35, "cpu", ensembles=True)
    alone = check_runner._run_seeds(lesson, [0, 1], 35, "cpu", ensembles=False)
    for a, b in zip(together, alone):
        assert [s for s, _ in a["measures"]["seen"]] == [s for s, _ in b["measures"]["seen"]] == [10, 20, 30]
        for (_, x), (_, y) in zip(a["measures"]["seen"] + [a["measures"]["end"]],
                                  b["measures"]["seen"] + [b["measures"]["end"]]):
            assert x == pytest.approx(y, abs=2e-3)
    assert together[0]["measures"]["seen"] != together[1]["measures"]["seen"]   # each seed its own member


def test_lessons_in_two_processes_come_back_whole_and_in_order():
    lessons = [get_lesson("strong-d"), get_lesson("mode-collapse")]
    here = check_all(lessons, seeds=2, steps=20, device="cpu", jobs=1)
    apart = check_all(lessons, seeds=2, steps=20, device="cpu", jobs=2)
    assert [r["id"] for r in apart] == ["strong-d", "mode-collapse"]
    for a, b in zip(here, apart):
        assert [r["seed"] for r in b["runs"]] == [0, 1]
        assert [r["value"] for r in a["runs"]] == [r["value"] for r in b["runs"]]   # one thread each: identical


def test_bad_jobs_exit_2_with_one_line(capsys):
    assert cli.main(["lessons", "--check", "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--jobs: must be between 1 and 64" in err and len(err.splitlines()) == 1


def test_a_task_whose_process_fails_counts_its_seeds_as_not_shown(capfd):
    lesson_id, runs = check_runner._task("no-such-lesson", [0, 1], 5, "cpu", True)   # the child exits 1
    assert lesson_id == "no-such-lesson" and [r["seed"] for r in runs] == [0, 1]
    assert all(not r["appeared"] and "check process failed (exit status 1" in r["value"] for r in runs)
    assert "no-such-lesson" in capfd.readouterr().err   # the child's own error reaches the log


def test_the_vanishing_check_trains_only_up_to_its_window_when_nothing_depends_on_the_length():
    lesson = get_lesson("saturating")
    cfg = lesson.config(seed=0, steps=80)
    assert cfg.lr_decay == "none" and cfg.instance_noise == 0
    check = dataclasses.replace(lesson.check, params={**lesson.check.params, "window": [10, 30]})
    _, _, measures = checks.CHECKS["vanishing"](check, cfg, "cpu")
    assert measures["trained_steps"] == 30
    _, full = checks.solo_train(cfg, "cpu")                       # all 80 steps: the same numbers in the window
    assert measures["grad_g_saturating"] == checks._window_median(full, "grad_g", 10, 30)
    _, _, decayed = checks.CHECKS["vanishing"](check, cfg.replace(lr_decay="linear"), "cpu")
    assert decayed["trained_steps"] == 80                         # the lr depends on the length: all steps


def test_tasks_start_largest_first_by_the_last_full_checks_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path))
    a, b, c = get_lesson("strong-d"), get_lesson("dcgan"), get_lesson("oscillation")
    tasks = [(a, list(range(10))), (b, [0]), (c, [0])]
    assert check_runner.load_timings() == {}
    assert [t[0].id for t in check_runner.order_tasks(tasks, None, {})][0] == "dcgan"   # estimate: images first
    check_runner._save_timings([{"id": "strong-d", "seconds_per_seed": 40.0},
                                {"id": "dcgan", "seconds_per_seed": 300.0},
                                {"id": "oscillation", "seconds_per_seed": 0.0}])
    timings = check_runner.load_timings()
    assert timings == {"strong-d": 40.0, "dcgan": 300.0, "oscillation": 0.0}
    assert [t[0].id for t in check_runner.order_tasks(tasks, None, timings)] == ["strong-d", "dcgan", "oscillation"]
    assert [t[0].id for t in check_runner.order_tasks(tasks, 50, timings)][0] == "dcgan"   # --steps: estimates
    check_runner.timings_path().write_text("{not json")
    assert check_runner.load_timings() == {}                   # a damaged file: back to estimates, no error
