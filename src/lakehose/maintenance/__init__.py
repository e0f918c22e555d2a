"""Maintenance jobs on the lake: they rewrite, expire and delete files while delivery keeps appending."""
