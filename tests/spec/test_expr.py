import pytest

from skipgraph.fields.expr import Expr, ExprError, Range

ENV = {"base": 32, "depth": 4, "ds": True, "norm": "batch"}


@pytest.mark.parametrize("source, env, expected", [
    ("base * 2**i", {"i": 3}, 256),
    ("depth - i", {"i": 1}, 3),
    ("j == depth or (ds and j >= 1)", {"j": 2}, True),
    ("not ds", {}, False),
    ("'ensemble' if ds else 'select'", {}, "ensemble"),
    ("min(base, 16) + max(1, 2)", {}, 18),
    ("base // 3 % 5", {}, 0),
    ("0 < 1 < 2", {}, True),
    ("norm == 'batch'", {}, True),
    ("int(base / 3)", {}, 10),
])
def test_expression_values(source, env, expected):
    assert Expr(source).evaluate({**ENV, **env}) == expected


@pytest.mark.parametrize("source", [
    "__import__('os')", "base.__class__", "[1, 2]", "lambda: 1", "open('x')",
    "(x := 3)", "base[0:1]", "{}", "f'{base}'", "base if",
])
def test_forbidden_or_broken_expressions(source):
    with pytest.raises(ExprError) as info:
        Expr(source)
    assert info.value.code == "bad-expression"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ExprError) as info:
        Expr("bsae * 2").evaluate(ENV)
    assert info.value.code == "eval-error"
    assert info.value.hint == "did you mean `base`?"


@pytest.mark.parametrize("source", ["2 ** 100000", "10 ** 10 ** 10", "1 // 0"])
def test_evaluation_is_bounded(source):
    with pytest.raises(ExprError):
        Expr(source).evaluate({})


def test_free_names():
    assert Expr("base * 2**i + min(j, 1)").names == {"base", "i", "j"}


def test_ranges_are_inclusive_and_may_use_bound_names():
    assert Range.parse("0..depth-i").values({"depth": 4, "i": 1}) == [0, 1, 2, 3]
    assert Range.parse(3).values({}) == [3]
    assert Range.parse("1..0").values({}) == []


def test_ranges_count_by_a_step():
    assert Range.parse("j-1..0 by -1").values({"j": 3}) == [2, 1, 0]
    assert Range.parse("j-1..0 by -1").values({"j": 0}) == []  # empty, like 0..j-1
    assert Range.parse("0..6 by 2").values({}) == [0, 2, 4, 6]
    assert Range.parse("0..5 by s").names == {"s"}
    assert str(Range.parse("j-1..0 by -1")) == "j-1..0 by -1"
    with pytest.raises(ExprError, match="step 0"):
        Range.parse("0..3 by 0").values({})
    with pytest.raises(ExprError, match="non-integer"):
        Range.parse("0..3 by 0.5").values({})


@pytest.mark.parametrize("text", ["0...3", "0..", "..3", "a..b..c", 1.5, None, "0..3 by ",
                                  "0..3 by -", "by 2"])
def test_bad_ranges(text):
    with pytest.raises(ExprError):
        Range.parse(text)


def test_huge_range_is_refused():
    with pytest.raises(ExprError) as info:
        Range.parse("0..10**7").values({})
    assert info.value.code == "resource-limit"


def test_list_params_are_read_by_index():
    env = {"kernels": [[1, 3, 3], 3], "i": 0}
    assert Expr("kernels[i]").evaluate(env) == [1, 3, 3]
    assert Expr("kernels[-1] if len(kernels) else 5").evaluate(env) == 3
    for source, message in (("kernels[2]", "outside the list of 2"),
                            ("i[0]", "only a list may be indexed")):
        with pytest.raises(ExprError) as info:
            Expr(source).evaluate(env)
        assert message in str(info.value) and info.value.code == "eval-error"
