"""Defend a Twitter abusive-language detection (2 labels) classifier with Expose Before You Defend: expose -> detect -> purify, then
report CA/ASR and save (optionally push) the purified model with its defense report and model card.

Defend a suspicious model (Hub id or folder) with 500 clean validation rows:

    python recipes/twitter.py --config recipes/configs/twitter.yaml \
        --model_name_or_path path/to/suspicious-model --output_dir twitter-purified

Benchmark (poison twitter, fine-tune the offline MiniLM victim, then defend it; one reproducible experiment):

    accelerate launch recipes/twitter.py --config recipes/configs/twitter.yaml --mode benchmark \
        --trigger word --target_label 0 --output_dir twitter-benchmark

Add ``--trigger <family> --target_label <label>`` in defend mode to also measure ASR, and ``--push_to_hub
--hub_model_id <user>/<repo>`` to upload the purified model. Every option: ``python recipes/twitter.py --help``.
"""

from ebyd_hf import ExposeConfig
from ebyd_hf.pipeline import DefenseArguments, run_defense

TASK = "twitter"


def main(script_args: DefenseArguments, training_args: ExposeConfig):
    return run_defense(script_args, training_args)


if __name__ == "__main__":
    from ebyd_hf.pipeline import recipe_main

    recipe_main(TASK)
