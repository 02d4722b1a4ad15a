"""CoIN per-task scorers (`python -m llava.eval.CoIN.eval_<task>`), see `common` for what they share."""
