"""Where tasks come from, side by side: native YAML files (``native``), BIG-bench's JSON tasks (``bigbench``, its
downloader in ``bigbench_fetch``) and lm-eval's catalogue through lm-eval's own task layer (``lm_eval``, its index
in ``lm_eval_index``, what runs here in ``lm_eval_catalogue``). ``harness.tasks.loading`` dispatches a config's
task entries to them."""
