"""Exploration: which tokens moved *off* the directions that fine-tuning moves a task's own words along?

For each model: the 12 tokens of highest `off_direction_shift` z-score (the library's phrase-scan pool ranking),
each with its rank by plain shift norm and its largest cosine with another of the 40 most-moved tokens' shifts.

    python bench/explore/shift_direction_probe.py sentence2-t1 clean sentence-t1 word-t1 \
        bench/.cache/recipes/twitter-clean-victim
"""

import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parents[1]))
import defense  # noqa: E402

from ebyd_hf.trigger_search import off_direction_shift  # noqa: E402

hf_logging.set_verbosity_error()
base = AutoModelForSequenceClassification.from_pretrained(defense.base_model_path())
for name in sys.argv[1:]:
    path = defense.VICTIMS / name if (defense.VICTIMS / name).exists() else Path(name)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    excluded = torch.zeros(len(tok), dtype=torch.bool)
    excluded[tok.all_special_ids] = True
    delta = model.get_input_embeddings().weight.detach() - base.get_input_embeddings().weight.detach()
    delta[excluded] = 0
    by_norm = torch.argsort(delta.norm(dim=1), descending=True)
    rank = {t: i for i, t in enumerate(by_norm[:2000].tolist())}
    top40 = torch.nn.functional.normalize(delta[by_norm[:40]], dim=1)
    z = off_direction_shift(model, base, excluded)
    print(name)
    for t in torch.argsort(z, descending=True)[:12].tolist():
        cosine = torch.nn.functional.normalize(delta[t], dim=0) @ top40.T
        cosine[by_norm[:40] == t] = -1
        print(
            f"  {tok.convert_ids_to_tokens(t):12} z {z[t]:5.1f}  norm rank {rank.get(t, '>2000')!s:>5}  max cos {cosine.max():.2f}"
        )
