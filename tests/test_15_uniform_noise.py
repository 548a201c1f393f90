"""Lesson 15: uniform-state diffusion. The NELBO in its two forms and as the limit of the per-step KL, the posterior
by Bayes' rule, a perfect model at 0, the sampler keeping what the user fixed, training through 05's loop, and the
command line."""
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, cli_error, lesson, tiny

D, U, gen = lesson("04_diffusion"), lesson("15_uniform_noise"), lesson("06_generate")
K = 7


def udlm_form(x_theta, x0, z_t, a):
    """UDLM's written form of the integrand (its diffusion.py, the uniform branch), alpha' = -1, float64: the
    reference the lesson's closed form (Duo's) must equal."""
    x = F.one_hot(torch.tensor(x0), K).double()
    xbar, xbar_th = K * a * x + 1 - a, K * a * x_theta + 1 - a
    i = z_t
    ratio = xbar / xbar[i]
    log_ratio = (xbar_th[i] * xbar / (xbar_th * xbar[i])).log()
    return -1 / (K * a) * (K / xbar[i] - K / xbar_th[i] - (ratio * log_ratio).sum())


@pytest.mark.parametrize("t", [0.01, 0.37, 0.9])
def test_the_two_nelbo_forms_agree_and_equal_the_limit_of_the_per_step_kl(t):
    torch.manual_seed(0)
    logits = torch.randn(1, K, K, dtype=torch.float64)  # K positions, one per noisy token z
    x0 = torch.full((1, K), 2)
    z = torch.arange(K)[None]  # every noisy token: kept (z = 2) and replaced (the others)
    mine = U.nelbo_terms(logits, z, x0, torch.tensor([t], dtype=torch.float64))[0].double()
    x_theta = logits[0].softmax(-1)
    a, dt = 1 - t, 1e-6
    for j in range(K):
        ref = udlm_form(x_theta[j], 2, j, a)
        q = U.posterior(F.one_hot(torch.tensor(2), K).double(), torch.tensor(j), a, a + dt)  # true step t -> t - dt
        p = U.posterior(x_theta[j], torch.tensor(j), a, a + dt)  # the model's
        kl = (q * (q / p).log()).sum() / dt
        assert mine[j].item() == pytest.approx(ref.item(), rel=1e-4)
        assert mine[j].item() == pytest.approx(kl.item(), rel=1e-3)
        assert mine[j] > 0


def test_a_perfect_model_scores_zero_and_a_uniform_guess_does_not():
    x0 = torch.randint(K, (3, 10))
    t = torch.tensor([0.05, 0.5, 0.95])
    z = U.add_noise(x0, t, K, torch.Generator().manual_seed(0))
    perfect = F.one_hot(x0, K).float() * 1e4  # certain of the clean token everywhere
    assert U.nelbo_terms(perfect, z, x0, t).abs().max() < 1e-3
    assert (U.nelbo_terms(torch.zeros(3, 10, K), z, x0, t) > 0).all()


def test_the_posterior_is_bayes_rule():
    a_t, a_s = 0.4, 0.7  # s < t: more survives at s
    for x in range(K):
        for z in range(K):
            prior = a_s * F.one_hot(torch.tensor(x), K).double() + (1 - a_s) / K  # q(z_s | x)
            step = a_t / a_s * (torch.arange(K) == z).double() + (1 - a_t / a_s) / K  # q(z_t = z | z_s), each z_s
            bayes = prior * step / (prior * step).sum()
            ours = U.posterior(F.one_hot(torch.tensor(x), K).double(), torch.tensor(z), a_t, a_s)
            assert torch.allclose(ours, bayes, atol=1e-12)


def test_the_forward_process_replaces_the_share_the_schedule_says():
    x0 = torch.zeros(4, 20000, dtype=torch.long)
    t = torch.tensor([0.0, 0.3, 0.6, 1.0])
    z = U.add_noise(x0, t, K, torch.Generator().manual_seed(1))
    changed = (z != 0).float().mean(1)
    assert torch.allclose(changed, t * (1 - 1 / K), atol=0.01)  # a replacement may draw the token itself


def uniform_model(**kw):
    return tiny(mask_token=False, time_input=True, **kw)


