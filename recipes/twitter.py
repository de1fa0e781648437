"""Expose Before You Defend on Twitter abuse (2 labels); ``--mode benchmark`` attacks a clean model first.

    accelerate launch recipes/twitter.py --config recipes/configs/twitter.yaml \\
        --model_name_or_path MODEL --output_dir OUT
"""

from ebyd_hf import ExposeConfig
from ebyd_hf.pipeline import DefenseArguments, recipe_parser, run_defense, run_recipe


def make_parser():
    return recipe_parser("twitter")


def main(script_args: DefenseArguments, training_args: ExposeConfig):
    return run_defense(script_args, training_args)


if __name__ == "__main__":
    run_recipe(main, make_parser())
