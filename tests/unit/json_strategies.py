"""Hypothesis strategies for JSON documents, shared by the codec and catalog properties."""

from __future__ import annotations

from hypothesis import strategies as st

#: any JSON value orjson can write (64-bit integers only, no NaN or infinity)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
