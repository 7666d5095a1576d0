"""Synthetic demo data for the example Huis & Tuin project."""
