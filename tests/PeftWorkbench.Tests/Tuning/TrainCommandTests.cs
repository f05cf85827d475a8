using PeftWorkbench.Tests.Training;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>`peft train` as a user runs it.</summary>
public class TrainCommandTests
{
    [Fact]
    public void OutNoneTrainsIntoATemporaryStoreNotAFolderNamedNone()
    {
        var cwd = Temp.Dir();
        var psi = PeftCli.Info("dotnet", new[] { PeftCli.Dll, "train", "--suite", "toy", "--task", "toy-3", "--method", "linear",
            "--profile", "smoke", "--checkpoint", "none", "--out", "none" });
        psi.WorkingDirectory = cwd;
        var (code, output) = PeftCli.Run(psi, TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        Assert.False(Directory.Exists(Path.Combine(cwd, "none")), output);
        Assert.Contains("store " + Path.Combine(Path.GetTempPath(), "peft-runs"), output);
    }

    [Fact]
    public void TrainImagesTrainsOnTheSubsetAndASizeBeyondTheSplitIsRefusedNamingIt()
    {
        var store = Path.Combine(Temp.Dir(), "store");
        string[] Args(int n) => new[] { PeftCli.Dll, "train", "--suite", "toy", "--task", "toy-3", "--method", "linear",
            "--profile", "smoke", "--checkpoint", "none", "--out", store, "--train-images", n.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var (code, output) = PeftCli.Run(PeftCli.Info("dotnet", Args(30)), TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, code);
        Assert.Contains("Training-set size 30 is larger than task 'toy-3''s training split (train800 holds 24 images)", output);
        Assert.False(Directory.Exists(store), output);
        (code, output) = PeftCli.Run(PeftCli.Info("dotnet", Args(12)), TimeSpan.FromMinutes(2));
        Assert.True(code == 0, output);
        Assert.Contains("linear on toy-3 (12 training images), profile smoke", output);
        Assert.Contains("vtab1k/toy-3/linear/final/smoke/seed=42/n=12/grid=", File.ReadAllText(Path.Combine(store, "trials.jsonl")));
    }
}
