"""Reporting: the paper's numbers and the tables that set ours beside them."""
