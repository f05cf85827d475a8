using PeftWorkbench.Checkpoints;
using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;
using TorchSharp;

namespace PeftWorkbench.Tests.Tuning;

public class ProtocolTests
{
    internal static ProtocolOptions Tiny(string profile = "smoke") => ProtocolOptions.Vtab1k(profile) with
    {
        Train = new TrainOptions { Epochs = 3, WarmupEpochs = 1, BatchSize = 16, Device = torch.CPU },
        Lrs = new[] { 1e-3, 1e-2 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0 }, FinalEvalEvery = 1,
    };

    static TrialRecord Fake(double? top1, long parameters, double lr, double wd = 1e-4, string status = "ok", string hp = "") => new()
    {
        Key = $"k/lr={lr}/wd={wd}/p={parameters}/{hp}",
        Config = new TrialConfig { Task = "t", Method = "m", Lr = lr, WeightDecay = wd, Hp = TrialConfig.ParseHp(hp.Length > 0 ? new[] { hp } : Array.Empty<string>()) },
        Top1Last = top1, TrainableParams = parameters, Status = status,
    };

    [Fact]
    public void SelectionTakesBestValThenFewerParamsThenSmallerLr()
    {
        var records = new[]
        {
            Fake(80.5, 1000, 1e-3, hp: "r=16"),
            Fake(81.0, 2000, 1e-3, hp: "r=32"),
            Fake(81.0, 1000, 1e-2, hp: "r=16"),  // ties on top-1 with the r=32 one: fewer params wins
            Fake(81.0, 1000, 1e-3, wd: 1e-3, hp: "r=16"), // ...and on params: smaller lr wins
            Fake(81.0, 1000, 1e-3, wd: 1e-4, hp: "r=16"), // ...and on lr: smaller wd wins
            Fake(99.0, 10, 1e-3, status: "diverged"),
            Fake(null, 10, 1e-3, status: "error"),
        };
        var best = Protocol.Select(records)!;
        Assert.Equal((81.0, 1000L, 1e-3, 1e-4), (best.Top1Last!.Value, best.TrainableParams, best.Config.Lr, best.Config.WeightDecay));
        // Order of the input does not matter.
        Assert.Same(best, Protocol.Select(records.Reverse()));
        Assert.Null(Protocol.Select(new[] { Fake(99, 1, 1e-3, status: "diverged"), Fake(null, 1, 1e-3, status: "error") }));
    }

    [Fact]
    public void TuneConfigsCrossTheMethodGridWithLrWdAndDropPath()
    {
        var grid = new[] { TrialConfig.ParseHp(new[] { "r=8" }), TrialConfig.ParseHp(new[] { "r=16" }) };
        var o = ProtocolOptions.Vtab1k("paper");
        var configs = Protocol.TuneConfigs("cifar", "lora", grid, o);
        Assert.Equal(2 * 2 * 2, configs.Count);
        Assert.Equal(configs.Count, configs.Select(c => c.Key).Distinct().Count());
        Assert.All(configs, c => Assert.Equal(0.1, c.DropPath));
        Assert.Equal(3 * 2 * 2, Protocol.TuneConfigs("c", "m", null, ProtocolOptions.ManyShot("paper")).Count);
        Assert.Equal(new[] { 0.0, 0.1, 0.2 }, ProtocolOptions.ManyShot("paper").DropPaths);
        Assert.Equal(40, ProtocolOptions.ManyShot("paper").Train.Epochs);
    }

    [Fact]
    public void EveryProfileHasBudgetsForBothProtocols()
    {
        foreach (var profile in TrainOptions.Profiles)
        {
            TrainOptions.ForProfile(profile).Validate();
            Assert.Equal(profile, ProtocolOptions.Vtab1k(profile).Profile);
            Assert.Equal("manyshot", ProtocolOptions.ManyShot(profile).Protocol);
        }
        // mini-full: the study's lr x wd grid and per-epoch schedule shape, best-epoch test evaluation.
        var full = ProtocolOptions.Vtab1k("mini-full");
        Assert.Equal(4, Protocol.TuneConfigs("c", "lora", PeftFactory.Grid("lora", "mini-full"), full).Count);
        Assert.Equal((20, 2, ScheduleStepping.PerEpoch), (full.Train.Epochs, full.Train.WarmupEpochs, full.Train.Stepping));
        Assert.Equal(1, full.FinalEvalEvery);
        Assert.Throws<ArgumentException>(() => ProtocolOptions.Vtab1k("fast"));
    }

    sealed class Counting(ModelFactory inner)
    {
        public readonly List<TrialConfig> Calls = new();
        public BuiltModel Build(TrialConfig c, int k) { Calls.Add(c); return inner(c, k); }
    }

    [Fact]
    public void Vtab1kTunesSelectsRetrainsAndAStoreMakesItResumable()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var dir = Temp.Dir();
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        var o = Tiny();
        var store = new ResultsStore(dir);
        var r = Protocol.Vtab1k(task, "full", null, counting.Build, o, store);

        Assert.Equal(2, r.Tuning.Count);
        Assert.All(r.Tuning, t => Assert.Equal("tune", t.Config.Phase));
        Assert.Equal(Protocol.Select(r.Tuning)!.Key, r.Selected!.Key);
        Assert.Equal("final", r.Final.Config.Phase);
        Assert.Equal(r.Selected.Config.Lr, r.Final.Config.Lr);
        Assert.NotNull(r.Final.Top1Last);
        Assert.True(r.Final.Top1Best >= r.Final.Top1Last);
        Assert.Equal(3, counting.Calls.Count);
        Assert.Equal(TinyData.Vit().named_parameters().Where(p => !p.name.StartsWith("head.")).Sum(p => p.parameter.numel()), r.Final.TrainableParams);

