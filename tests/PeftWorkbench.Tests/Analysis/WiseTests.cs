using PeftWorkbench.Analysis;
using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Tests.Analysis;

public class WiseTests
{
    static readonly TrainOptions Short = new() { Epochs = 2, WarmupEpochs = 0, BatchSize = 16, Lr = 1e-2, WeightDecay = 1e-4 };

    static bool Same(EvalResult a, EvalResult b) => a.Logits.shape.SequenceEqual(b.Logits.shape) && a.Logits.eq(b.Logits).all().item<bool>();

    [Theory]
    [InlineData("full")]
    [InlineData("lora")]
    public void Alpha_0_and_1_are_the_two_end_models_exactly(string method)
    {
        using var train = TinyData.Set(48, seed: 1);
        using var eval = TinyData.Set(20, seed: 2);
        using var reference = TinyData.Vit(seed: 5);           // the start model, untouched
        var vit = TinyData.Vit(seed: 5);
        using var head = HeadSnapshot.Capture(vit);
        using var model = PeftApi.Attach(vit, method, seed: 5);
        Trainer.Fit(model, train, null, Short);
        using var tuned = Trainer.Evaluate(model, eval);
        using var start = Trainer.Evaluate(reference, eval);
        using var at0 = Wise.Evaluate(model, head, 0, eval);
        using var at1 = Wise.Evaluate(model, head, 1, eval);
        using var atHalf = Wise.Evaluate(model, head, 0.5, eval);
        Assert.True(Same(at0, start), "alpha 0 must be the start model exactly");
        Assert.True(Same(at1, tuned), "alpha 1 must be the fine-tuned model exactly");
        Assert.False(Same(atHalf, tuned));
        Assert.False(Same(start, tuned)); // training moved the model
        // Strength and head are restored after each alpha.
        using var again = Trainer.Evaluate(model, eval);
        Assert.True(Same(again, tuned));
        var curve = Wise.Curve(model, head, eval, new Dictionary<string, ImageSet> { ["same"] = eval }, new[] { 0.0, 1.0 });
        Assert.Equal(start.Top1, curve.Points[0].Target);
        Assert.Equal(tuned.Top1, curve.Points[1].MeanShift);
    }

    [Theory]
    [InlineData("full")]       // merged once per alpha (selected tensors)
    [InlineData("lora")]       // merged once per alpha (mergeable modules)
    [InlineData("vpt_deep")]   // output interpolation: two backbone passes in all
    [InlineData("adaptformer")] // neither: Strength as it stands
    public void The_fast_curve_gives_the_plain_logits_at_every_alpha(string method)
    {
        using var train = TinyData.Set(48, seed: 1);
        using var a = TinyData.Set(20, seed: 2);
        using var b = TinyData.Set(13, seed: 3); // a last batch shorter than the rest
        var vit = TinyData.Vit(seed: 5);
        using var head = HeadSnapshot.Capture(vit);
        var hp = method == "adaptformer" ? new Dictionary<string, string> { ["adapter_bottleneck"] = "8" } : null; // the tiny ViT is 16 wide
        using var model = PeftApi.Attach(vit, method, hp, seed: 5);
        Trainer.Fit(model, train, null, Short);
        var sets = new[] { a, b };
        var fast = new Dictionary<(int, int), List<Tensor>>();
        Wise.Sweep(model, head, sets, Wise.DefaultAlphas, 8, (ai, si, y) =>
            (fast.TryGetValue((ai, si), out var l) ? l : fast[(ai, si)] = new()).Add(y.clone().DetachFromDisposeScope()));
        for (int ai = 0; ai < Wise.DefaultAlphas.Count; ai++)
            for (int si = 0; si < sets.Length; si++)
            {
                double alpha = Wise.DefaultAlphas[ai];
                // The same batch size on both paths: MKL's kernels round differently for different batch sizes (2e-8
                // here with its AVX2 path), and the claim is about the weights at each alpha, not about batching.
                using var plain = Wise.Evaluate(model, head, alpha, sets[si], batchSize: 8);
                using var got = torch.cat(fast[(ai, si)], 0);
                double diff = got.sub(plain.Logits).abs().max().item<float>();
                if (alpha is 0 or 1) Assert.True(diff == 0, $"{method} alpha {alpha}: the fast path must give the end model exactly, max |diff| {diff}");
                else Assert.True(diff <= 1e-5, $"{method} alpha {alpha} set {si}: max |logit diff| {diff}");
            }
        // Top-1 of the fast curve equals the plain curve's, and the model is left as it was.
        var shifts = new Dictionary<string, ImageSet> { ["b"] = b };
        var slow = Wise.CurvePlain(model, head, a, shifts);
        var quick = Wise.Curve(model, head, a, shifts, batchSize: 8);
        Assert.Equal(slow.Points.Select(p => (p.Alpha, p.Target, p.MeanShift)), quick.Points.Select(p => (p.Alpha, p.Target, p.MeanShift)));
        Assert.Equal(1.0, model.Strength);
        Assert.False(model.IsMerged);
    }

