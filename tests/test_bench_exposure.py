"""The exposure benchmark (bench/exposure.py): exposes a victim with each method and reads where its trigger ranks,
on the exposed model alone and in the sign test with the suspicious one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from conftest import DATA_DIR
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import exposure  # noqa: E402


def test_percentile_ranks_put_the_best_allowed_token_first_and_special_tokens_last():
    scores = torch.tensor([[0.1, 5.0, 0.3, 0.2], [9.0, 0.0, 1.0, 2.0]])
    excluded = torch.tensor([False, True, False, False])  # token 1 is special
    ranks = exposure.percentile_ranks(scores, excluded)
    assert torch.allclose(ranks[0], torch.tensor([2 / 3, 1.0, 0.0, 1 / 3])) and ranks[1, 0] == 0.0
    ranking = torch.argsort(ranks[0])
    assert exposure.best_rank(ranking, [3]) == 2 and exposure.best_rank(ranking, [0, 2]) == 1


def test_exposure_bench_ranks_the_tiny_victims_trigger(tiny_victims, tmp_path, monkeypatch):
    folder, _ = tiny_victims["t1"]
    monkeypatch.setattr(exposure, "victims", lambda: {"tiny-t1": (Path(folder), "sst2", [1], "tuning")})
    results = tmp_path / "exposure.json"
    exposure.main(
        ["--exposures", "clean_unlearning", "--data_dir", str(DATA_DIR), "--results", str(results)]
        + ["--base_model", str(tiny_victims["base"][0])]
        + ["--set", "exposure_learning_rate=1e-3", "exposure_max_steps=20"]
    )
    none, exposed = json.loads(results.read_text())
    assert (none["exposure"], exposed["exposure"]) == ("none", "clean_unlearning")
    assert exposed["settings"] == "exposure_learning_rate=1e-3 exposure_max_steps=20" and 0 < exposed["steps"] <= 20
    words = {"cf", "mn", "bb", "tq"}  # the word trigger's words, read from the victim's attack.json
    assert set(none["rank"]) == {f"{w}->1" for w in words}
    # the suspicious model's own scores rank its trigger words at the top, alone and joint (the same model)
    assert min(r["exposed"] for r in none["rank"].values()) <= 5
    assert all(r["exposed"] == r["joint"] for r in none["rank"].values())
    assert none["joint_best_flip"][1] >= 0.9 and none["joint_best_token"][1] in words
    assert abs(sum(exposed["target_share"]) - 1) < 0.01
    vocab = len(AutoTokenizer.from_pretrained(folder))
    assert all(1 <= r[k] <= vocab for r in exposed["rank"].values() for k in ("exposed", "joint"))
    assert "| tiny-t1 | 1 | clean_unlearning (exposure_learning_rate=1e-3" in results.with_suffix(".md").read_text()
