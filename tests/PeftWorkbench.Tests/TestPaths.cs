namespace PeftWorkbench.Tests;

/// <summary>Where things built beside the tests are.</summary>
public static class TestPaths
{
    /// <summary>The CLI's own build output (peft.dll), same configuration/framework/runtime folders as this test assembly.</summary>
    public static string CliDll()
    {
        var here = Path.GetDirectoryName(typeof(TestPaths).Assembly.Location)!;
        var parts = here.Split(Path.DirectorySeparatorChar);
        int bin = Array.LastIndexOf(parts, "bin");
        var repo = Path.GetFullPath(Path.Combine(here, string.Concat(Enumerable.Repeat("../", parts.Length - bin + 2))));
        var dll = Path.Combine(new[] { repo, "src", "PeftWorkbench.Cli", "bin" }.Concat(parts[(bin + 1)..]).Append("peft.dll").ToArray());
        Assert.True(File.Exists(dll), $"CLI not built at {dll}");
        return dll;
    }

    /// <summary>A file of TestData (copied next to the test assembly).</summary>
    public static string TestData(params string[] parts) =>
        Path.Combine(new[] { AppContext.BaseDirectory, "TestData" }.Concat(parts).ToArray());
}
