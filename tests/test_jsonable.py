"""The one JSON converter: every value results hold becomes plain JSON, non-finite numbers as asked."""
import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.jsonable import jsonable


@dataclasses.dataclass
class _Rec:
    a: float
    b: tuple


def test_results_become_plain_json():
    x = {1: np.float32(0.5), "arr": np.arange(3), "j": jnp.asarray([1.5, 2.5]), "s": jnp.asarray(2.0),
         "rec": _Rec(math.inf, (np.int64(3), -math.inf)), "nan": math.nan, "ok": [True, None, "x"]}
    out = jsonable(x)
    assert out == {"1": 0.5, "arr": [0, 1, 2], "j": [1.5, 2.5], "s": 2.0, "rec": {"a": "inf", "b": [3, "-inf"]},
                   "nan": "nan", "ok": [True, None, "x"]}
    json.dumps(out, allow_nan=False)  # valid strict JSON
    assert jsonable([math.nan, np.float64(math.inf), 1.0], nonfinite="null") == [None, None, 1.0]
    with pytest.raises(ValueError, match="nonfinite"):
        jsonable(1.0, nonfinite="zero")
