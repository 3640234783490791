"""The pool's queue of offsets against a plain deque: the same answers for any operations."""

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from mpmq.backends.local.pending import PendingOffsets

NAMES = ["popleft", "take", "take_range", "extendleft", "append", "extend", "clear"]
operations = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 5)), max_size=40)


@given(st.integers(0, 20), operations)
def test_pending_offsets_behave_as_a_deque_of_the_range(size, steps):
    pending, model = PendingOffsets(range(size)), deque(range(size))
    added = 1000
    for name, number in steps:
        if name == "popleft":
            assert bool(pending) == bool(model)
            if model:
                assert pending[0] == model[0] and pending.popleft() == model.popleft()
        elif name == "take":
            assert pending.take(number) == [model.popleft() for _ in range(min(number, len(model)))]
        elif name == "take_range":
            assert list(pending.take_range(number)) == [model.popleft() for _ in range(min(number, len(model)))]
        elif name == "clear":
            pending.clear()
            model.clear()
        elif name == "append":
            pending.append(added)
            model.append(added)
            added += 1
        else:  # extendleft, extend: new offsets, as a worker's death or a retry puts back
            new = list(range(added, added + number))
            added += number
            getattr(pending, name)(new)
            getattr(model, name)(new)
        assert len(pending) == len(model) and list(pending) == list(model)


def test_take_range_is_take_as_a_range_when_it_can_be():
    pending = PendingOffsets(range(10))
    assert pending.take_range(4) == range(0, 4)
    pending.extendleft([3, 2])
    assert pending.take_range(3) == [2, 3, 4]  # what was put back comes first, as a list
    pending.append(42)
    assert pending.take_range(2) == range(5, 7)
    assert pending.take_range(5) == [7, 8, 9, 42]  # past the range's end
    assert not pending


def test_take_range_lists_at_most_listed_offsets_but_any_range():
    pending = PendingOffsets(range(100))
    assert pending.take_range(50, listed=10) == range(0, 50)  # a range costs nothing to send
    pending.extendleft([1, 0])
    assert pending.take_range(50, listed=10) == [0, 1, *range(50, 58)]
    assert pending.take_range(50, listed=10) == range(58, 100)
