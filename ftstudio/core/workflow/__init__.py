"""The pretrain → fine-tune → compare story: the pipeline document (`pipeline`), running it headless
(`runner`), and the bundled demo (`demo`)."""
