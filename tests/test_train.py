"""The training engine: side-by-side runs, stop/interrupt/divergence, determinism, the CLI."""

import dataclasses
import json
import math
import threading

import pytest
import torch

import resnet_lab as rl
from resnet_lab import cli
from resnet_lab.nets.configs import config_to_dict
from resnet_lab.nets.ensembles import without_block
from resnet_lab.training import callbacks, data, history, recipes, train
from tests.util import assert_value_error_naming


@pytest.fixture
def tiny():
    return data.synthetic(1024, 256, size=16, seed=0)


def small_models(seed=0):
    return {"plain-8": rl.plain_net(8, width=4, seed=seed),
            "ResNet-8": rl.cifar_resnet(8, width=4, seed=seed)}


def test_testing_during_training_does_not_change_what_the_nets_learn(tiny):
    """Lessons that read only the final errors test once, at the end: evaluating (precise
    BatchNorm included) must leave training as it was, so the final numbers are the same."""
    finals = []
    for eval_every in (4, 40):
        runs = train.compare(small_models(), tiny, steps=40, batch_size=32, grad_every=0,
                             eval_every=eval_every)
        finals.append({n: (h.test_error[-1], h.train_loss, len(h.test_step))
                       for n, h in runs.items()})
    assert [n for _, _, n in finals[0].values()] == [10, 10]
    assert [n for _, _, n in finals[1].values()] == [1, 1]
    assert {n: v[:2] for n, v in finals[0].items()} == {n: v[:2] for n, v in finals[1].items()}


class At(callbacks.Callback):
    """Calls `action(run)` once the run reaches `step`."""

    def __init__(self, step, action):
        self.step, self.action = step, action

    def on_step(self, run):
        if run.step == self.step:
            self.action(run)


@pytest.mark.slow
def test_compare_trains_all_models_on_the_same_steps_and_learns(tiny, device):
    models = small_models()
    histories = train.compare(models, tiny, steps=100, batch_size=64, eval_every=25,
                              recipe="constant", device=device)
    for name, h in histories.items():
        assert h.status == "finished" and h.step == list(range(1, 101))
        assert h.test_step == [25, 50, 75, 100] and len(h.train_error) == 100
        assert h.final_train_loss(10) < 0.2 * math.log(10)     # learned (chance: ln 10)
        assert h.test_error[-1] < 0.2
        assert h.layers[0] == "conv1" and len(h.grad_norms) == 100 and len(h.grad_norms[0]) == 8
        assert list(h.latest_norms().values()) == h.grad_norms[-1]      # the last step's
        assert history.History("new").latest_norms() is None
        assert h.setup["depth"] == 8 and h.device.startswith(device)
        assert h.setup["plain"] == (name == "plain-8")
        assert h.setup["recipe"] == dataclasses.asdict(recipes.RECIPES["constant"])
        # compare leaves the models on its device, in training mode (its docstring says so)
        assert rl.pick_device(device).type == next(models[name].parameters()).device.type
        assert models[name].training


