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
}