        // Test logits and labels of the final run, as safetensors.
        var preds = SafetensorsFile.Open(Path.Combine(dir, r.Final.Predictions!));
        using (var logits = preds.Read("logits")) Assert.Equal(new long[] { task.Test.Count, 3 }, logits.shape);
        using (var labels = preds.Read("labels")) Assert.Equal(task.Test.Labels.data<long>().ToArray(), labels.data<long>().ToArray());

        // A rerun trains nothing and returns the same records.
        var again = Protocol.Vtab1k(task, "full", null, counting.Build, o, store);
        Assert.Equal(3, counting.Calls.Count);
        Assert.Equal(r.Tuning.Select(t => t.Top1Last), again.Tuning.Select(t => t.Top1Last));
        Assert.Equal(r.Final.Key, again.Final.Key);
        Assert.Equal(3, store.Records().Count);
    }

    /// <summary>Issue 23: a final at given hyperparameters (Protocol.GivenFinal, Robustness.FineTune's) selects nothing:
    /// RunTrial trains it as it is, on train800val200 scored on test, where a selected final without its tune trials is
    /// refused; its key names the hyperparameters it trains and is never a selected final's.</summary>
    [Fact]
    public void A_given_final_trains_as_given_and_is_keyed_by_what_it_trains()
    {
        var o = Tiny() with { Train = Tiny().Train with { Lr = 1e-2, WeightDecay = 1e-3, Seed = 5 } };
        var hp = new Dictionary<string, string> { ["lora_bottleneck"] = "4" };
        var given = Protocol.GivenFinal("tiny-task", "lora", hp, o);
        Assert.True(Protocol.IsGiven(given));
        Assert.Equal(("final", 1e-2, 1e-3, 5L, "4"), (given.Phase, given.Lr, given.WeightDecay, given.Seed, given.Hp["lora_bottleneck"]));
        Assert.Equal(given.Key, Protocol.GivenFinal("tiny-task", "lora", new Dictionary<string, string>(hp), o).Key);
        var others = new[]
        {
            Protocol.GivenFinal("tiny-task", "lora", null, o),
            Protocol.GivenFinal("tiny-task", "lora", hp, o with { Train = o.Train with { Lr = 1e-3 } }),
            Protocol.GivenFinal("tiny-task", "lora", hp, o with { Train = o.Train with { WeightDecay = 1e-4 } }),
            Protocol.GivenFinal("tiny-task", "lora", hp, o with { Train = o.Train with { Seed = 6 } }),
            Protocol.GivenFinal("tiny-task", "lora", hp, o, dropPath: 0.1),
        };
        var selected = Protocol.PendingFinal("tiny-task", "lora", o, Protocol.TuneConfigs("tiny-task", "lora", null, o).Select(c => c.Key));
        Assert.False(Protocol.IsGiven(selected));
        var keys = others.Append(given).Append(selected).Select(c => c.Key).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());

        using var task = TinyData.Task();
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        Assert.Throws<ArgumentException>(() => Protocol.RunTrial(selected, task, factory, o, null, null, default));
        var record = Protocol.RunTrial(given, task, factory, o, null, null, default);
        Assert.True(record.Ok, record.Error);
        Assert.Equal((given.Key, "final", o.TrainFor(given).Epochs), (record.Key, record.Config.Phase, record.Epochs));
        Assert.Equal(given, record.Config);
    }

    [Fact]
    public void DivergedTrialsAreRecordedAndNeverSelected()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 16);
        var o = Tiny() with { Lrs = new[] { 1e-2, 1e6 }, Train = Tiny().Train with { Optimizer = "sgd", Epochs = 8, WarmupEpochs = 0 } };
        var r = Protocol.Vtab1k(task, "full", null, new PeftFactory(TinyData.Config(), null).Build, o);
        Assert.Equal("diverged", r.Tuning.Single(t => t.Config.Lr == 1e6).Status);
        Assert.Equal(1e-2, r.Final.Config.Lr);
    }

    [Fact]
    public void ManyShotHoldsOutASeededTenPercent()
    {
        using var images = torch.arange(50 * 3 * 8 * 8, dtype: torch.float32).reshape(50, 3, 8, 8);
        using var set = new ImageSet(images, torch.arange(50, dtype: torch.int64) % 5, 5, "many");
        var (train, val) = Protocol.ValidationSplit(set, 0.1, 42);
        using (train) using (val)
        {
            Assert.Equal((45L, 5L), (train.Count, val.Count));
            var firstPixel = (ImageSet s) => s.Images[.., 0, 0, 0].data<float>().ToArray();
            Assert.Equal(50, firstPixel(train).Concat(firstPixel(val)).Distinct().Count());
            var (_, val2) = Protocol.ValidationSplit(set, 0.1, 42);
            using (val2) Assert.Equal(firstPixel(val), firstPixel(val2));
        }
        Assert.Throws<ArgumentException>(() => Protocol.ValidationSplit(set, 1.5, 1));
    }
}

static class Temp
{
    public static string Dir()
    {
        var d = Path.Combine(Path.GetTempPath(), "peft-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }
}
