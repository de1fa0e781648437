"""A continuous (embedding-space) trigger, learned against the model being purified.

Detection recovers what a trigger looks like as tokens or clause openings; a paraphrase-level backdoor
(a syntactic template, a writing style) or a multi-word sentence is only approximated by them. A soft trigger
(``length`` free vectors in the input-embedding space, inserted after the first token) has no such limit: it is
optimised to send clean rows of other classes to the detected target, so it converges to whatever the backdoor
responds to. Purification then trains the model to keep the true label of rows carrying it, re-optimising the
trigger as the model changes (a min-max game, as adversarial unlearning in I-BAU, here on embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _embedding_layer(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DDP
    return model.get_input_embeddings()


class SoftTrigger:
    """``length`` trainable input-embedding vectors that push rows towards ``target``.

    Args:
        model: the model the trigger is learned against (its embedding table gives the initial vectors and
            the norm bound).
        target: the label the trigger sends rows to (the detected target).
        length: number of vectors.
        learning_rate: Adam learning rate of the vectors.
        init_ids: token ids the vectors start from (e.g. a recovered trigger), padded with random vocabulary
            rows drawn with ``seed``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        target: int,
        length: int = 5,
        learning_rate: float = 0.05,
        init_ids: list[int] | None = None,
        seed: int = 0,
        reference: torch.nn.Module | None = None,
        reference_weight: float = 1.0,
    ):
        if length < 1:
            raise ValueError(f"A soft trigger needs at least one vector, got length={length}.")
        table = _embedding_layer(model).weight.detach()
        generator = torch.Generator().manual_seed(seed)
        ids = list(init_ids or [])[:length]
        ids += torch.randint(table.shape[0], (length - len(ids),), generator=generator).tolist()
        self.target = int(target)
        self.vectors = table[ids].clone().float().requires_grad_(True)
        self.max_norm = float(table.float().norm(dim=-1).max())
        self.optimizer = torch.optim.Adam([self.vectors], lr=learning_rate)
        self.warmup_flip_rate: float | None = None
        self.reference = reference
        self.reference_weight = float(reference_weight)

    @property
    def length(self) -> int:
        return self.vectors.shape[0]

    def model_inputs(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        vectors: torch.Tensor,
        pad_clean: bool = False,
        position: int = 1,
        rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``model(...)``: the rows of ``inputs`` with ``vectors`` inserted before token
        ``position`` (default: after the first token), as ``inputs_embeds``. ``vectors`` is one trigger
        (``length x dim``) or one per row (``rows x length x dim``). With ``pad_clean`` every untouched row comes
        first, padded to the same length, so one forward pass scores both; ``rows`` (indices) then picks the rows
        that also go through with the trigger (default: all)."""
        embeddings = _embedding_layer(model)(inputs["input_ids"])
        mask = inputs["attention_mask"]
        types = inputs.get("token_type_ids")
        chosen, chosen_mask, chosen_types = embeddings, mask, types
        if rows is not None:
            chosen, chosen_mask = embeddings[rows], mask[rows]
            chosen_types = None if types is None else types[rows]
        batch, width, at = chosen.shape[0], self.length, position
        block = vectors.to(chosen.dtype)
        block = block.unsqueeze(0).expand(batch, -1, -1) if block.dim() == 2 else block
        ones = torch.ones(batch, width, dtype=mask.dtype, device=mask.device)
        out = {
            "inputs_embeds": torch.cat([chosen[:, :at], block, chosen[:, at:]], dim=1),
            "attention_mask": torch.cat([chosen_mask[:, :at], ones, chosen_mask[:, at:]], dim=1),
        }
        if types is not None:
            fill = chosen_types[:, :1].expand(-1, width)
            out["token_type_ids"] = torch.cat([chosen_types[:, :at], fill, chosen_types[:, at:]], dim=1)
        if pad_clean:
            everyone = embeddings.shape[0]
            pad = embeddings.new_zeros(everyone, width, embeddings.shape[-1])
            out["inputs_embeds"] = torch.cat([torch.cat([embeddings, pad], dim=1), out["inputs_embeds"]])
            zeros = torch.zeros(everyone, width, dtype=mask.dtype, device=mask.device)
            out["attention_mask"] = torch.cat([torch.cat([mask, zeros], dim=1), out["attention_mask"]])
            if types is not None:
                padded = torch.cat([types, types[:, -1:].expand(-1, width)], dim=1)
                out["token_type_ids"] = torch.cat([padded, out["token_type_ids"]])
        return out

    def random_position(self, inputs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> int:
        """A position inside the text of every row of the batch (after the first token, before the shortest
        row's last one), for triggers that may sit anywhere."""
        shortest = int(inputs["attention_mask"].sum(dim=1).min())
        return int(torch.randint(1, max(shortest - 1, 1) + 1, (1,), generator=generator))

    def step(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], reduce=None, position: int = 1
    ) -> float | None:
        """One Adam step of the vectors towards the target on the batch's rows of other classes (the model's
        parameters get no gradient). Returns the share of those rows the trigger sends to the target, or
        ``None`` (and no step) when the batch has none. Under DDP pass ``reduce`` (a mean over processes, e.g.
        ``accelerator.reduce``), so every process keeps the same trigger; every process must then call it."""
        keep = inputs["labels"] != self.target
        has_rows = bool(keep.any())
        if not has_rows and reduce is None:
            return None
        rows = {k: v[keep] for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        vectors = self.vectors.to(inputs["input_ids"].device)
        rate = None
        if has_rows:
            logits = model(**self.model_inputs(model, rows, vectors, position=position)).logits
            goal = torch.full((logits.shape[0],), self.target, device=logits.device)
            loss = F.cross_entropy(logits.float(), goal)
            if self.reference is not None:  # a backdoor-free model must keep the rows' true labels
                ref_inputs = self.model_inputs(self.reference, rows, vectors, position=position)
                ref_logits = self.reference(**ref_inputs).logits
                loss = loss + self.reference_weight * F.cross_entropy(ref_logits.float(), inputs["labels"][keep])
            (grad,) = torch.autograd.grad(loss, vectors)
            rate = float((logits.argmax(-1) == self.target).float().mean())
        else:
            grad = torch.zeros_like(vectors)
        self.apply_gradient(grad, reduce)
        return rate

    def apply_gradient(self, grad: torch.Tensor, reduce=None) -> None:
        """One Adam step of the vectors down ``grad`` (a gradient of a loss the trigger minimises, computed by the
        caller, e.g. from the fine-tuning pass itself), then back into the range of real token embeddings; a
        non-finite ``grad`` takes no step. Under DDP ``reduce`` averages ``grad`` over processes first (every
        process must call it)."""
        if reduce is not None:
            grad = reduce(grad.detach())
        if not torch.isfinite(grad).all():  # an overflowing fp16 step: skipped, as the model's own step is
            return
        self.optimizer.zero_grad()
        self.vectors.grad = grad.detach().to(self.vectors.device, self.vectors.dtype)
        self.optimizer.step()
        with torch.no_grad():
            norms = self.vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            self.vectors.mul_(torch.clamp(self.max_norm / norms, max=1.0))
