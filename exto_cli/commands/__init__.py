"""Thin command modules: parse options, call the core, hand results to output."""
