using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

public class HyperGridTests
{
    [Fact]
    public void AGridByTheStudysKeysBecomesTheMethodGridAndTheLrAndWdGrids()
    {
        var (method, lrs, wds) = HyperGrid.Split("lora", new Dictionary<string, string[]> { ["lora_bottleneck"] = new[] { "1", "8" }, ["lr"] = new[] { "1e-3", "0.01" } });
        Assert.Equal(new[] { "1", "8" }, method.Select(p => p["lora_bottleneck"]));
        Assert.Equal(new[] { 1e-3, 1e-2 }, lrs);
        Assert.Null(wds);
        var (adapter, _, _) = HyperGrid.Split("rand_h_adapter", new Dictionary<string, string[]> { ["adapter_scaler"] = new[] { "0.1", "1" }, ["adapter_bottleneck"] = new[] { "4", "8" } });
        Assert.Equal(new[] { "4/0.1", "4/1", "8/0.1", "8/1" }, adapter.Select(p => $"{p["adapter_bottleneck"]}/{p["adapter_scaler"]}"));
    }

    [Fact]
    public void TheDefaultGridIsLrTimesTheMethodsFirstKeyAndTheStudysWholeGridUnderPaper()
    {
        Assert.Equal("lora_bottleneck {1, 8, 16, 32} x lr {0.001, 0.003, 0.01, 0.03}: 16 tune trials", HyperGrid.Describe(HyperGrid.Default("lora", "default")));
        Assert.Equal("lora_bottleneck {1, 8} x lr {0.001, 0.01}: 4 tune trials", HyperGrid.Describe(HyperGrid.Default("lora", "smoke")));
        Assert.Equal("lr {0.001, 0.01} x wd {0.0001, 0.001}: 4 tune trials", HyperGrid.Describe(HyperGrid.Default("bitfit", "smoke")));
        Assert.Equal("adapter_bottleneck {4, 8, 16, 32} x adapter_scaler {0.01, 0.1, 1, 10} x lr {0.001, 0.01} x wd {0.0001, 0.001}: 64 tune trials",
            HyperGrid.Describe(HyperGrid.Default("rand_h_adapter", "paper")));
        var (method, _, _) = HyperGrid.Split("vpt_deep", HyperGrid.Default("vpt_deep", "default")); // the default grid passes validation
        Assert.Equal(4, method.Count);
    }

    [Theory]
    [InlineData("lr", "fast", "grid: lr value 'fast' is not a positive number.")]
    [InlineData("lr", "0", "grid: lr value '0' is not a positive number.")]
    [InlineData("wd", "-1", "grid: wd value '-1' is not a non-negative number.")]
    [InlineData("depth", "8", "Unknown hyperparameter 'depth' for method 'lora'. Allowed: lora_bottleneck")]
    public void BadGridsAreRefusedNamingTheKeyAndValue(string key, string value, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => HyperGrid.Split("lora", new Dictionary<string, string[]> { [key] = new[] { value } }));
        Assert.StartsWith(message, e.Message);
        Assert.Contains("'lr' has no values", Assert.Throws<ArgumentException>(() => HyperGrid.Split("lora", new Dictionary<string, string[]> { ["lr"] = Array.Empty<string>() })).Message);
    }

    [Fact]
    public void StudyRunTunesTheGivenGridAndRetrainsItsBest()
    {
        var grid = new Dictionary<string, string[]> { ["lora_bottleneck"] = new[] { "1", "4" }, ["lr"] = new[] { "1e-3", "3e-2" } };
        using var run = Study.Run("toy-3", "lora", "smoke", suite: "toy", checkpoint: "none", grid: grid);
        Assert.Equal(new[] { ("1", 1e-3), ("1", 3e-2), ("4", 1e-3), ("4", 3e-2) }, run.Tuning.Select(t => (t.Config.Hp["lora_bottleneck"], t.Config.Lr)));
        Assert.All(run.Tuning, t => Assert.Equal(1e-4, t.Config.WeightDecay)); // wd: the profile's
        Assert.Equal((run.Selected!.Config.Hp["lora_bottleneck"], run.Selected.Config.Lr), (run.Final.Config.Hp["lora_bottleneck"], run.Final.Config.Lr));
        Assert.Throws<ArgumentException>(() => Study.Run("toy-3", "lora", "smoke", suite: "toy", checkpoint: "none", grid: grid,
            hp: new Dictionary<string, string> { ["lora_bottleneck"] = "1" }));
    }
}

