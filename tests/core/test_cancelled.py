"""A stop before training starts is a `Cancelled` error (a type, exit code 130), not a message to compare."""

import threading

import pytest

from ftstudio.core.config.recipe import Recipe
from ftstudio.core.engine import RunControls, train
from ftstudio.core.errors import Cancelled, FtError, InputError
from tests.helpers import make_digit_folder


def test_a_stop_while_the_data_decodes_is_cancelled_and_leaves_no_run(tmp_path):
    folder = make_digit_folder(tmp_path / "digits", n_per_class=3, size=8, classes=range(2))
    stop = threading.Event()
    stop.set()
    recipe = Recipe.from_dict({"model": "mlp", "data": {"name": str(folder)}, "train": {"epochs": 1}})
    with pytest.raises(Cancelled) as caught:
        train(recipe, tmp_path / "run", RunControls(stop=stop))
    assert caught.value.exit_code == 130 and not isinstance(caught.value, InputError)
    assert not (tmp_path / "run" / "recipe.json").exists()


def test_exit_codes_come_from_the_error_classes():
    from ftstudio.core import errors

    codes = {cls.__name__: cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, FtError)}
    assert codes == {"FtError": 1, "InputError": 2, "GuardStop": 3, "Cancelled": 130, "Interrupted": 130,
                     "Terminated": 143}
