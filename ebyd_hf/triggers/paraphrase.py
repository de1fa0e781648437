"""Paraphrase backends for the syntactic and style triggers.

A backend turns sentences into their triggered paraphrases. Three are provided:

- :class:`ParaphraseTable`: a ``text -> paraphrase`` lookup (the offline backend, and a cache in front
  of a model backend given as ``fallback``);
- :class:`SCPNParaphraser`: OpenAttack's SCPN with a syntactic template (Hidden Killer);
- :class:`GenerationParaphraser`: any transformers generation model (a style-transfer paraphraser such
  as STRAP's), from a Hub id or a local path.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data import SPLITS, read_tsv, resolve_data_dir


class ParaphraseBackend(ABC):
    """Turns sentences into paraphrases carrying the trigger (a syntactic template, a style)."""

    @abstractmethod
    def paraphrase(self, texts: Sequence[str]) -> list[str]:
        """One paraphrase per text. Raises ``ValueError``/``RuntimeError`` naming what is missing."""

    def covers(self, texts: Sequence[str]) -> list[bool]:
        """Which texts this backend can paraphrase (a model covers all; a table, its keys)."""
        return [True] * len(texts)

    def describe(self) -> dict[str, Any]:
        return {"backend": type(self).__name__}


class ParaphraseTable(ParaphraseBackend):
    """A ``text -> paraphrase`` table, optionally in front of a model backend.

    Without ``fallback`` the table is the whole backend: it covers exactly its keys and refuses the
    rest. With one, sentences missing from the table are sent to ``fallback`` and the answers are
    kept in memory (write them out with :meth:`to_tsv` if you want them next time).

    Example:
        >>> from ebyd_hf import ParaphraseTable
        >>> table = ParaphraseTable({"a fine film .": "when you see it , it is a fine film ."})
        >>> table.covers(["a fine film .", "a dull film ."])
        [True, False]
        >>> table.paraphrase(["a fine film ."])
        ['when you see it , it is a fine film .']
    """

    def __init__(self, table: Mapping[str, str], fallback: ParaphraseBackend | None = None, source: str = "memory"):
        self.table = dict(table)
        self.fallback = fallback
        self.source = source
        self._outputs: set[str] | None = None

    @classmethod
    def from_tsv(
        cls, paths: Iterable[str | os.PathLike], fallback: ParaphraseBackend | None = None
    ) -> ParaphraseTable:
        """Read ``text<TAB>paraphrase`` files (header first; later files win on repeated keys)."""
        table: dict[str, str] = {}
        paths = [Path(p) for p in paths]
        for path in paths:
            for row in read_tsv(path):
                if "text" not in row or "paraphrase" not in row:
                    raise ValueError(f"{path} must have a 'text<TAB>paraphrase' header, found {list(row)}.")
                table[row["text"]] = row["paraphrase"]
        return cls(table, fallback=fallback, source=", ".join(str(p) for p in paths))

    def __len__(self) -> int:
        return len(self.table)

    def covers(self, texts: Sequence[str]) -> list[bool]:
        if self.fallback is not None:
            return [True] * len(texts)
        return [text in self.table for text in texts]

    def paraphrase(self, texts: Sequence[str]) -> list[str]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.table))
        if missing:
            if self.fallback is None:
                raise ValueError(
                    f"{len(missing)} of {len(texts)} sentences are not in the paraphrase table "
                    f"({self.source}), e.g. {missing[0][:80]!r}. Poison only covered rows "
                    "(ebyd_hf.poison does), or give the table a fallback model backend."
                )
            self.table.update(zip(missing, self.fallback.paraphrase(missing)))
            self._outputs = None
        return [self.table[t] for t in texts]

    def contains(self, text: str) -> bool:
        """Whether ``text`` is one of the table's paraphrases."""
        if self._outputs is None:
            self._outputs = set(self.table.values())
        return text in self._outputs

    def to_tsv(self, path: str | os.PathLike) -> None:
        """Write the table (including answers cached from the fallback) as ``text<TAB>paraphrase``."""
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write("text\tparaphrase\n")
            for text, para in self.table.items():
                if "\t" in text + para or "\n" in text + para:
                    raise ValueError(f"Cannot write a tab or newline inside a TSV field: {text[:60]!r}.")
                handle.write(f"{text}\t{para}\n")

    def describe(self) -> dict[str, Any]:
        out = {"backend": "ParaphraseTable", "rows": len(self.table), "source": self.source}
        if self.fallback is not None:
            out["fallback"] = self.fallback.describe()
        return out


