"""The Data page's new augmentation controls reach the recipe and its live preview."""

from __future__ import annotations

import numpy as np


def test_new_augmentations_reach_the_spec_and_the_preview(window):
    data = window.data_page
    data.crop_area.setValue(0.4)
    data.augment_form.widgets["noise"].setValue(0.2)
    data.augment_form.widgets["color"].setValue(0.3)
    augment = window.session.data_spec.augment
    assert augment.scale == (0.4, 1.0) and augment.noise == 0.2 and augment.color == 0.3
    data.augment_form.widgets["rotation"].setValue(10.0)  # other edits keep the crop
    assert window.session.data_spec.augment.scale == (0.4, 1.0)
    items = data.preview.items
    assert items and items[0].caption == "original"
    assert items[1].image.shape == items[0].image.shape and not np.array_equal(items[0].image, items[1].image)
    assert window.session.recipe().data.augment.noise == 0.2  # what Start trains with
