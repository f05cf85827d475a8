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