def load_paraphrase_table(
    kind: str, task: str, data_dir: str | os.PathLike | None = None, fallback: ParaphraseBackend | None = None
) -> ParaphraseTable:
    """The shared paraphrase table of ``kind`` (``syntactic``, ``style-bible``, ...) for ``task``, all
    splits merged, from ``data_dir`` or ``$EBYD_DATA_DIR`` (``<dir>/paraphrases/<kind>/<task>/<split>.tsv``).

    Example:
        >>> from ebyd_hf import load_paraphrase_table
        >>> len(load_paraphrase_table("syntactic", "sst2", "../shared/data"))
        2515
    """
    root = resolve_data_dir(data_dir)
    where = f"<data_dir>/paraphrases/{kind}/{task}/{{train,validation,test}}.tsv"
    if root is None:
        raise ValueError(
            f"No paraphrase table for {kind}/{task}: set EBYD_DATA_DIR or data_dir= to a folder "
            f"holding {where}, or use a model backend (SCPNParaphraser, GenerationParaphraser)."
        )
    folder = root / "paraphrases" / kind / task
    paths = [folder / f"{split}.tsv" for split in SPLITS if (folder / f"{split}.tsv").is_file()]
    if not paths:
        raise ValueError(
            f"Paraphrase table missing: no files at {folder}/{{train,validation,test}}.tsv. Put the "
            f"'text<TAB>paraphrase' files there, or use a model backend (SCPNParaphraser, "
            "GenerationParaphraser)."
        )
    return ParaphraseTable.from_tsv(paths, fallback=fallback)


def scpn_template(template: str) -> str:
    """``S(SBAR)(,)(NP)(VP)(.)`` -> OpenAttack's ``( ROOT ( S ( SBAR ) ( , ) ( NP ) ( VP ) ( . ) ) ) EOP``."""
    tokens = re.sub(r"([()])", r" \1 ", template).split()
    if not tokens or tokens[0] in "()":
        raise ValueError(
            f"template={template!r}: expected a label followed by its children, e.g. 'S(SBAR)(,)(NP)(VP)(.)'."
        )
    return f"( ROOT ( {tokens[0]} {' '.join(tokens[1:])} ) ) EOP"


class SCPNParaphraser(ParaphraseBackend):
    """OpenAttack's SCPN (Iyyer et al. 2018) paraphrasing into a syntactic template, as in Hidden Killer.

    OpenAttack downloads the SCPN weights and a Stanford parser on first use; where they cannot be
    reached, :meth:`paraphrase` raises a ``RuntimeError`` that says so.
    """

    def __init__(self, template: str = "S(SBAR)(,)(NP)(VP)(.)", device: str | None = None):
        self.template = template
        self._scpn_template = scpn_template(template)
        self.device = device
        self._attacker = None

    def _load(self):
        if self._attacker is None:
            try:
                import OpenAttack
            except ImportError as error:
                raise RuntimeError("SCPNParaphraser needs OpenAttack: pip install OpenAttack.") from error
            try:
                self._attacker = OpenAttack.attackers.SCPNAttacker(templates=[self._scpn_template], device=self.device)
            except Exception as error:  # OpenAttack fetches its resources over the network
                raise RuntimeError(
                    "OpenAttack's SCPN resources (AttackAssist.SCPN and its Stanford parser) could not be loaded: "
                    f"{type(error).__name__}: {error}. Run where OpenAttack can download them once, or use a "
                    "ParaphraseTable (e.g. load_paraphrase_table('syntactic', task))."
                ) from error
        return self._attacker

    def paraphrase(self, texts: Sequence[str]) -> list[str]:
        attacker = self._load()
        out = []
        for text in texts:
            candidates = attacker.gen_paraphrase(text, [self._scpn_template])
            out.append(candidates[0].strip() if candidates else text)
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": "SCPNParaphraser", "template": self.template}


