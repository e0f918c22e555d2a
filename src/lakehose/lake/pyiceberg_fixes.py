"""Work-arounds for pyiceberg 0.12 bugs that would change data, applied when the lake is opened.

pyiceberg rebuilds a ``list<struct>`` column from its offsets alone before
writing Parquet (a work-around of its own for apache/arrow#38809), which drops
the validity bitmap: a null or absent array of objects is stored as ``[]``
(apache/iceberg-python#3833). The replacement below is pyiceberg's method with
the null mask passed on. Remove it when the pinned pyiceberg has the fix.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.io import pyarrow as pyiceberg_arrow
from pyiceberg.types import ListType


def _list_keeping_nulls(self: pyiceberg_arrow.ArrowProjectionVisitor, list_type: ListType,
                        list_array: pa.Array | None, value_array: pa.Array | None) -> pa.Array | None:
    if isinstance(list_array, (pa.ListArray, pa.LargeListArray, pa.FixedSizeListArray)) \
            and value_array is not None:
        list_initializer = pa.large_list if isinstance(list_array, pa.LargeListArray) else pa.list_
        if isinstance(value_array, pa.StructArray):
            mask = list_array.is_null() if list_array.null_count else None
            list_array = pa.LargeListArray.from_arrays(list_array.offsets, value_array, mask=mask)
        value_array = self._cast_if_needed(list_type.element_field, value_array)
        arrow_field = list_initializer(self._construct_field(list_type.element_field, value_array.type))
        return list_array.cast(arrow_field)
    return None


def apply() -> None:
    pyiceberg_arrow.ArrowProjectionVisitor.list = _list_keeping_nulls  # type: ignore[method-assign]
