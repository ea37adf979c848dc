"""Colorization as a pretext task (Zhang, Isola, Efros, ECCV 2016)."""