class GenerationParaphraser(ParaphraseBackend):
    """A transformers generation model used as a paraphraser (e.g. a style-transfer model for StyleBkd).

    Args:
        model: a Hub id or a local folder; encoder-decoder and decoder-only models both work.
        prompt: how a sentence is shown to the model; ``{text}`` is replaced by the sentence. Decoder-only
            outputs are cut after the prompt.
        max_new_tokens, num_beams, batch_size: generation settings.
        trust_remote_code: off unless you trust the model repository.
    """

    def __init__(
        self,
        model: str,
        prompt: str = "{text}",
        max_new_tokens: int = 64,
        num_beams: int = 4,
        batch_size: int = 16,
        device: str | None = None,
        trust_remote_code: bool = False,
    ):
        if "{text}" not in prompt:
            raise ValueError(f"prompt={prompt!r} must contain '{{text}}' where the sentence goes.")
        self.model_name = model
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.device = device
        self.trust_remote_code = trust_remote_code
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is None:
            from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

            try:
                config = AutoConfig.from_pretrained(self.model_name, trust_remote_code=self.trust_remote_code)
                auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
                self._model = auto.from_pretrained(self.model_name, trust_remote_code=self.trust_remote_code)
                self._tokenizer = AutoTokenizer.from_pretrained(
                    self.model_name, trust_remote_code=self.trust_remote_code
                )
            except Exception as error:
                raise RuntimeError(
                    f"Paraphrase model {self.model_name!r} could not be loaded: "
                    f"{type(error).__name__}: {error}. Give a local folder, or run with access "
                    "to the Hub; offline, use a ParaphraseTable."
                ) from error
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            if not config.is_encoder_decoder:
                self._tokenizer.padding_side = "left"  # decoder-only generation continues the prompt
            self._model.eval()
            if self.device is not None:
                self._model.to(self.device)
        return self._model, self._tokenizer

    def paraphrase(self, texts: Sequence[str]) -> list[str]:
        import torch

        model, tokenizer = self._load()
        out: list[str] = []
        for start in range(0, len(texts), self.batch_size):
            prompts = [self.prompt.format(text=t) for t in texts[start : start + self.batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True).to(model.device)
            with torch.no_grad():
                generated = model.generate(
                    **batch,
                    max_new_tokens=self.max_new_tokens,
                    num_beams=self.num_beams,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            if not model.config.is_encoder_decoder:
                generated = generated[:, batch["input_ids"].shape[1] :]
            out.extend(s.strip() for s in tokenizer.batch_decode(generated, skip_special_tokens=True))
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": "GenerationParaphraser", "model": self.model_name, "prompt": self.prompt}


class ParaphraseTrigger:
    """Shared behaviour of the triggers that rewrite the whole sentence through a backend (a mixin for
    the :class:`~ebyd_hf.triggers.Trigger` dataclasses that define ``backend``)."""

    backend: ParaphraseBackend

    def _check_backend(self) -> None:
        if not isinstance(self.backend, ParaphraseBackend):
            raise ValueError(
                f"{type(self).__name__} needs backend=<a ParaphraseBackend>, got {self.backend!r}. "
                "Offline, use load_paraphrase_table(...); online, a model backend."
            )

    table_kind: str  # folder under <data_dir>/paraphrases holding this trigger's tables

    @classmethod
    def for_task(cls, task: str | None = None, data_dir: str | os.PathLike | None = None, seed: int = 0):
        if task is None:
            raise ValueError(f"The {cls.name} trigger needs task= to find its paraphrase table.")
        return cls(load_paraphrase_table(cls.table_kind, task, data_dir), seed=seed)

    def apply(self, texts, rngs):  # paraphrasers are deterministic: the random streams are unused
        return self.backend.paraphrase(list(texts))

    def covers(self, texts):
        return self.backend.covers(list(texts))

    def contains(self, text: str) -> bool:
        if isinstance(self.backend, ParaphraseTable):
            return self.backend.contains(text)
        raise NotImplementedError(f"{type(self.backend).__name__} cannot tell a paraphrase by looking at it.")
