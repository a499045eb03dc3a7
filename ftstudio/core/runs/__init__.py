"""Run folders: where a run's files live (`folders`), their typed records (`records`), the lock
that keeps two processes from writing one folder (`lock`), and the names users give runs (`names`)."""
