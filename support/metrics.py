"""Run metrics: <run>/metrics.csv (one row per evaluation, written atomically) and loss.png drawn from it."""
import csv
import math
from pathlib import Path

from support.cli import UsageError
from support.files import atomic_write, save_figure

METRICS = ["step", "train_loss", "val_bpc", "lr", "tokens_per_s", "elapsed_s"]


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.csv"
    try:
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]  # "": not logged
    except FileNotFoundError:
        raise UsageError(f"no metrics.csv in {run_dir}") from None
    except (ValueError, TypeError, csv.Error) as e:
        raise UsageError(f"{path} is malformed ({e})") from None
    for r in rows:
        r["step"] = int(r["step"])  # a step is a count, also after a round trip through the file
    return rows


def write_csv(path, rows, fieldnames):
    """rows (dicts) -> a CSV file with a header, written atomically."""

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fieldnames)
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def write_metrics(run_dir, rows):
    """METRICS, then any column an objective adds (12's val_solved)."""
    write_csv(Path(run_dir) / "metrics.csv", rows, METRICS + [k for k in dict.fromkeys(k for r in rows for k in r)
                                                              if k not in METRICS])


def plot_metrics(run_dir, title=None, unit="bits/char", chars_per_token=1.0):
    """<run_dir>/loss.png from metrics.csv: train loss and validation bits per unit against step, as the
    log line gives them: the objective's loss (nats) over ln 2 and chars_per_token. That is bits per unit
    where the objective trains on what validation scores (not MGDM's weighted loss, bench/paths_mgdm.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    train = [r["train_loss"] / math.log(2) / chars_per_token for r in rows]
    ax.plot(steps, train, label="train loss")
    ax.plot(steps, [r["val_bpc"] for r in rows], marker="o", label=f"validation {unit}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits")
    ax.set_title(title or str(run_dir))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, Path(run_dir) / "loss.png")
    plt.close(fig)


def plot_rows(path, runs, x, y, xlabel, ylabel, title=None):
    """A figure of logged rows (one per evaluation): column y against column x for each run ({label: rows}),
    written to path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, rows in runs.items():
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or str(Path(path).parent))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
