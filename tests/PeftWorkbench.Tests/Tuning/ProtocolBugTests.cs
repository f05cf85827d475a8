using PeftWorkbench.Data;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Training;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Two bugs found running `peft train` as a new user would (issue 10).</summary>
public class ProtocolBugTests
{
    sealed class Counting(ModelFactory inner)
    {
        public int Calls;
        public BuiltModel Build(TrialConfig c, int k) { Calls++; return inner(c, k); }
    }

    [Fact]
    public void AMisspelledHyperparameterIsRefusedBeforeAnyTrialRuns()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var counting = new Counting(new PeftFactory(TinyData.Config(), null).Build);
        var grid = new[] { TrialConfig.ParseHp(new[] { "lora_bottlenek=4" }) };
        var e = Assert.Throws<ArgumentException>(() => Protocol.Vtab1k(task, "lora", grid, counting.Build, ProtocolTests.Tiny()));
        Assert.Contains("'lora_bottlenek'", e.Message);
        Assert.Contains("lora_bottleneck", e.Message); // the method's known keys
        Assert.Equal(0, counting.Calls);
        // A value that cannot be read is refused the same way.
        grid = new[] { TrialConfig.ParseHp(new[] { "lora_bottleneck=four" }) };
        e = Assert.Throws<ArgumentException>(() => Protocol.Vtab1k(task, "lora", grid, counting.Build, ProtocolTests.Tiny()));
        Assert.Contains("four", e.Message);
        Assert.Equal(0, counting.Calls);
    }

    [Fact]
    public void ARerunWithOtherHyperparametersIntoTheSameStoreGetsItsOwnFinal()
    {
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        var store = new ResultsStore(Temp.Dir());
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        var o = ProtocolTests.Tiny() with { Lrs = new[] { 1e-2 } };
        var first = Protocol.Vtab1k(task, "lora", new[] { TrialConfig.ParseHp(new[] { "lora_bottleneck=2" }) }, factory, o, store);
        Assert.Equal("2", first.Final.Config.Hp["lora_bottleneck"]);
        var second = Protocol.Vtab1k(task, "lora", new[] { TrialConfig.ParseHp(new[] { "lora_bottleneck=4" }) }, factory, o, store);
        Assert.Equal("4", second.Final.Config.Hp["lora_bottleneck"]);
        Assert.NotEqual(first.Final.Key, second.Final.Key);
        // The first run's records stay, and a rerun of it reuses its final.
        var again = Protocol.Vtab1k(task, "lora", new[] { TrialConfig.ParseHp(new[] { "lora_bottleneck=2" }) }, factory, o, store);
        Assert.Equal(first.Final.Key, again.Final.Key);
        Assert.Equal(4, store.Records().Count);
    }
    [Fact]
    public void AnAugmentedLinearProbeTrainsThroughTheBackboneInsteadOfFailingOnCachedFeatures()
    {
        // Many-shot recipes augment images; cached features are [B, dim] and cannot be cropped (this was an "error" trial).
        using var task = ToySuite.Load("toy-3", 8, perClass: 8);
        ModelFactory factory = new PeftFactory(TinyData.Config(), null).Build;
        var o = ProtocolTests.Tiny() with { Lrs = new[] { 1e-2 }, LinearProbe = LinearProbePath.FeatureCache };
        var augmented = Protocol.Vtab1k(task, "linear", null, factory, o with { Train = o.Train with { Augment = ImageAugment.CropFlip } });
        Assert.All(augmented.Tuning.Append(augmented.Final), r => Assert.True(r.Ok, r.Error));
        Assert.True(Protocol.Vtab1k(task, "linear", null, factory, o).Final.Ok);
    }
}
