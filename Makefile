# Thin aliases for dev.py, which creates .venv itself (see README).
.PHONY: demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz mutate simulate
demo test test-fast test-faults lint bench bench-protocol bench-urgency fuzz mutate:
	python3 dev.py $@

# make simulate OFFICES=30
OFFICES ?= 10
simulate:
	python3 dev.py simulate --offices $(OFFICES)
