# The README's commands. Each installs what is missing first, so a fresh clone needs nothing else.
.PHONY: install server vllm run test test-fast bench figures lint clean

install:
	@bash scripts/install.sh

server: install
	@bash scripts/build-llama-server.sh

vllm: install
	@bash scripts/setup-vllm.sh

run: install
	@.venv/bin/memgpt run $(ARGS)

test: install server vllm
	@MEMGPT_REQUIRE_VLLM=1 bash scripts/test.sh $(ARGS)

# Everyday tier: no real model, no llama-server or vLLM, nothing marked slow, spread over the cores (CI runs
# the full `test`). Tests asking for a model or server fixture are marked by the root conftest.py.
test-fast: install
	@bash scripts/test.sh -n auto -m "not server and not slow and not model" $(ARGS)

bench: install server
	@for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

# Rewrite every figure quoted in the docs from its results file under bench/results (bench/figures.py).
figures: install
	@.venv/bin/python bench/figures.py

lint: install
	@.venv/bin/ruff check conftest.py core plugins tests bench
	@.venv/bin/ruff format --check conftest.py core plugins tests bench
	@.venv/bin/mypy

clean:
	rm -rf .venv .cache
