"""crm_ml: a notebook-first customer-intelligence workbench for loyalty retailers."""

__version__ = "0.1.0"
