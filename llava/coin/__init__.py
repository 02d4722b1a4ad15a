"""CoIN as a benchmark: the rows it compares (`methods`)."""
