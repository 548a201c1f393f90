"""Plumbing for the lessons: nothing here is about diffusion LMs, and a learner may skip the whole package.
The bottom floor: it imports no lesson. What it needs from one (the model, the tokenizers) the lesson passes in.

    cli          one-line errors (UsageError, run_cli), the argument parser, flag types
    files        atomic writes, downloads, reading text
    checkpoints  save/load one-file checkpoints, training state, run directories, load_model
    hub          Hugging Face Hub export/load/push; the upstream tiny-dllm checkpoint converter
    runtime      device, dtype, autocast, Ctrl-C handling, DDP setup and teardown
    metrics      metrics.csv and loss.png
    train_args   the training flags and their checks (the presets stay in the lessons and are passed in)
    pretrained   the models shipped in checkpoints/pretrained/, and which model a command uses by default
    gif          animated GIFs of the denoising
    runs         trainers as subprocesses, for the sweeps in bench/
"""