def test_the_sampler_never_changes_what_is_fixed_and_ends_on_the_greedy_guess():
    model = uniform_model()
    canvas = torch.full((2, 24), 11)
    canvas[:, :4] = torch.tensor([1, 2, 3, 4])  # a prompt
    canvas[:, -3:] = torch.tensor([5, 6, 7])  # a suffix
    seen = []
    x, calls = U.generate_uniform(model, canvas, 6, D.Sampling(generator=torch.Generator().manual_seed(0)),
                                  callback=lambda i, x: seen.append(x.clone()))
    assert calls == 6 == len(seen) and (x < 11).all()
    assert all(torch.equal(f[:, :4], canvas[:, :4]) and torch.equal(f[:, -3:], canvas[:, -3:]) for f in seen)
    t_last = torch.full((2,), 1 / 6 * (1 - U.EPS))  # the last call's t
    with torch.no_grad():
        greedy = model(seen[-2], t=t_last).argmax(-1)
    assert torch.equal(x[:, 4:-3], greedy[:, 4:-3])


def test_the_sampler_holds_no_list_of_its_steps():  # --steps 10**12 starts at once; Ctrl-C ends it
    calls = []

    def stop(i, x):
        calls.append(i)
        if i == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        U.generate_uniform(uniform_model(), torch.full((1, 8), 11), 10**12,
                           D.Sampling(generator=torch.Generator().manual_seed(0)), callback=stop)
    assert calls == [1, 2, 3]


def test_the_model_is_told_t():
    model = uniform_model()
    x = torch.randint(11, (1, 16))
    with torch.no_grad():
        assert not torch.allclose(model(x, t=torch.tensor([0.1])), model(x, t=torch.tensor([0.9])))


def test_the_loss_stays_finite_near_both_ends_under_bf16_autocast():
    model = uniform_model()
    x0 = torch.randint(11, (4, 32))
    for t in (U.EPS, 1 - U.EPS):
        z = U.add_noise(x0, torch.full((4,), t), 11)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            terms = U.nelbo_terms(model(z, t=torch.full((4,), t)), z, x0, torch.full((4,), t))
        assert terms.dtype == torch.float32 and torch.isfinite(terms).all()


def test_trains_through_lesson_05s_loop_then_generates_with_06s_flags(tiny_text, tmp_path, capsys):
    out = tmp_path / "uniform"
    rows = U.main(["train", *TINY, "--data", str(tiny_text), "--out", str(out), "--steps", "30", "--eval-every", "15"])
    assert [r["step"] for r in rows] == [0, 15, 30] and rows[-1]["val_bpc"] < rows[0]["val_bpc"]
    capsys.readouterr()
    texts = U.main(["generate", "--checkpoint", str(out), "--steps", "8", "--prompt", "To be", "--num-samples", "2",
                    "--len", "24"])
    captured = capsys.readouterr()
    assert len(texts) == 2 and all(t.startswith("To be") and len(t) == 24 for t in texts)
    assert "--- sample 2 ---" in captured.out and "8 model calls" in captured.err
    assert "15_uniform_noise.py generate" in cli_error(gen.main, ["--checkpoint", str(out)], capsys)
    err = cli_error(lesson("05_train").main, ["--out", str(out), "--resume", "--steps", "40"], capsys)
    assert "holds a uniform run (15_uniform_noise.py train)" in err
    export = lesson("03_transformer").Transformer.from_pretrained(out / "hf")
    assert export.config.time_input and not export.config.mask_token


def test_a_uniform_run_ships_and_generate_falls_back_on_the_shipped_one(tiny_text, tmp_path, monkeypatch, capsys):
    """bench/ship_model.py scores a uniform run with the uniform NELBO and writes 15's command in the card; with no
    run of the learner's, `15_uniform_noise.py generate` uses that shipped model and says so."""
    import sys

    from support import pretrained

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    ship = lesson("ship_model")
    run = tmp_path / "uniform"
    rows = U.main(["train", *TINY, "--data", str(tiny_text), "--out", str(run), "--steps", "20", "--eval-every", "20"])
    bits32, bits16 = ship.main(["--run", str(run), "--name", pretrained.UNIFORM, "--command", "python 15 train",
                                "--out-root", str(tmp_path / "pretrained")])
    assert abs(bits32 - rows[-1]["val_bpc"]) < 1e-3  # the uniform NELBO again, on the run's own windows
    card = (tmp_path / "pretrained" / pretrained.UNIFORM / "README.md").read_text(encoding="utf-8")
    assert "uniform-noise diffusion LM trained with tiny-dllm (lesson 15)" in card
    assert "Sample, as `python 15_uniform_noise.py generate --pretrained --steps 50 --topk 5` prints it" in card
    monkeypatch.setattr(U, "ROOT", tmp_path / "fresh")  # a fresh checkout: no run in checkpoints/uniform
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path / "pretrained")
    monkeypatch.setattr(pretrained, "ROOT", tmp_path)
    capsys.readouterr()
    texts = U.main(["generate", "--steps", "4", "--len", "16"])
    err = capsys.readouterr().err
    assert len(texts[0]) == 16 and f"using the shipped model pretrained/{pretrained.UNIFORM} " in err


