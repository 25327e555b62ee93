"""Regenerate ``tests/data/golden_train.json``: four 10-step training trajectories (llm.c ``test_gpt2.c`` style).

Each case draws a tiny dataset from a real task, then trains on it through ``ReplayTask`` (defined in
``tests/test_training.py``), which hands the stored prompts back to :func:`icdmin.training.train`. The golden file
therefore pins the training arithmetic (split, batch order, initialisation, attention gradients, optimiser,
schedule), independently of later changes to the task samplers. Run from the repository root:

    python scripts/make_golden_train.py
"""

import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_train import GOLDEN_CASES, ReplayTask, golden_outputs  # noqa: E402

from icdmin.tasks import GMMTask, LinearTask, SphereTask  # noqa: E402

TASKS = {"LinearTask": LinearTask, "SphereTask": SphereTask, "GMMTask": GMMTask}


def main() -> None:
    cases = []
    for case in GOLDEN_CASES:
        task = TASKS[case["task"]](**case["task_args"])
        prompts = task.sample(np.random.default_rng(case["data_seed"]), case["train"]["n_prompts"], case["L"])
        data = {"X": prompts.X.tolist(), "x_tilde": prompts.x_tilde.tolist(), "x": prompts.x.tolist()}
        replay = ReplayTask(prompts.X, prompts.x_tilde, prompts.x)
        cases.append({**case, "data": data, "expected": golden_outputs(replay, case)})
    out = ROOT / "tests" / "data" / "golden_train.json"
    out.write_text(json.dumps({"generated_by": "scripts/make_golden_train.py", "cases": cases}, indent=1))
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
