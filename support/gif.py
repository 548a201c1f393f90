"""Animated GIFs of a canvas being denoised (06, 09, 10, 11 --gif): matplotlib, headless, written atomically."""
import textwrap

from support.cli import UsageError
from support.files import MARK, atomic_write


def write_gif(path, texts, width=64, font=None, fps=8, dpi=160):
    """One frame per text (the canvas after each model call, [MASK] shown as _), the last held for 4 frames.

    dpi 160: a GIF has 256 colours, and at screen resolution the palette drops the thin anti-aliased strokes
    of scripts such as Tamil (ப and ம lose their loops); more pixels per stroke keep them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    texts = ["\n".join(textwrap.fill(line, width) if line else "" for line in t.split("\n")) for t in texts]
    n_lines = max(t.count("\n") + 1 for t in texts)
    fig = plt.figure(figsize=(width * 0.11 + 0.4, n_lines * 0.22 + 0.6))
    txt = fig.text(0.02, 0.98, "", va="top", ha="left", family=font or "monospace", fontsize=10)
    title = fig.text(0.98, 0.01, "", va="bottom", ha="right", fontsize=8, color="gray")

    def draw(i):
        txt.set_text(texts[i])
        title.set_text(f"step {i}/{len(texts) - 1}")
        return txt, title

    class Marked(PillowWriter):  # the GIF's comment says it was made here (support.files.made_here)
        def finish(self):
            self._frames[0].save(self.outfile, save_all=True, append_images=self._frames[1:],
                                 duration=int(1000 / self.fps), loop=0, comment=MARK.encode())

    def save(tmp):  # hold the final text for 4 extra frames
        anim = FuncAnimation(fig, lambda i: draw(min(i, len(texts) - 1)), frames=len(texts) + 4)
        anim.save(tmp, writer=Marked(fps=fps), dpi=dpi)

    try:
        atomic_write(path, save)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