@pytest.mark.parametrize("argv, says", [(["generate", "--order", "confidence"], "drop them"),
                                        (["generate", "--noise", "2"], "drop them"),
                                        (["--steps", "0"], "must be >= 1"),
                                        (["train", "--mask-rate", "0.1", "0.9"], "unrecognized arguments"),
                                        (["train", "--noise", "masked"], "is lesson 05's"),
                                        (["train", "--distill"], "give it with --init-from"),
                                        (["train", "--distill", "--self-cond", "--init-from", "x"], "--init-from"),
                                        (["train", "--dcd-calls", "0"], "must be >= 1")])
def test_bad_input_is_one_line(argv, says, capsys):
    assert says in cli_error(U.main, argv, capsys)


def test_the_equal_compute_benchmark_judges_both_models_and_the_gpt(dllm_run, gpt_run, tmp_path):
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    bench = lesson("uniform")
    d, corpus, _ = dllm_run
    U.main(["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "u"), "--steps", "20",
            "--eval-every", "10"])
    dcd = U.main(["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "dcd"), "--steps", "4",
                  "--eval-every", "2", "--distill", "--init-from", str(tmp_path / "u"), "--dcd-round", "2"])
    rows, bounds = bench.main(["--masked", str(d / "dllm"), "--uniform", str(tmp_path / "u"), "--gpt",
                               str(gpt_run[0]), "--data", str(corpus), "--calls", "2", "4", "--num-samples", "2",
                               "--out-dir", str(tmp_path / "out"), "--uniform-dcd", str(tmp_path / "dcd"),
                               "--temperatures", "1", "0.5"])
    assert [(r["model"], r["temperature"], r["calls"]) for r in rows[1:]] == [
        (kind, T, calls) for kind in ("masked", "uniform", "uniform-dcd") for T in (1, 0.5) for calls in (2, 4)
    ] + [("gpt", 1, 31)]
    assert all(0 < r["distinct4"] <= 1 and r["gen_bpc"] > 0 for r in rows)
    assert all(r["chars_per_s"] > 0 for r in rows[1:]) and set(bounds) == {"masked", "uniform", "uniform-dcd"}
    assert bounds["uniform-dcd"] == dcd[-1]["val_bpc"]  # a distilled run's last state, not its lowest bound
    assert (tmp_path / "out" / "tradeoff.png").stat().st_size > 0  # two temperatures: the trade drawn
    assert "uniform - masked" in (tmp_path / "out" / "uniform.txt").read_text()


def test_self_conditioning_feeds_each_call_the_last_ones_logits():
    """FeedBack: call k sees call k-1's logits (none at the first); a self-conditioned model uses them."""
    model = tiny(self_cond=True)
    seen = []

    class Spy(torch.nn.Module):
        config = model.config

        def forward(self, x, prev=None, **kw):
            seen.append(prev)
            return model(x, prev=prev, **kw)

    D.generate(U.FeedBack(Spy()), torch.full((1, 12), 11), 4, D.Sampling(generator=torch.Generator().manual_seed(0)))
    assert seen[0] is None and all(p is not None for p in seen[1:]) and len(seen) == 4
    x = torch.randint(11, (1, 12))
    with torch.no_grad():
        torch.nn.init.normal_(model.sc_mlp[-1].weight)  # larger than at initialisation: a clear difference
        assert not torch.allclose(model(x), model(x, prev=torch.randn(1, 12, 11)))


@pytest.mark.parametrize("flags", [["--self-cond"], ["--noise", "masked", "--self-cond"]])
def test_self_conditioned_models_train_through_lesson_05s_loop(flags, tiny_text, tmp_path):
    out = tmp_path / "run"
    rows = U.main(["train", *TINY, "--data", str(tiny_text), "--out", str(out), "--steps", "10", "--eval-every", "10",
                   *flags])
    model = lesson("06_generate").load(out, "dllm")[0]
    assert model.config.self_cond and [r["step"] for r in rows] == [0, 10]
    assert all(0 < r["val_bpc"] < 20 for r in rows)