def test_compare_leaves_the_global_random_state_alone(tiny):
    torch.manual_seed(99)
    state = torch.random.get_rng_state()
    train.compare(small_models(), tiny, steps=3, batch_size=32, augment=True, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_evaluate_restores_training_mode_after_an_interrupt(tiny):
    model = rl.cifar_resnet(8, width=4)

    def interrupt(module, inputs, output):
        raise KeyboardInterrupt

    handle = model.layer2.register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.evaluate(model, tiny.x_test, tiny.y_test)
    handle.remove()
    assert model.training and all(m.training for m in model.modules())


def test_a_loss_that_grows_a_thousandfold_has_diverged_and_the_run_is_kept(tiny):
    model = rl.cifar_resnet(8, width=4, seed=0)
    with pytest.warns(UserWarning, match="grew to"):
        h = train.fit(model, tiny, steps=30, batch_size=32, recipe=recipes.with_lr("constant", 50))
    assert h.status == "diverged" and "over 1000x its first value" in h.message
    assert 0 < len(h.step) < 30 and max(h.train_loss) < 1e3 * h.train_loss[0]
    assert len(h.test_error) == 0 or math.isfinite(h.test_error[-1])


def test_with_lr_names_the_new_learning_rate():
    recipe = recipes.with_lr("quick", 0.05)
    assert recipe.lr == 0.05 and recipe.name == "quick (lr 0.05)"
    assert recipes.with_lr(recipe, 0.2).name == "quick (lr 0.2)"
    assert_value_error_naming(lambda: recipes.with_lr("quick", -1), ["lr=-1"])


@pytest.mark.slow
def test_same_seed_gives_the_same_history_on_cpu(tiny):
    a = train.compare(small_models(1), tiny, steps=15, batch_size=32, augment=True, seed=5)
    b = train.compare(small_models(1), tiny, steps=15, batch_size=32, augment=True, seed=5)
    c = train.compare(small_models(1), tiny, steps=15, batch_size=32, augment=True, seed=6)
    for name in a:
        assert a[name].train_loss == b[name].train_loss
        assert a[name].grad_norms == b[name].grad_norms
        assert a[name].train_loss != c[name].train_loss


def test_stop_ends_at_a_step_boundary_and_keeps_everything(tiny, device):
    stop = threading.Event()
    models = small_models()
    before = models["ResNet-8"].fc.weight.detach().clone()
    histories = train.compare(models, tiny, steps=1000, batch_size=32, device=device,
                              callbacks=[At(7, lambda run: stop.set())], stop=stop)
    for h in histories.values():
        assert h.status == "stopped" and h.step[-1] == 7 and len(h.grad_norms) == 7
        assert "Stop" in h.message
    after = models["ResNet-8"].fc.weight.detach().cpu()
    assert not torch.equal(after, before)                          # the trained model is kept


def test_keyboard_interrupt_ends_cleanly(tiny):
    def interrupt(run):
        raise KeyboardInterrupt

    models = small_models()
    histories = train.compare(models, tiny, steps=1000, batch_size=32,
                              callbacks=[At(4, interrupt)])
    assert {h.status for h in histories.values()} == {"interrupted"}
    assert all(len(h.step) == 4 for h in histories.values())
    assert sum(len(m._forward_hooks) for m in models["plain-8"].modules()) == 0


def test_divergence_stops_that_model_with_a_clear_message(tiny):
    torch.manual_seed(0)
    models = {"no-norm": rl.cifar_resnet(8, width=4, norm=False),
              "ResNet-8": rl.cifar_resnet(8, width=4)}
    hot = recipes.Recipe("hot", lr=1e6, schedule="constant")
    with pytest.warns(UserWarning, match="diverged"):
        histories = train.compare(models, tiny, steps=30, batch_size=32, recipe=hot)
    h = histories["no-norm"]
    assert h.status == "diverged" and "learning rate" in h.message and "normalization" in h.message
    assert f"step {len(h.step) + 1}" in h.message
    assert all(math.isfinite(v) for v in h.train_loss)       # no NaN reached the history


def test_one_diverging_model_does_not_stop_the_others(tiny):
    torch.manual_seed(0)
    models = {"hot": rl.cifar_resnet(8, width=4, norm=False), "calm": rl.cifar_resnet(8, width=4)}
    with torch.no_grad():   # make "hot" blow up at once
        models["hot"].fc.weight.fill_(float("inf"))
    with pytest.warns(UserWarning, match="hot diverged at step 1"):
        histories = train.compare(models, tiny, steps=10, batch_size=32)
    assert histories["hot"].status == "diverged" and histories["hot"].step == []
    assert histories["calm"].status == "finished" and len(histories["calm"].step) == 10


def test_a_callback_can_replace_a_models_step(tiny):
    """As fastai's TrainCB does: a callback swaps ResNet-8's SGD step for an Adam one at the
    start, and the loop trains it with that step (at the lr the schedule gives) from then on;
    the other model keeps its own."""
    from resnet_lab.training.step import Step

    class AdamFor(callbacks.Callback):
        def on_start(self, run):
            model = run.models["ResNet-8"]
            self.adam = torch.optim.Adam(model.parameters())
            run.steppers["ResNet-8"] = Step(model, self.adam)

    swap = AdamFor()
    runs = train.compare(small_models(), tiny, steps=3, batch_size=32, callbacks=[swap])
    assert [s["step"] for s in swap.adam.state.values()][:1] == [3]        # Adam made 3 steps
    assert runs["ResNet-8"].step == runs["plain-8"].step == [1, 2, 3]
    assert swap.adam.param_groups[0]["lr"] == runs["ResNet-8"].lr[-1]


def test_time_budget_and_epochs(tiny):
    h = train.fit(rl.cifar_resnet(8, width=4), tiny, epochs=0.5, batch_size=64)
    assert len(h.step) == 8
    h = train.fit(rl.cifar_resnet(8, width=4), tiny, max_seconds=0.5, batch_size=64)
    assert h.status == "finished" and len(h.step) > 0 and h.seconds < 5


def test_recipes():
    he = recipes.RECIPES["he2015"]
    assert he.lr_at(0.1) == 0.1 and he.lr_at(0.6) == pytest.approx(0.01)
    assert he.lr_at(0.8) == pytest.approx(0.001)
    assert he.lr_at(0.0, warming_up=True) == pytest.approx(0.01)
    quick = recipes.RECIPES["quick"]
    assert quick.lr_at(0.15) == pytest.approx(0.1) and quick.lr_at(1.0) == pytest.approx(0)
    assert recipes.with_lr("quick", 0.05).lr == 0.05


@pytest.mark.slow
def test_warm_up_lasts_until_the_training_error_is_under_the_threshold():
    # He et al. §4.2: ResNet-110 at lr/10 until its training error is below 80%; the
    # shallower net beside it starts at lr at once
    images = data.synthetic(512, 64, size=8, seed=0)
    recipe = dataclasses.replace(recipes.RECIPES["he2015"], schedule="constant")
    models = {"ResNet-110": rl.cifar_resnet(110, width=4, seed=0),
              "ResNet-20": rl.cifar_resnet(20, width=4, seed=0)}
    runs = train.compare(models, images, steps=40, batch_size=32, recipe=recipe)
    deep, shallow = runs["ResNet-110"], runs["ResNet-20"]
    assert set(shallow.lr) == {0.1}
    ends = next(i for i, e in enumerate(deep.train_error) if e < 0.8) + 1
    assert 1 < ends < 40             # it warmed up for a while, then went back to 0.1
    assert deep.lr[:ends] == [pytest.approx(0.01)] * ends and set(deep.lr[ends:]) == {0.1}


@pytest.mark.slow
def test_a_fixed_warm_up_gives_a_plain_net_and_a_resnet_the_same_learning_rates():
    """`with_warmup_steps`: exactly 6 steps at lr/10 for both 110-layer nets, whatever their
    training errors, so the two runs' lr columns are equal; the error rule would end them apart."""
    images = data.synthetic(512, 64, size=8, seed=0)
    recipe = recipes.with_warmup_steps(
        dataclasses.replace(recipes.RECIPES["he2015"], schedule="constant"), 6)
    models = {name: rl.cifar_resnet(110, width=4, skip=skip, seed=0)
              for name, skip in (("plain-110", 0.0), ("ResNet-110", 1.0))}
    runs = train.compare(models, images, steps=10, batch_size=32, recipe=recipe)
    assert runs["plain-110"].lr == runs["ResNet-110"].lr == [pytest.approx(0.01)] * 6 + [0.1] * 4
    assert runs["ResNet-110"].setup["recipe"]["warmup_steps"] == 6
    assert "warm-up 6 steps" in runs["ResNet-110"].setup["recipe"]["name"]


def test_a_warm_up_of_no_steps_is_refused_by_name():
    for steps in (0, -3, 2.5):
        with pytest.raises(ValueError, match="steps="):
            recipes.with_warmup_steps("he2015", steps)


def test_save_and_load_a_run(tiny, tmp_path, device):
    models = small_models()
    recipe = recipes.with_lr("constant", 0.05)
    histories = train.compare(models, tiny, steps=5, batch_size=32, device=device, recipe=recipe)
    path = history.save_run(tmp_path / "run.pt", models, histories)
    loaded, again = history.load_run(path)
    assert again["ResNet-8"].train_loss == histories["ResNet-8"].train_loss
    assert again["ResNet-8"].setup["recipe"] == dataclasses.asdict(recipe)   # the whole recipe
    x = tiny.x_test[:4]
    for name in models:
        models[name].eval()
        assert loaded[name].config == models[name].config
        out = models[name](x.to(device)).float().cpu()
        torch.testing.assert_close(loaded[name].eval()(x), out, atol=0.05, rtol=0.05)
    assert loaded["plain-8"].layer1[0].skip == 0.0


def round_trip(model, tmp_path):
    """`model` saved with save_run and loaded back: (the loaded model, outputs before, after)."""
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = model.eval()(x)
    loaded = history.load_run(history.save_run(tmp_path / "run.pt", {"net": model}, {}))[0]
    return loaded["net"], before, loaded["net"].eval()(x)


def test_a_net_made_plain_by_set_skip_is_saved_and_loaded_plain(tmp_path):
    model = rl.cifar_resnet(8, width=4, seed=0)
    rl.set_skip(model, 0.0)
    assert model.config.skip == 0.0 and rl.is_plain(model)
    loaded, before, after = round_trip(model, tmp_path)
    assert rl.is_plain(loaded) and loaded.config == model.config
    torch.testing.assert_close(after, before, rtol=0, atol=0)


@pytest.mark.parametrize("stage", ["layer1", "layer2", "layer3"])
def test_gates_set_on_one_stage_or_one_block_come_back_as_they_were(tmp_path, stage):
    model = rl.cifar_resnet(14, width=4, seed=0)
    rl.set_skip(model, 0.0, stage)
    rl.blocks_of(model)["layer2.1"].skip = 0.5                  # set by hand, not set_skip
    gates = {n: b.skip for n, b in rl.blocks_of(model).items()}
    assert model.config.skip == tuple(gates.values())
    loaded, before, after = round_trip(model, tmp_path)
    assert {n: b.skip for n, b in rl.blocks_of(loaded).items()} == gates
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_a_run_that_cannot_come_back_as_it_was_is_refused(tmp_path):
    model = rl.cifar_resnet(8, width=4, seed=0)
    with without_block(model, "layer1.0"), pytest.raises(ValueError, match="2 blocks"):
        history.save_run(tmp_path / "run.pt", {"net": model}, {})
    wider = {"builder": "cifar_resnet", "depth": 8, "width": 8}
    torch.save({"format": history.RUN_FORMAT, "histories": {},
                "models": {"net": {"config": wider, "state_dict": model.state_dict()}}},
               tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="'net'.*cannot be restored.*weights do not fit"):
        history.load_run(tmp_path / "wrong.pt")


def test_a_file_that_is_no_run_of_this_version_is_refused_naming_the_format(tmp_path):
    model = rl.cifar_resnet(8, width=4, seed=0)
    torch.save({"format": "resnet-lab run 3", "histories": {},
                "models": {"net": {"config": config_to_dict(model.config),
                                   "state_dict": model.state_dict()}}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="expected format 'resnet-lab run 4', found "
                                         "'resnet-lab run 3'"):
        history.load_run(tmp_path / "old.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a resnet-lab run file.*found None"):
        history.load_run(tmp_path / "other.pt")


@pytest.mark.parametrize("kwargs,words", [
    (dict(steps=0), ["steps=0"]),
    (dict(), ["budget"]),
    (dict(steps=5, recipe="fast"), ["recipe='fast'", "'quick'"]),
    (dict(steps=5, batch_size=0), ["batch_size=0"]),
    (dict(steps=5, grad_every=-1), ["grad_every=-1"]),
    (dict(steps=5, eval_every=0), ["eval_every=0"]),
    (dict(steps=5, eval_samples=0), ["eval_samples=0"]),
    (dict(steps=5, device="gpu"), ["device='gpu'", "'cuda'"]),
])
def test_bad_arguments_are_refused_before_training(tiny, kwargs, words):
    assert_value_error_naming(lambda: train.fit(rl.cifar_resnet(8, width=4), tiny, **kwargs),
                              words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_on_a_cpu_machine_is_refused():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        train.pick_device("cuda")


@pytest.mark.slow
def test_cli_compare_writes_json_and_png(tmp_path, capsys):
    code = cli.main(["compare", "--depths", "8", "--steps", "12", "--width", "4", "--size", "8",
                     "--n-train", "512", "--quiet", "--json", str(tmp_path / "h.json"),
                     "--plot", str(tmp_path / "c.png"), "--save", str(tmp_path / "run.pt")])
    assert code == 0
    out = capsys.readouterr().out
    assert "plain-8" in out and "ResNet-8" in out
    saved = json.loads((tmp_path / "h.json").read_text())
    assert set(saved) == {"plain-8", "ResNet-8"} and len(saved["ResNet-8"]["train_loss"]) == 12
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    models, _ = history.load_run(tmp_path / "run.pt")
    assert set(models) == {"plain-8", "ResNet-8"}


@pytest.mark.parametrize("args,words", [
    (["train", "--depth", "21"], ["--depth", "6n+2"]),
    (["train", "--dataset", "mnist"], ["--dataset", "invalid choice"]),
    (["compare", "--steps", "0"], ["--steps", "must be > 0"]),
    (["fly"], ["invalid choice"]),
])
def test_cli_bad_arguments_exit_2_with_one_line(args, words, capsys):
    with pytest.raises(SystemExit) as exit_:            # in-process: argparse exits at once
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1
    assert all(w in err for w in words)


@pytest.mark.slow
def test_the_progress_bar_counts_every_step_and_shows_each_models_loss(tiny, capsys):
    bar = callbacks.ProgressBar()
    runs = train.compare(small_models(), tiny, steps=12, batch_size=32, callbacks=[bar])
    assert bar.bar.n == bar.bar.total == 12
    shown = bar.bar.postfix
    for name, h in runs.items():
        assert f"{name}={h.train_loss[-1]:.3f}" in shown
    assert "training" in capsys.readouterr().err
