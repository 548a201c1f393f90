"""Plumbing for the lessons: nothing here is about diffusion LMs, and a learner may skip the whole package.

    cli          one-line errors (UsageError, run_cli), the argument parser, flag types
    files        atomic writes, downloads, reading text
    checkpoints  save/load one-file checkpoints, training state, tokenizers by name, load_model
    hub          Hugging Face Hub export/load/push; the upstream tiny-dllm checkpoint converter
    runtime      device, dtype, autocast, Ctrl-C handling, DDP setup and teardown
    metrics      metrics.csv and loss.png
    train_args   the training flags of 05/07/08/11 and their checks (the presets stay in the lessons)
    pretrained   the models shipped in checkpoints/pretrained/, and which model a command uses by default
    gif          animated GIFs of the denoising
    runs         trainers as subprocesses, for the sweeps in bench/
"""