    [Fact]
    public void Known_points_are_taken_and_curves_round_trip_through_their_file()
    {
        using var a = TinyData.Set(20, seed: 2);
        var vit = TinyData.Vit(seed: 5);
        using var model = PeftApi.Attach(vit, "lora", seed: 5);
        var given = new WisePoint(0, 12.5, new Dictionary<string, double> { ["a"] = 50 });
        var curve = Wise.Curve(model, null, a, new Dictionary<string, ImageSet> { ["a"] = a }, new[] { 0.0, 1.0 }, known: new Dictionary<double, WisePoint> { [0] = given });
        Assert.Equal(12.5, curve.Points[0].Target);
        Assert.Equal(curve.Points[1].Target, curve.Points[1].Shifts["a"]);
        var dir = Path.Combine(Path.GetTempPath(), "wise-curve-" + Guid.NewGuid().ToString("N"));
        try
        {
            Assert.Null(CurveFile.Read(dir));
            CurveFile.Write(dir, curve);
            var back = CurveFile.Read(dir)!;
            Assert.Equal(curve.Points.Select(p => (p.Alpha, p.Target, p.Shifts["a"])), back.Points.Select(p => (p.Alpha, p.Target, p.Shifts["a"])));
            File.WriteAllText(Path.Combine(dir, CurveFile.FileName), "{\"Method\":1");
            var e = Assert.Throws<InvalidDataException>(() => CurveFile.Read(dir));
            Assert.Contains(CurveFile.FileName, e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_robustness_run_name_changes_with_what_the_curve_depends_on()
    {
        var o = Robustness.DefaultTraining;
        var name = Robustness.RunName("lora", null, o, Wise.DefaultAlphas, Robustness.DefaultShifts);
        Assert.StartsWith("lora-", name);
        Assert.Equal(name, Robustness.RunName("lora", new Dictionary<string, string>(), o, Wise.DefaultAlphas, Robustness.DefaultShifts));
        Assert.NotEqual(name, Robustness.RunName("lora", null, o with { Lr = 2e-3 }, Wise.DefaultAlphas, Robustness.DefaultShifts));
        Assert.NotEqual(name, Robustness.RunName("lora", new Dictionary<string, string> { ["lora_r"] = "4" }, o, Wise.DefaultAlphas, Robustness.DefaultShifts));
        Assert.NotEqual(name, Robustness.RunName("lora", null, o, new[] { 0.0, 1.0 }, Robustness.DefaultShifts));
        Assert.NotEqual(name, Robustness.RunName("lora", null, o, Wise.DefaultAlphas, new[] { "digits" }));
    }

    /// <summary>Issue 23: RunName no longer sets the thread's culture around the record's ToString; the name stays the one
    /// stores were written under (computed here the old way) under any culture, and the caller's culture is left alone.</summary>
    [Fact]
    public void A_robustness_run_name_is_the_one_stores_were_written_under_whatever_the_culture()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var o = Robustness.DefaultTraining with { Lr = 1.5e-3, LabelSmoothing = 0.1, ClipGradNorm = 2.5, Device = torch.CPU };
        var alphas = new[] { 0.0, 0.25, 1.0 };
        string Before() // RunName as it was: the record's ToString with the invariant culture set around it
        {
            var saved = System.Globalization.CultureInfo.CurrentCulture;
            System.Globalization.CultureInfo.CurrentCulture = inv;
            try
            {
                var key = string.Join("\n", Robustness.Task, "lora", "lora_r=4", (o with { Device = null }).ToString(), string.Join(",", alphas.Select(x => x.ToString("R"))),
                    string.Join(",", Robustness.DefaultShifts), "200", Workbench.Version);
                return "lora-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..12];
            }
            finally { System.Globalization.CultureInfo.CurrentCulture = saved; }
        }
        var expected = Before();
        var outer = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            foreach (var name in new[] { "de-DE", "fr-FR", "" })
            {
                var culture = System.Globalization.CultureInfo.GetCultureInfo(name);
                System.Globalization.CultureInfo.CurrentCulture = culture;
                // "mini" wrote its stores with no backbone in the key, and keeps that name now that "mini-hand" is the default.
                Assert.Equal(expected, Robustness.RunName("lora", new Dictionary<string, string> { ["lora_r"] = "4" }, o, alphas, Robustness.DefaultShifts, 200, backbone: "mini"));
                Assert.NotEqual(expected, Robustness.RunName("lora", new Dictionary<string, string> { ["lora_r"] = "4" }, o, alphas, Robustness.DefaultShifts, 200));
                Assert.Same(culture, System.Globalization.CultureInfo.CurrentCulture);
            }
        }
        finally { System.Globalization.CultureInfo.CurrentCulture = outer; }
    }

    /// <summary>Issue 23: no library code sets the process's or a thread's culture (a notebook's cells run beside it);
    /// what must not depend on the culture formats with an explicit provider.</summary>
    [Fact]
    public void No_source_sets_a_current_culture()
    {
        var src = Path.Combine(PeftWorkbench.Tests.TestPaths.Repo, "src");
        var setters = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((l, i) => (f, i, l)))
            .Where(x => System.Text.RegularExpressions.Regex.IsMatch(x.l, @"\b(CurrentCulture|CurrentUICulture|DefaultThreadCurrentCulture|DefaultThreadCurrentUICulture)\s*=[^=>]"))
            .Select(x => $"{Path.GetRelativePath(src, x.f)}:{x.i + 1}").ToList();
        Assert.Empty(setters);
    }

