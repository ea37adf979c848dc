"""Evaluations of a frozen pretext encoder."""
