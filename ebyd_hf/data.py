"""Task data: each task as a ``DatasetDict`` with ``text`` and ``label`` (a ``ClassLabel``) and
train / validation / test splits.

Where the files come from, in order:

1. ``data_dir`` passed to :func:`load_task`;
2. the ``EBYD_DATA_DIR`` environment variable;
3. the task's dataset on the Hugging Face Hub (needs the network).

A local folder may be the shared data root (``<dir>/text/<task>/<split>.tsv``), its ``text``
folder (``<dir>/<task>/<split>.tsv``) or the task folder itself (``<dir>/<split>.tsv``). Files are
tab-separated with a ``text<TAB>label`` header, optionally gzip-compressed (``.tsv.gz``).

Splits the source lacks are carved from ``train`` with a fixed seed (stratified by label):
IMDB has no validation split, so 2,500 of its 25,000 training reviews (10%, seed 42) become
``validation``.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

DATA_DIR_ENV = "EBYD_DATA_DIR"
SPLITS = ("train", "validation", "test")
CARVE_SEED = 42


@dataclass(frozen=True)
class TaskSpec:
    """What ebyd_hf knows about a task: its labels, where it lives on the Hub, how to carve splits."""

    name: str
    label_names: tuple[str, ...]
    description: str
    hub_id: str | None = None
    hub_config: str | None = None
    hub_labels: tuple[int, ...] | None = None
    """Hub label ids kept (in order, renumbered from 0) when the Hub copy has extra classes."""
    carve_fraction: float = 0.1
    """Share of ``train`` carved into a missing ``validation`` (or ``test``) split."""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def features(self) -> Features:
        return Features({"text": Value("string"), "label": ClassLabel(names=list(self.label_names))})


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "sst2",
            ("negative", "positive"),
            "SST-2 sentence sentiment (the split used by backdoor papers)",
            hub_id="SetFit/sst2",
        ),
        TaskSpec("imdb", ("negative", "positive"), "IMDB movie reviews (Maas et al. 2011)", hub_id="stanfordnlp/imdb"),
        TaskSpec("twitter", ("normal", "abusive"), "Twitter abusive language (Founta et al. 2018), binary"),
        TaskSpec(
            "agnews",
            ("World", "Sports", "Business", "Sci/Tech"),
            "AG News topic classification",
            hub_id="fancyzhx/ag_news",
        ),
        TaskSpec(
            "olid",
            ("not offensive", "offensive"),
            "OLID / OffensEval 2019 subtask A",
            hub_id="cardiffnlp/tweet_eval",
            hub_config="offensive",
        ),
        TaskSpec(
            "hatespeech",
            ("no hate", "hate"),
            "Stormfront hate speech (de Gibert et al. 2018)",
            hub_id="odegiber/hate_speech18",
            hub_labels=(0, 1),
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; a clear ``ValueError`` for an unknown name."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"Unknown task {name!r}. Known tasks: {', '.join(TASKS)}.") from None


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """``data_dir`` if given, else ``$EBYD_DATA_DIR``, else ``None`` (meaning: use the Hub)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "data_dir" if data_dir is not None else DATA_DIR_ENV
        raise ValueError(
            f"{source}={str(chosen)!r} is not a folder. Point it at the shared data root "
            "(the folder holding text/<task>/<split>.tsv)."
        )
    return path


def _find_task_folder(root: Path, subdir: str, task: str) -> Path | None:
    for candidate in (root / subdir / task, root / task, root):
        if any(_split_file(candidate, split) for split in SPLITS):
            return candidate
    return None


def _split_file(folder: Path, split: str) -> Path | None:
    for suffix in (".tsv", ".tsv.gz"):
        path = folder / f"{split}{suffix}"
        if path.is_file():
            return path
    return None


def read_tsv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a header-first, tab-separated file (``.gz`` read transparently). No quoting: texts
    may hold quote characters, and fields hold no tabs."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return
        for line_number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{path}:{line_number}: expected {len(header)} tab-separated fields "
                    f"({', '.join(header)}), found {len(row)}."
                )
            yield dict(zip(header, row))


def check_texts(texts, source: str, column: str = "text") -> None:
    """Refuse a text column with an empty, blank or non-text cell, naming the first such row (counted from 1, the
    header not counted) and the fix: a tokenizer would fail on it deep inside, naming nothing.

    Example:
        >>> check_texts(["a fine film", "", "dull"], "clean.csv")
        Traceback (most recent call last):
        ...
        ValueError: row 2 of clean.csv has an empty 'text'; fill it in or drop the row.
    """
    for row, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            what = "an empty" if text is None else f"a non-text ({type(text).__name__}: {str(text)[:40]!r})"
            raise ValueError(f"row {row} of {source} has {what} {column!r}; give it text, or drop the row.")
        if not text.strip():
            raise ValueError(f"row {row} of {source} has an empty {column!r}; fill it in or drop the row.")