    [Fact]
    public void Robustness_fine_tuning_at_alpha_0_is_the_zero_shot_model()
    {
        // 32 px images of 10 classes stand in for MNIST: what matters is the start (the shipped ViT's digit head).
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var images = torch.rand(new long[] { 32, 3, 32, 32 }, generator: gen) * 2 - 1;
        var labels = torch.arange(32, ScalarType.Int64) % 10;
        using var train = new ImageSet(images, labels, 10, "train");
        using var run = Robustness.FineTune("lora", Short with { Epochs = 1 }, train: train);
        using var zeroShot = Robustness.ZeroShotModel();
        using var expected = Trainer.Evaluate(zeroShot, train);
        using var at0 = Wise.Evaluate(run.Model, run.ZeroShotHead, 0, train);
        using var at1 = Wise.Evaluate(run.Model, run.ZeroShotHead, 1, train);
        Assert.True(Same(at0, expected));
        Assert.False(Same(at1, expected));
    }

    /// <summary>Issue 23: the fixed-lr fine-tuning trains through Protocol.RunTrial (a final at given hyperparameters) and
    /// trains what its own loop trained before: Trainer.Fit on the zero-shot model with the method attached, on MNIST
    /// train800val200, with the options as given (lr, wd, seed, epochs, warmup); the test evaluation the final adds changes
    /// nothing. The linear probe goes through RunTrial's feature cache (the shipped backbone has no stochastic layers).</summary>
    [Theory]
    [InlineData("lora")]
    [InlineData("linear")]
    public void A_fixed_lr_robustness_fine_tuning_trains_what_the_loop_trains_on_the_zero_shot_model(string method)
    {
        var options = Robustness.DefaultTraining with { Epochs = 2, WarmupEpochs = 1, BatchSize = 64, Lr = 3e-3, WeightDecay = 1e-3, Seed = 7 };
        using var run = Robustness.FineTune(method, options);
        // Before (Robustness.FineTune up to 91f8ce2): its own call of the loop.
        using var train = Suite.Mini.LoadSplit(Robustness.Task, "train800val200");
        using var model = PeftApi.Attach(Robustness.ZeroShotModel(), method, seed: options.Seed);
        using var start = PeftApi.Attach(Robustness.ZeroShotModel(), method, seed: options.Seed);
        Trainer.Fit(model, train, null, options);
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var initial = start.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var got = run.Model.named_parameters().ToList();
        Assert.Equal(expected.Keys.Order(), got.Select(p => p.name).Order());
        double Diff(Tensor a, Tensor b) { using var d = (a - b).abs().max(); return d.item<float>(); }
        var worst = got.Max(p => Diff(p.parameter, expected[p.name]));
        Assert.True(worst <= 1e-6, $"{method}: trained weights differ from the loop's by up to {worst}");
        Assert.Contains(got, p => p.parameter.requires_grad && Diff(p.parameter, initial[p.name]) > 1e-4); // it trained
    }

