using PeftWorkbench.Checkpoints;
using PeftWorkbench.Data;
using PeftWorkbench.Data.Upstream;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Tests.Pretraining;

public class ResumablePretrainingTests
{
    static readonly BroadRecipe Smoke = BroadRecipe.Get("smoke-broad");

    /// <summary>Cancels the run once it reports step <paramref name="at"/>, and calls <paramref name="onStep"/> on every report.</summary>
    sealed class StopAt(CancellationTokenSource cts, int at, Action<int>? onStep = null) : IProgress<PretrainStatus>
    {
        public void Report(PretrainStatus s) { onStep?.Invoke(s.Step); if (s.Step == at) cts.Cancel(); }
    }

    static byte[] Weights(string dir) => File.ReadAllBytes(Path.Combine(dir, "smoke-broad.safetensors"));

    static void Run(string dir, bool resume, BroadRecipe? recipe = null, IProgress<PretrainStatus>? progress = null, CancellationToken cancel = default)
    {
        var (model, _, _) = BroadPretraining.Run(recipe ?? Smoke, dir, resume, "test", progress: progress, cancel: cancel);
        model.Dispose();
    }

    [Fact]
    public void A_run_stopped_and_resumed_ends_with_the_same_bytes_as_one_never_stopped()
    {
        using var whole = new TempDir();
        using var stopped = new TempDir();
        using var crashed = new TempDir();
        Run(whole.Path, resume: false);

        // Cancelled after step 3 (between periodic checkpoints, in the second chunk of 3 batches): saved there, then resumed.
        using (var cts = new CancellationTokenSource())
            Run(stopped.Path, resume: false, progress: new StopAt(cts, 3), cancel: cts.Token);
        Assert.False(File.Exists(Path.Combine(stopped.Path, "smoke-broad.safetensors")));
        Assert.Equal("3", SafetensorsFile.Open(BroadPretraining.StatePath(stopped.Path, Smoke)).Metadata["step"]);
        Run(stopped.Path, resume: true);
        Assert.Equal(Weights(whole.Path), Weights(stopped.Path));

        // A crash after step 6: only the periodic checkpoint of step 4 survives, and the run goes on from there.
        string state = BroadPretraining.StatePath(crashed.Path, Smoke), kept = state + ".step4";
        using (var cts = new CancellationTokenSource())
            Run(crashed.Path, resume: false, progress: new StopAt(cts, 6, s => { if (s == 5) File.Copy(state, kept); }), cancel: cts.Token);
        File.Move(kept, state, overwrite: true);
        Assert.Equal("4", SafetensorsFile.Open(state).Metadata["step"]);
        Run(crashed.Path, resume: true);
        Assert.Equal(Weights(whole.Path), Weights(crashed.Path));

        // The state of the finished runs (weights, moments, step counts) agrees too, and the curves were kept across the stop.
        var a = SafetensorsFile.Open(BroadPretraining.StatePath(whole.Path, Smoke));
        var b = SafetensorsFile.Open(BroadPretraining.StatePath(stopped.Path, Smoke));
        Assert.Equal(a.Metadata["adam_steps"], b.Metadata["adam_steps"]);
        foreach (var key in a.Keys.Where(k => k.StartsWith("adam_v/")))
            Assert.True(a.Read(key).eq(b.Read(key)).all().item<bool>(), key);
        var record = System.Text.Json.Nodes.JsonNode.Parse(b.Metadata["record"])!;
        Assert.Equal(new[] { "5", "10" }, record["curves"]!.AsObject().Select(kv => kv.Key));
        // Each sitting is recorded with the steps it ran (the wall time and host of a run spread over sessions).
        var sittings = record["time"]!["sittings"]!.AsArray().Select(x => (x!["from_step"]!.GetValue<int>(), x["to_step"]!.GetValue<int>()));
        Assert.Equal(new[] { (0, 3), (3, 10) }, sittings);
    }

    [Fact]
    public void Resuming_with_another_data_seed_or_recipe_is_refused_naming_both()
    {
        using var dir = new TempDir();
        using (var cts = new CancellationTokenSource())
            Run(dir.Path, resume: false, progress: new StopAt(cts, 2), cancel: cts.Token);
        var e = Assert.Throws<InvalidOperationException>(() => Run(dir.Path, resume: true, recipe: Smoke with { DataSeed = 8 }));
        Assert.Contains("data seed 7", e.Message);
        Assert.Contains("data seed 8", e.Message);
        e = Assert.Throws<InvalidOperationException>(() => Run(dir.Path, resume: true, recipe: Smoke with { Lr = 2e-3 }));
        Assert.Contains(Smoke.Fingerprint(), e.Message);
        Assert.Contains((Smoke with { Lr = 2e-3 }).Fingerprint(), e.Message);
        // Without --resume an existing checkpoint is never overwritten.
        e = Assert.Throws<InvalidOperationException>(() => Run(dir.Path, resume: false));
        Assert.Contains("--resume", e.Message);
        Assert.Equal("2", SafetensorsFile.Open(BroadPretraining.StatePath(dir.Path, Smoke)).Metadata["step"]);
    }

    [Fact]
    public void Starting_from_the_shipped_mini_keeps_its_weights_and_its_character_rows_of_the_head()
    {
        using var dir = new TempDir();
        using var cts = new CancellationTokenSource();
        cts.Cancel(); // stop before the first step: the checkpoint holds the initial weights
        var recipe = Smoke with { InitFrom = "mini" };
        Run(dir.Path, resume: false, recipe: recipe, cancel: cts.Token);
        using var start = Backbones.Load(BroadPretraining.StatePath(dir.Path, recipe));
        using var mini = VisionTransformer.Pretrained("mini");
        Assert.Equal(62 + 8 + 16 + 10, start.Config.NumClasses);
        var theirs = mini.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in start.named_parameters())
            Assert.True(p.narrow(0, 0, theirs[name].shape[0]).eq(theirs[name]).all().item<bool>(), name);
        using var zeroShotTest = Suite.Mini.LoadSplit("mnist", "test");
        Assert.Equal(ZeroShot.DigitAccuracy(mini, zeroShotTest), ZeroShot.DigitAccuracy(start, zeroShotTest), 6);
    }

    [Fact]
    public void The_shipping_rule_needs_all_three_conditions()
    {
        var tasks = Enumerable.Range(0, 11).Select(i => $"t{i}").ToList();
        var good = tasks.Select(t => new ProbeRow(t, 80, 70, 50)).ToList();
        Assert.True(Backbones.ShippingRule(good, 92).Ships);
        Assert.False(Backbones.ShippingRule(good, 89.9).Ships);
        Assert.False(Backbones.ShippingRule(good, null).Ships);
        // At random init's level on one task: fails, and the reason names it.
        var tie = good.Select((r, i) => i == 3 ? r with { Candidate = 50 } : r).ToList();
        var (ships, reasons) = Backbones.ShippingRule(tie, 92);
        Assert.False(ships);
        Assert.Contains(reasons, l => l.Contains("t3"));
        // Behind the shipped mini on 2 tasks still ships (9 of 11), on 3 it does not.
        Assert.True(Backbones.ShippingRule(good.Select((r, i) => i < 2 ? r with { Shipped = 90 } : r).ToList(), 92).Ships);
        Assert.False(Backbones.ShippingRule(good.Select((r, i) => i < 3 ? r with { Shipped = 90 } : r).ToList(), 92).Ships);
        Assert.False(Backbones.ShippingRule(good.Take(10).ToList(), 92).Ships);
    }
}
