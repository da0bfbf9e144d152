"""Top-K selection: ordering, ties, threshold, exact names, bad K."""

from __future__ import annotations

import pytest

from dehazekit.bilevel import precision_at_k, rank_blocks, select_top_k
from dehazekit.runtimes.errors import ConfigError


def test_top_k_orders_by_gate_then_name() -> None:
    gates = {"b": 0.7, "a": 0.7, "c": 0.9, "d": 0.1}
    assert rank_blocks(gates) == ["c", "a", "b", "d"]
    assert select_top_k(gates, k=2) == ["c", "a"]
    assert select_top_k(gates, k=None, threshold=0.5) == ["c", "a", "b"]
    assert select_top_k(gates, k=1, threshold=0.5) == ["c"]


def test_x1_is_not_x10() -> None:
    gates = {"x1": 0.2, "x10": 0.9, "x11": 0.8}
    assert select_top_k(gates, k=2) == ["x10", "x11"]
    assert precision_at_k(["x10", "x11"], ["x1", "x11"]) == 0.5


def test_k_may_equal_the_number_of_candidates() -> None:
    assert select_top_k({"a": 0.1, "b": 0.9}, k=2) == ["b", "a"]


def test_bad_selection_requests() -> None:
    gates = {"a": 0.5, "b": 0.4}
    with pytest.raises(ConfigError, match="larger than the number"):
        select_top_k(gates, k=3)
    with pytest.raises(ConfigError):
        select_top_k(gates, k=0)
    with pytest.raises(ConfigError, match="threshold"):
        select_top_k(gates, k=None, threshold=0.9)
    with pytest.raises(ConfigError):
        select_top_k({}, k=1)
    with pytest.raises(ConfigError):
        select_top_k(gates, k=None, threshold=None)