def _load_local(spec: TaskSpec, folder: Path) -> dict[str, Dataset]:
    splits = {}
    for split in SPLITS:
        path = _split_file(folder, split)
        if path is None:
            continue
        texts, labels = [], []
        for line, row in enumerate(read_tsv(path), start=2):
            if "text" not in row or "label" not in row:
                raise ValueError(f"{path} must have a 'text<TAB>label' header, found {list(row)}.")
            try:
                label = int(row["label"])
            except ValueError:
                raise ValueError(f"{path}:{line}: label {row['label']!r} is not an integer label id.") from None
            if not 0 <= label < spec.num_labels:
                raise ValueError(
                    f"{path}:{line}: label {label} is not a label of {spec.name} "
                    f"(labels: {', '.join(f'{i} {n}' for i, n in enumerate(spec.label_names))})."
                )
            if not row["text"].strip():
                raise ValueError(f"{path}:{line}: the text is empty; fill it in or drop the row.")
            texts.append(row["text"])
            labels.append(label)
        splits[split] = Dataset.from_dict({"text": texts, "label": labels}, features=spec.features)
    return splits


def _load_hub(spec: TaskSpec) -> dict[str, Dataset]:
    from datasets import load_dataset

    raw = load_dataset(spec.hub_id, spec.hub_config)
    keep = {hub: new for new, hub in enumerate(spec.hub_labels or ())}
    splits = {}
    for split in SPLITS:
        if split not in raw:
            continue
        ds = raw[split].select_columns(["text", "label"])
        if keep:
            ds = ds.filter(lambda batch: [y in keep for y in batch["label"]], batched=True)
            ds = ds.map(lambda batch: {"label": [keep[y] for y in batch["label"]]}, batched=True)
        splits[split] = ds.cast(spec.features)
    return splits


def _carve_missing_splits(spec: TaskSpec, splits: dict[str, Dataset]) -> DatasetDict:
    if "train" not in splits:
        raise ValueError(f"Task {spec.name!r} has no train split.")
    for missing in ("test", "validation"):
        if missing in splits:
            continue
        parts = splits["train"].train_test_split(
            test_size=spec.carve_fraction, seed=CARVE_SEED, stratify_by_column="label"
        )
        splits["train"], splits[missing] = parts["train"], parts["test"]
    return DatasetDict({split: splits[split] for split in SPLITS})


def load_task(name: str, data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Load a task as a ``DatasetDict`` with ``train``, ``validation`` and ``test`` splits.

    Args:
        name: one of :data:`TASKS` (``sst2``, ``imdb``, ``twitter``, ``agnews``, ``olid``, ``hatespeech``).
        data_dir: a local folder (see the module docstring for layouts). Defaults to ``$EBYD_DATA_DIR``,
            then the Hub.

    Example:
        >>> from ebyd_hf import load_task
        >>> sst2 = load_task("sst2", "../shared/data")
        >>> sst2["train"].features["label"].names
        ['negative', 'positive']
        >>> sst2.num_rows
        {'train': 6920, 'validation': 872, 'test': 1821}
    """
    spec = get_task(name)
    root = resolve_data_dir(data_dir)
    if root is not None:
        folder = _find_task_folder(root, "text", name)
        if folder is None:
            raise ValueError(
                f"No files for task {name!r} under {root}. Put them at "
                f"{root / 'text' / name}/{{train,validation,test}}.tsv (text<TAB>label)."
            )
        return _carve_missing_splits(spec, _load_local(spec, folder))

    hint = (
        f"Download the data and point {DATA_DIR_ENV} (or data_dir=) at a folder holding "
        f"text/{name}/{{train,validation,test}}.tsv with a 'text<TAB>label' header."
    )
    if spec.hub_id is None:
        raise ValueError(f"Task {name!r} has no copy on the Hugging Face Hub. {hint}")
    try:
        splits = _load_hub(spec)
    except Exception as error:  # offline, missing repo, changed schema: one clear message
        raise ValueError(
            f"Could not load task {name!r} from the Hub ({spec.hub_id}): {type(error).__name__}: {error}. {hint}"
        ) from error
    return _carve_missing_splits(spec, splits)
