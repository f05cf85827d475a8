using System.Diagnostics;
using PeftWorkbench.Fuzz;
using PeftWorkbench.Tests.Data;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>
/// Issue 26 items 8 and 10 through the CLI: values the machine cannot honour (--threads or --workers 100000, --classes 2000000000),
/// an output path in a folder nobody may write to and one that names a device node. Each is a one-line error with exit
/// 2, no stack trace, the device left as it was.
/// </summary>
public class CliBoundsFuzzTests
{
    static string Shipped => Path.Combine(PeftCli.Repo, "src", "PeftWorkbench", "Pretrained", "mini.safetensors");

    static string StatType(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("stat", new[] { "-c", "%F", path }) { RedirectStandardOutput = true, UseShellExecute = false })!;
        var o = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return o;
    }

    [Fact]
    public void OutOfRangeValuesAndUnwritableTargetsAreOneLineErrors()
    {
        using var dir = new TempDir();
        var device = dir.File("null-device");
        bool haveDevice = Process.Start(new ProcessStartInfo("mknod", new[] { device, "c", "1", "3" }) { UseShellExecute = false, RedirectStandardError = true })!
            is var p && p.WaitForExit(10_000) && p.ExitCode == 0;
        var cases = new List<(string What, string[] Args, string Says)>
        {
            ("--threads 100000 (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--threads", "100000", "--out", dir.File("s") }, "100000"),
            ("--workers 100000 (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--workers", "100000", "--out", dir.File("w") }, "workers 100000: give 1 to"),
            ("--workers 0 (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--workers", "0", "--out", dir.File("w0") }, "workers 0: give 1 to"),
            ("--train-images 0 (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--train-images", "0", "--out", dir.File("n0") }, "got 0"),
            ("--train-images 99999 (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--train-images", "99999", "--out", dir.File("n9") }, "99999"),
            ("--train-images 50 --protocol manyshot (sweep)", new[] { "sweep", "--suite", "toy", "--tasks", "toy-3", "--methods", "linear", "--profile", "smoke", "--protocol", "manyshot", "--train-images", "50", "--out", dir.File("nm") }, "(50)"),
            ("--classes 2000000000 (export)", new[] { "vit", "export", "--preset", "mini", "--checkpoint", Shipped, "--classes", "2000000000", "--out", dir.File("x.safetensors") }, "2000000000"),
            ("--classes 2000000000 (summary)", new[] { "vit", "summary", "--preset", "mini", "--classes", "2000000000" }, "2000000000"),
            ("--out in a folder nobody may write", new[] { "vit", "export", "--preset", "mini", "--checkpoint", Shipped, "--out", "/proc/peft-export.safetensors" }, "/proc/"),
        };
        // `peft results STORE --reference MISSING` refuses before it prints the store's table.
        Directory.CreateDirectory(dir.File("store"));
        cases.Add(("--reference a missing store (results)", new[] { "results", dir.File("store"), "--reference", dir.File("no-reference") }, "no results store at"));
        if (haveDevice) cases.Add(("--out a device node", new[] { "vit", "export", "--preset", "mini", "--checkpoint", Shipped, "--out", device }, device));
        var outcomes = new Outcomes();
        var failures = new List<string>();
        foreach (var (what, args, says) in cases)
        {
            int code; string output;
            try { (code, output) = PeftCli.Peft(args, TimeSpan.FromSeconds(90)); } // a hang bound for the table, not a speed check
            catch (Xunit.Sdk.XunitException) { outcomes.Hang++; failures.Add($"{what}: still running after the bound"); continue; }
            var problems = new List<string>();
            if (code != 2) problems.Add($"exit {code}");
            if (!output.Contains(says)) problems.Add($"does not name {says}");
            if (output.Contains("   at ") || output.Contains("Unhandled exception")) problems.Add("a stack trace");
            if (output.Trim().Split('\n').Count(l => l.StartsWith("error") || l.Contains("rror:")) != 1) problems.Add("not one error line");
            if (args[0] == "results" && output.Trim().Split('\n').Length != 1) problems.Add("printed work before the error");
            // A refused sweep leaves no store behind (no manifest, budgets or identity to trip the next, valid run).
            if (args[0] == "sweep" && Directory.Exists(args[^1]) && Directory.EnumerateFileSystemEntries(args[^1]).Any())
                problems.Add($"left {string.Join(", ", Directory.EnumerateFileSystemEntries(args[^1]).Select(Path.GetFileName))} in the store");
            if (haveDevice && StatType(device) != "character special file") { outcomes.Injection++; failures.Add($"{what}: the device node was replaced"); continue; }
            if (problems.Count == 0) { outcomes.Clean++; continue; }
            if (code == 0) outcomes.SilentWrong++; else outcomes.Crash++;
            failures.Add($"{what}: {string.Join(", ", problems)}: {output.Trim()[..Math.Min(400, output.Trim().Length)]}");
        }
        FuzzTable.Record("cli", "--threads/--workers 100000, --classes 2e9, unwritable and device --out", outcomes, "26.8/10");
        Assert.True(failures.Count == 0, outcomes + "\n" + string.Join("\n", failures));
    }
}
