# Thin aliases for dev.py, which creates .venv itself (see README).
.PHONY: demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz
demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz:
	python3 dev.py $@
