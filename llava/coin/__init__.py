"""CoIN as a continual-instruction-tuning benchmark: the task registry (`tasks`), the chain scripts' settings
(`settings`) and output tree (`layout`), a training task around its train_mem.py command (`training`), the
instruction-grouped chain (`groups`, `routing`), the evaluation and the accuracy matrix's cells (`evaluation`,
`cells`), and the rows the mini-CoIN benchmark compares (`methods`)."""
