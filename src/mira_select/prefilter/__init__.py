"""Rules and dedup run before any model scoring (see stages/prefilter.py)."""
