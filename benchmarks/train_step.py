"""Training throughput of a cross-encoder step on this machine: fp32 against bf16 autocast.

One optimizer step (forward, backward, AdamW) of the all-MiniLM-L6-v2 backbone with a
one-logit head, on a batch of ``--batch`` random token sequences of ``--length`` tokens; the
first step is a warm-up, the next ``--steps`` are timed. This is what ``crossrank train`` pays
per step, so it shows whether ``--bf16`` pays off on this CPU (it does where the CPU has native
bf16, AVX512-BF16 or AMX; elsewhere bf16 is emulated).

    .venv/bin/python benchmarks/train_step.py --batch 72 --length 160
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForSequenceClassification

from crossrank.engine.loading import cpu_has_bf16
from crossrank.paths import default_biencoder


def pairs_per_second(
    model: torch.nn.Module, batch: int, length: int, steps: int, bf16: bool
) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (batch, length))
    mask = torch.ones_like(ids)
    started = 0.0
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=mask).logits
        logits.float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=72, help="pairs per step (8 groups x 9)")
    parser.add_argument("--length", type=int, default=160, help="tokens per pair")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per precision")
    args = parser.parse_args()
    model = AutoModelForSequenceClassification.from_pretrained(default_biencoder(), num_labels=1)
    model.train()
    print(
        f"{args.batch} pairs x {args.length} tokens, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, native CPU bf16: {cpu_has_bf16()}"
    )
    fp32 = pairs_per_second(model, args.batch, args.length, args.steps, bf16=False)
    bf16 = pairs_per_second(model, args.batch, args.length, args.steps, bf16=True)
    print("| precision | pairs/s |\n|---|---:|")
    print(f"| fp32 | {fp32:.1f} |\n| bf16 autocast | {bf16:.1f} ({bf16 / fp32:.2f}x) |")


if __name__ == "__main__":
    main()