    /// <summary>Issue 23: through Protocol.RunTrial the fixed-lr fine-tuning still throws what it threw: a divergence names
    /// its lr, a failure in training names the lr and the cause, a bad hyperparameter is an ArgumentException before any
    /// training, cancellation an OperationCanceledException.</summary>
    [Fact]
    public void A_fixed_lr_robustness_fine_tuning_names_a_divergence_and_a_failure_and_cancels()
    {
        var o = Short with { Epochs = 1 };
        using var scope = NewDisposeScope();
        using var nan = new ImageSet(torch.full(new long[] { 32, 3, 32, 32 }, float.NaN), torch.arange(32, ScalarType.Int64) % 10, 10, "nan");
        var diverged = Assert.Throws<InvalidOperationException>(() => Robustness.FineTune("lora", o, train: nan));
        Assert.Equal($"robustness fine-tuning of lora diverged (lr {o.Lr}).", diverged.Message);
        using var twelve = new ImageSet(torch.zeros(32, 3, 32, 32), torch.arange(32, ScalarType.Int64) % 12, 12, "twelve");
        var failed = Assert.Throws<InvalidOperationException>(() => Robustness.FineTune("lora", o, train: twelve));
        Assert.StartsWith($"robustness fine-tuning of lora failed (lr {o.Lr}): ArgumentException: ", failed.Message);
        Assert.Contains("12 classes", failed.Message);
        var bad = Assert.Throws<ArgumentException>(() => Robustness.FineTune("lora", o, new Dictionary<string, string> { ["lora_bottleneck"] = "many" }));
        Assert.Contains("lora_bottleneck", bad.Message);
        Assert.Throws<ArgumentException>(() => Robustness.FineTune("lora", o with { StopAfterEpochs = 1 }));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => Robustness.FineTune("lora", o, cancel: cancelled.Token));
    }

    /// <summary>Issue 27: a robustness fine-tuning selects its lr as the protocol does (Protocol.Select over val200 tune
    /// trials) and hands back the selected model, not the last one trained: it scores on val200 exactly what its record says.</summary>
    [Fact]
    public void A_selected_robustness_fine_tuning_keeps_the_model_of_the_selected_trial()
    {
        var select = new Robustness.LrSelection(new[] { 1e-2, 1e-6 });
        using var tuned = Robustness.FineTuneSelected("bitfit", Short with { Epochs = 1, BatchSize = 32 }, select);
        Assert.Equal(new[] { 1e-2, 1e-6 }, tuned.Tuning.Select(t => t.Config.Lr));
        Assert.All(tuned.Tuning, t => Assert.Equal((1, "tune", Robustness.TrialProtocol), (t.EvalCurve!.Length, t.Config.Phase, t.Config.Protocol)));
        Assert.Same(PeftWorkbench.Tuning.Protocol.Select(tuned.Tuning), tuned.Selected);
        using var val = Suite.Mini.LoadSplit(Robustness.Task, "val200");
        using var scored = Trainer.Evaluate(tuned.Run.Model, val);
        Assert.Equal(tuned.Selected.Top1Last!.Value, scored.Top1, 6);
        Assert.Throws<ArgumentException>(() => Robustness.FineTuneSelected("bitfit", Short, new Robustness.LrSelection(Array.Empty<double>())));
        // Its trials are the protocol's tune trials (Protocol.RunTrial), under the same keys the protocol gives them.
        var o = new PeftWorkbench.Tuning.ProtocolOptions { Profile = "default", Protocol = Robustness.TrialProtocol, Train = Short with { Epochs = 1, BatchSize = 32 },
            Lrs = select.Lrs, WeightDecays = new[] { Short.WeightDecay }, DropPaths = new[] { 0.0 } };
        Assert.Equal(PeftWorkbench.Tuning.Protocol.TuneConfigs(Robustness.Task, "bitfit", null, o).Select(c => c.Key), tuned.Tuning.Select(t => t.Key));
        var bad = Assert.Throws<ArgumentException>(() => Robustness.FineTuneSelected("lora", Short, select, new Dictionary<string, string> { ["lora_bottleneck"] = "many" }));
        Assert.Contains("lora_bottleneck", bad.Message);
    }
}
