using PeftWorkbench.Fuzz;

namespace PeftWorkbench.Kernel.Tests;

/// <summary>Every command answers bad input with one "error:" line and exit code 2, never "Unhandled exception" and a
/// stack trace (`peft data preview` printed one for each of 21 bad inputs).</summary>
public class CliGuardTests
{
    [Fact]
    public void BadInputToEveryCommandIsOneErrorLine()
    {
        using var temp = new TempDir();
        var badJson = Path.Combine(temp.Path, "bad.json");
        File.WriteAllText(badJson, "{ not json");
        var badNotebook = Path.Combine(temp.Path, "bad.ipynb");
        File.WriteAllText(badNotebook, "{ not json");
        var png = Path.Combine(temp.Path, "x.png");
        var cases = new[]
        {
            new[] { "data", "preview", "--task", "no-such-task", "--out", png },
            new[] { "data", "preview", "--task", "mnist", "--split", "no-such-split", "--out", png },
            new[] { "data", "list", "--vtab", Path.Combine(temp.Path, "missing") },
            new[] { "data", "list", "--vtab", temp.Path },
            new[] { "vit", "summary", "--preset", "no-such-preset" },
            new[] { "vit", "forward", "--preset", "no-such-preset" },
            new[] { "kernel", "run", "-f", Path.Combine(temp.Path, "missing.json") },
            new[] { "kernel", "run", "-f", badJson },
            new[] { "notebooks", "run", badNotebook, "--out", temp.Path },
            new[] { "notebooks", "run", badNotebook, "--out", temp.Path, "--cell-timeout", "-1" },
            new[] { "methods", "no-such-method" },
            new[] { "params", "--method", "no-such-method" },
            new[] { "bench", "train", "--preset", "no-such-preset" },
            new[] { "pretrain", "--recipe", "no-such-recipe" },
        };
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(cases, new ParallelOptions { MaxDegreeOfParallelism = 3 }, args =>
        {
            var (code, stdout, stderr) = Tools.Run(Tools.Dotnet, new[] { Tools.Peft }.Concat(args), timeoutSeconds: 180);
            var line = $"peft {string.Join(' ', args)} -> {code}: {stderr.Trim()}";
            if (code != 2 || stderr.Contains("Unhandled exception") || stderr.Contains("   at ") || stderr.Trim().Length == 0)
                failures.Add(line);
        });
        Assert.True(failures.IsEmpty, string.Join("\n\n", failures));
        FuzzTable.Record("cli", "bad input to each command", cases.Length, cases.Length, "11");
    }
}