def test_the_demo_runs_and_its_noise_settles(capsys):
    U.main(["--train-steps", "300", "--steps", "16"])
    out = capsys.readouterr().out
    assert "the forward process" in out and "settle in 16 calls" in out and "after call 16" in out


def test_the_gpu_script_runs_on_a_cpu_and_its_pieces_join_into_the_best_checkpoint(tmp_path):
    """bench/gpu_uniform.sh at the tiny preset, as its own header says to check it: best.pt comes back in pieces
    that join into a checkpoint bench/ship_model.py can read (the model, without the optimizer's state)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "PRESET": "tiny", "EXTRA": "--steps 20 --device cpu --dtype fp32", "DEVICE": "cpu",
           "PYTHON": sys.executable}
    out = tmp_path / "out"
    subprocess.run(["bash", str(ROOT / "bench" / "gpu_uniform.sh"), str(tmp_path / "run"), str(out)], env=env,
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert "done: 20 steps" in (out / "uniform.log").read_text() and (out / "uniform_metrics.csv").is_file()
    pieces = sorted(out.glob("best_model.pt.*"))
    joined = tmp_path / "best.pt"
    joined.write_bytes(b"".join(p.read_bytes() for p in pieces))
    ckpt = torch.load(joined, weights_only=True)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["optimizer"] == {} and ckpt["objective"] == "uniform" and ckpt["step"] == best["step"]
    assert all(torch.equal(a, b) for a, b in zip(ckpt["model"].values(), best["model"].values()))


def test_two_points_of_one_trajectory_share_their_draws():
    """add_noise with s: z_t is what add_noise alone draws; z_s has the schedule's share replaced at s; a token
    replaced at s is replaced at t by the same token (Duo's one shared epsilon, in this noise)."""
    x0 = torch.zeros(3, 20000, dtype=torch.long)
    t, s = torch.tensor([0.2, 0.6, 0.99]), torch.tensor([0.1, 0.3, 0.5])
    z_t, z_s = U.add_noise(x0, t, K, torch.Generator().manual_seed(3), s=s)
    assert torch.equal(z_t, U.add_noise(x0, t, K, torch.Generator().manual_seed(3)))
    assert torch.allclose((z_s != 0).float().mean(1), s * (1 - 1 / K), atol=0.01)
    assert torch.equal(z_t[z_s != 0], z_s[z_s != 0])  # noisy at s: the same token at t


def test_distillation_renews_a_frozen_teacher_each_round_and_its_loss_is_a_kl():
    model = uniform_model()
    obj = U.Distillation(calls=8, round_steps=2)
    x = torch.randint(11, (4, 13))
    teachers, students = [], []
    for step in range(5):
        obj.step = step
        students.append(next(model.parameters()).detach().clone())
        loss = obj.loss(model, x, model.config)
        assert loss.item() >= -1e-6 and loss.requires_grad  # a KL, and the student learns
        teachers.append(obj.teacher)
        with torch.no_grad():
            next(model.parameters()).add_(0.1)  # the student moves on; a frozen teacher does not
    assert teachers[0] is teachers[1] and teachers[1] is not teachers[2] and teachers[3] is not teachers[4]
    for step in (0, 2, 4):  # each round's teacher: the student as it was when the round began
        assert torch.equal(next(teachers[step].parameters()), students[step])
    assert not any(p.requires_grad for p in teachers[4].parameters()) and not teachers[4].training


def test_a_distilled_run_starts_as_its_teacher_and_keeps_its_last_state(tiny_text, tmp_path):
    from support.checkpoints import load_checkpoint

    teacher = tmp_path / "uniform"
    done = U.main(["train", *TINY, "--data", str(tiny_text), "--out", str(teacher), "--steps", "20",
                   "--eval-every", "20"])
    out = tmp_path / "dcd"
    rows = U.main(["train", *TINY, "--data", str(tiny_text), "--out", str(out), "--steps", "8", "--eval-every", "4",
                   "--distill", "--init-from", str(teacher), "--dcd-calls", "8", "--dcd-round", "4"])
    assert [r["step"] for r in rows] == [0, 4, 8]
    assert rows[0]["val_bpc"] == pytest.approx(done[-1]["val_bpc"], abs=1e-4)  # the same weights, windows, draws
    best = load_checkpoint(out / "best.pt")
    assert best["step"] == 8 and best["best_val_bpc"] == rows[-1]["val_bpc"]  # its aim is not the NELBO: the last