/// <summary>Issue 26: one key=value parser that the CLI, Study.Run and the registry share; lr and wd in --hp fix the run's
/// learning rate and weight decay; grid values that parse alike are one trial; big or null grids are clean errors.</summary>
public class HyperGridInputTests
{
    [Fact]
    public void OneKeyValueParserRefusesEmptyKeysValuesAndRepeats()
    {
        Assert.Equal(new Dictionary<string, string> { ["lora_bottleneck"] = "8", ["lr"] = "0.01" }, PeftWorkbench.Peft.MethodRegistry.ParsePairs(new[] { " lora_bottleneck = 8", "lr=0.01" }));
        foreach (var bad in new[] { "k=", "=v", "k", " = ", "k= " })
        {
            Assert.Contains($"'{bad}' is not of the form key=value", Assert.Throws<ArgumentException>(() => PeftWorkbench.Peft.MethodRegistry.ParsePairs(new[] { bad })).Message);
            Assert.Throws<ArgumentException>(() => TrialConfig.ParseHp(new[] { bad }));
        }
        Assert.Contains("'lr' is given twice", Assert.Throws<ArgumentException>(() => TrialConfig.ParseHp(new[] { "lr=1", "lr=2" })).Message);
    }

    [Fact]
    public void LrAndWdInHpFixTheRunsLearningRateAndWeightDecay()
    {
        var hp = TrialConfig.ParseHp(new[] { "lora_bottleneck=4", "lr=0.02", "wd=0" });
        using var run = Study.Run("toy-3", "lora", "smoke", hp: hp, suite: "toy", checkpoint: "none");
        Assert.Equal(new[] { ("4", 0.02, 0.0) }, run.Tuning.Select(t => (t.Config.Hp["lora_bottleneck"], t.Config.Lr, t.Config.WeightDecay)));
        Assert.DoesNotContain("lr", run.Final.Config.Hp.Keys);
        // The registry's own message says what a training key is, the same way.
        Assert.Contains("a run takes them as its learning rate", Assert.Throws<ArgumentException>(() => PeftWorkbench.Peft.MethodRegistry.Create("lora", new Dictionary<string, string> { ["depth"] = "1" })).Message);
    }

    [Fact]
    public void ValuesThatParseAlikeAreOneTrialAndBadGridsAreCleanErrors()
    {
        var (method, lrs, _) = HyperGrid.Split("lora", new Dictionary<string, string[]> { ["lora_bottleneck"] = new[] { "1", " 1", "1.0", "01" }, ["lr"] = new[] { "1e-2", "0.01 " } });
        Assert.Equal(new[] { "1" }, method.Select(p => p["lora_bottleneck"]));
        Assert.Equal(new[] { 0.01 }, lrs);
        Assert.Equal("lora_bottleneck {1} x lr {0.01}: 1 tune trials",
            HyperGrid.Describe(new Dictionary<string, string[]> { ["lora_bottleneck"] = new[] { "1", " 1", "1.0", "01" }, ["lr"] = new[] { "1e-2", "0.01" } }));

        Assert.Contains("'lora_bottleneck' has an empty or null value",
            Assert.Throws<ArgumentException>(() => HyperGrid.Split("lora", new Dictionary<string, string[]> { ["lora_bottleneck"] = new string[] { null! } })).Message);
        Assert.Equal("lora_bottleneck {null}: 1 tune trials", HyperGrid.Describe(new Dictionary<string, string[]> { ["lora_bottleneck"] = new string[] { null! } }));

        // 2,000 values on each of 4 keys: 16e12 trials, said exactly (an int product wrapped to a negative count) and refused before any is built.
        var huge = new Dictionary<string, string[]>
        {
            ["adapter_bottleneck"] = Enumerable.Range(1, 2000).Select(i => i.ToString()).ToArray(),
            ["adapter_scaler"] = Enumerable.Range(1, 2000).Select(i => (i / 10.0).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            ["lr"] = Enumerable.Range(1, 2000).Select(i => (i * 1e-5).ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            ["wd"] = Enumerable.Range(1, 2000).Select(i => (i * 1e-5).ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        };
        Assert.EndsWith(": 16000000000000 tune trials", HyperGrid.Describe(huge));
        Assert.Contains("16000000000000 tune trials", Assert.Throws<ArgumentException>(() => HyperGrid.Split("rand_h_adapter", huge)).Message);
    }
}
