namespace PeftWorkbench.Tests;

/// <summary>Where things built beside the tests are.</summary>
public static class TestPaths
{
    static readonly string Here = Path.GetDirectoryName(typeof(TestPaths).Assembly.Location)!;
    static string[] Parts => Here.Split(Path.DirectorySeparatorChar);
    static int Bin => Array.LastIndexOf(Parts, "bin");

    /// <summary>The repository root (tests/X/bin/CONFIG/TFM/RID -> ../../../../../..).</summary>
    public static string Repo => Path.GetFullPath(Path.Combine(Here, string.Concat(Enumerable.Repeat("../", Parts.Length - Bin + 2))));

    /// <summary>This test assembly's configuration/framework/runtime folders under bin/.</summary>
    public static string[] BuildFolders => Parts[(Bin + 1)..];

    /// <summary>The CLI's own build output (peft.dll), same configuration/framework/runtime folders as this test assembly.</summary>
    public static string CliDll()
    {
        var dll = Path.Combine(new[] { Repo, "src", "PeftWorkbench.Cli", "bin" }.Concat(BuildFolders).Append("peft.dll").ToArray());
        Assert.True(File.Exists(dll), $"CLI not built at {dll}");
        return dll;
    }

    /// <summary>A file of TestData (copied next to the test assembly).</summary>
    public static string TestData(params string[] parts) =>
        Path.Combine(new[] { AppContext.BaseDirectory, "TestData" }.Concat(parts).ToArray());
}
