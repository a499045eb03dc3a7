"""Reusable widgets: forms from dataclasses, image grids, charts, plots, message banners."""
