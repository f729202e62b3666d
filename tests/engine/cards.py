"""Comparison of model-card tables recomputed from the training data with the committed card."""

import numbers

import numpy as np

#: Absolute tolerance of a recomputed float (fractions of clear-sky power, ~1e-2): the same data and code give
#: results that differ in the last bits between CPUs (numpy's vectorised sums and sorts take other instruction
#: paths; seen here: <= 1.5e-15 on 2.0 GHz AMD EPYC cores against the card trained elsewhere).
FLOAT_ATOL = 1e-12


def assert_same_table(recomputed, committed, where="card"):
    """Assert two JSON-ready tables are the same: keys, text, integers and list shapes exactly, floats within FLOAT_ATOL.

    Parameters
    ----------
    recomputed, committed : dict, list, str or number
        JSON-ready values (e.g. a card's ``within_period``).
    where : str
        Path of the value in the table, for the failure message.
    """
    if isinstance(committed, dict):
        assert isinstance(recomputed, dict) and recomputed.keys() == committed.keys(), where
        for key in committed:
            assert_same_table(recomputed[key], committed[key], f"{where}.{key}")
    elif isinstance(committed, list):
        assert isinstance(recomputed, list) and len(recomputed) == len(committed), where
        for i, (a, b) in enumerate(zip(recomputed, committed)):
            assert_same_table(a, b, f"{where}[{i}]")
    elif isinstance(committed, float) or isinstance(recomputed, float):
        assert isinstance(recomputed, numbers.Real) and not isinstance(recomputed, bool), where
        np.testing.assert_allclose(recomputed, committed, rtol=0, atol=FLOAT_ATOL, err_msg=where)
    else:
        assert type(recomputed) is type(committed) and recomputed == committed, where
