"""Figures drawn by the library, so notebooks and the HTML report show the same thing."""
