"""Plotly Dash dashboard for analysts."""
