# Thin aliases for dev.py, which creates .venv itself (see README).
.PHONY: demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz mutate
demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz mutate:
	python3 dev.py $@
