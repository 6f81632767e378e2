"""Every numeric option is checked at start-up: NaN, infinities, negative or out-of-range values and
text that is no number stop the run with a message a user can act on, never a traceback at the end."""

from __future__ import annotations

import pytest

SUITE = """
def test_nothing():
    pass
"""


@pytest.mark.parametrize("args, said", [
    (["--distill-lr", "nan"], "--distill-lr: nan is not a number above 0 (e.g. 2 or 0.0002)"),
    (["--distill-lr", "inf"], "--distill-lr: inf is not a number above 0"),
    (["--distill-lr", "-1"], "--distill-lr: -1 is not a number above 0"),
    (["--distill-timeout", "-1"], "--distill-timeout: -1 is not a number of seconds above 0 (e.g. 30)"),
    (["--distill-timeout", "nan"], "--distill-timeout: nan is not a number of seconds above 0"),
    (["--distill-request-timeout", "inf"], "--distill-request-timeout: inf is not a number of seconds above 0"),
    (["--distill-tolerance", "5%"], "--distill-tolerance: 5% is not a rate between 0 and 1 (a fraction, e.g. 0.05 for 5%)"),
    (["--distill-tolerance", "nan"], "--distill-tolerance: nan is not a rate between 0 and 1"),
    (["--distill-teacher-min", "1.5"], "--distill-teacher-min: 1.5 is not a rate between 0 and 1"),
    (["--distill-repeat", "1.5"], "--distill-repeat: 1.5 is not a whole number of at least 1"),
    (["--distill-concurrency", "1e999"], "--distill-concurrency: 1e999 is not a whole number of at least 1"),
    (["--distill-epochs", "three"], "--distill-epochs: three is not a whole number of at least 1"),
    (["--distill-pass-rate", "90%"], "--distill-pass-rate: *a fraction, e.g. 0.05 for 5%*"),
])
def test_a_numeric_option_no_run_can_use_stops_it_at_start_up(pytester: pytest.Pytester, args: list[str], said: str) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {said}*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("ini, said", [
    ("distill_timeout = nan", "ini distill_timeout: nan is not a number of seconds above 0"),
    ("distill_lr = 0", "ini distill_lr: 0.0 is not a number above 0"),
    ("distill_prices =\n    my-model nan 1", "ini distill_prices line 1: a price is a number of dollars, 0 or more: 'my-model nan 1'"),
    ("distill_prices =\n    my-model 1 inf", "ini distill_prices line 1: a price is a number of dollars, 0 or more: 'my-model 1 inf'"),
])
def test_a_numeric_ini_setting_no_run_can_use_stops_it_at_start_up(pytester: pytest.Pytester, ini: str, said: str) -> None:
    pytester.makepyfile(SUITE)
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("--distill-sim")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
