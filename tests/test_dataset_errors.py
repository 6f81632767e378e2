"""A dataset that cannot be read is an error of the tests that use it, never of the whole session
(test_xdist_one_truth: the same under xdist)."""

from __future__ import annotations

import pytest

from .support import write_jsonl


def missing_and_broken_datasets(pytester: pytest.Pytester) -> None:
    """A good dataset, a missing one, one broken JSON, one no UTF-8, and a test using none: 4 pass, 3 error."""
    write_jsonl(pytester.path / "good.jsonl", [{"input": f"q{i}", "ideal": f"a{i}"} for i in range(3)])
    (pytester.path / "broken.jsonl").write_text('{"input": "q", "ideal": "a"\n', encoding="utf-8")
    (pytester.path / "bad.jsonl").write_bytes(b"\xff\xfe not text\n")
    pytester.makepyfile(
        test_good="""
            import pytest

            @pytest.mark.distill_dataset("good.jsonl")
            def test_good(case):
                assert case.expected.startswith("a")
        """,
        test_missing="""
            import pytest

            @pytest.mark.distill_dataset("missing.jsonl")
            def test_missing(case):
                pass
        """,
        test_broken="""
            import pytest

            @pytest.mark.distill_dataset("broken.jsonl")
            def test_broken(case):
                pass

            @pytest.mark.distill_dataset("bad.jsonl")
            def test_bad(case):
                pass

            def test_plain():
                pass
        """,
    )


def test_a_missing_or_broken_dataset_errors_its_tests_and_the_others_still_run(pytester: pytest.Pytester) -> None:
    missing_and_broken_datasets(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines([
        "*dataset 'missing.jsonl': no such file (looked for *missing.jsonl*",
    ], consecutive=False)
    out = result.stdout.str()
    assert "broken.jsonl: no line is a case in either format" in out
    assert "line 1 column 28" in out  # the JSON parser's own place
    assert "not UTF-8: byte 0xff at column 1" in out
    assert "Interrupted" not in out and "error during collection" not in out
