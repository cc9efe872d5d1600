"""
Draw the figure of the ELMUR memory update for the docs (docs/_static/memory_update.png).

Left: one layer, its token track and memory track. Right: the LRU rule on a real backbone run
(M = 3 slots, 8 segments): which slot each segment writes, replace vs blend, and the timestamps.

    python docs/figures/memory_update.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch as th
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from sb3_elmur.elmur import ElmurBackbone, ElmurConfig

OUT = Path(__file__).resolve().parents[1] / "_static" / "memory_update.png"
TOKEN, MEMORY, LRU = "#dbe9f6", "#fde2c8", "#d9f0d3"


def box(ax, x, y, w, h, text, color, size=9):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#333333", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, style="-|>", color="#333333", ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=1.2, ls=ls))


def draw_layer(ax):
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    ax.set_title("One ELMUR layer (layer-local memory)", fontsize=11, weight="bold")
    # Token track (left column).
    box(ax, 0.3, 0.4, 3.8, 0.9, "tokens of segment k\n(positions 0..K-1)", TOKEN)
    box(ax, 0.3, 2.0, 3.8, 1.1, "causal self-attention\nrelative positions only", TOKEN)
    box(ax, 0.3, 3.8, 3.8, 1.1, "read (mem2tok)\ntokens query slots\n+ time-distance bias", TOKEN)
    box(ax, 0.3, 5.6, 3.8, 0.9, "feed-forward", TOKEN)
    box(ax, 0.3, 7.2, 3.8, 0.9, "token states -> next layer", TOKEN)
    for y0, y1 in [(1.3, 2.0), (3.1, 3.8), (4.9, 5.6), (6.5, 7.2)]:
        arrow(ax, (2.2, y0), (2.2, y1))
    # Memory (right column).
    box(ax, 6.0, 0.4, 3.7, 1.5, "memory of this layer\nM slots m_j, timestamps p_j\n(-1 = empty, never read)", MEMORY)
    box(ax, 6.0, 3.0, 3.7, 1.3, "write (tok2mem), once per\ncompleted segment: slots\nquery the K token states", MEMORY)
    box(ax, 6.0, 4.9, 3.7, 0.8, "feed-forward -> candidates u", MEMORY)
    box(
        ax,
        6.0,
        6.4,
        3.7,
        2.0,
        "LRU rule\nfirst empty slot: m <- u\nelse oldest p: m <- λu+(1-λ)m\np <- last step of segment",
        LRU,
    )
    arrow(ax, (6.0, 1.5), (4.1, 4.1), color="#b35806")  # slots feed the read
    ax.text(4.55, 2.45, "read", color="#b35806", fontsize=8, rotation=35)
    arrow(ax, (4.1, 7.6), (6.0, 3.7), color="#2166ac")  # final token states feed the write
    ax.text(4.45, 6.0, "end of\nsegment", color="#2166ac", fontsize=8)
    arrow(ax, (7.85, 4.3), (7.85, 4.9))
    arrow(ax, (7.85, 5.7), (7.85, 6.4))
    arrow(ax, (9.7, 7.4), (9.7, 1.2), color="#1b7837", ls="--")
    ax.text(9.78, 4.2, "used by\nsegment k+1", fontsize=8, color="#1b7837", rotation=90, va="center")


def draw_lru_run(ax):
    config = ElmurConfig(d_model=16, n_layers=1, n_heads=2, segment_len=10, n_slots=3, lru_lambda=0.1)
    th.manual_seed(0)
    net = ElmurBackbone(4, config).eval()
    n_segments = 8
    memory = net.initial_memory(1)
    history = []
    with th.no_grad():
        for segment in range(n_segments):
            steps = th.arange(segment * 10, segment * 10 + 10).view(1, -1)
            before = memory.timestamps[0, 0].clone()
            _, memory = net(th.randn(1, 10, 4), steps, memory=memory)
            after = memory.timestamps[0, 0]
            slot = int((after != before).nonzero()[0])
            history.append((slot, bool(before[slot] < 0), after.tolist()))
    ax.set_xlim(-0.5, n_segments - 0.5)
    ax.set_ylim(-0.5, config.n_slots - 0.5)
    ax.invert_yaxis()
    for segment, (slot, replaced, timestamps) in enumerate(history):
        for j, p in enumerate(timestamps):
            written = j == slot
            color = ("#fdae61" if replaced else "#66bd63") if written else ("#f0f0f0" if p < 0 else "#ffffff")
            ax.add_patch(plt.Rectangle((segment - 0.45, j - 0.4), 0.9, 0.8, fc=color, ec="#666666"))
            ax.text(
                segment,
                j,
                "empty" if p < 0 else f"p={p}",
                ha="center",
                va="center",
                fontsize=7.5,
                weight="bold" if written else "normal",
            )
    ax.set_xticks(range(n_segments), [f"seg {s}\nsteps {10 * s}-{10 * s + 9}" for s in range(n_segments)], fontsize=7)
    ax.set_yticks(range(config.n_slots), [f"slot {j}" for j in range(config.n_slots)])
    ax.set_title("LRU on a real run (M=3, K=10): slot timestamps after each segment", fontsize=11, weight="bold")
    handles = [plt.Rectangle((0, 0), 1, 1, fc=c, ec="#666666") for c in ("#fdae61", "#66bd63", "#f0f0f0")]
    ax.legend(
        handles,
        ["written: empty slot replaced (m <- u)", "written: oldest slot blended (λ=0.1)", "empty (masked out of reads)"],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.28),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)


def main() -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.6), gridspec_kw={"width_ratios": [1, 1.35]})
    draw_layer(left)
    draw_lru_run(right)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
