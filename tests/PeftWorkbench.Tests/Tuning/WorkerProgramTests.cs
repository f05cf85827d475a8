using PeftWorkbench.Display;
using PeftWorkbench.Tests.Data;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Tests that empty PATH for this whole process: they run alone (other tests start `dotnet` by name).</summary>
[CollectionDefinition(nameof(WorkerProgramTests), DisableParallelization = true)]
public class WorkerProgramCollection { }

/// <summary>Worker processes are the library's own program (<see cref="PeftCommandLine.Worker"/>), not a `peft` on PATH.</summary>
[Collection(nameof(WorkerProgramTests))]
public class WorkerProgramTests
{
    static T WithoutPathOrPeftCli<T>(Func<T> run)
    {
        var (path, cli) = (Environment.GetEnvironmentVariable("PATH"), Environment.GetEnvironmentVariable("PEFT_CLI"));
        Environment.SetEnvironmentVariable("PATH", "");
        Environment.SetEnvironmentVariable("PEFT_CLI", null);
        try { return run(); }
        finally
        {
            Environment.SetEnvironmentVariable("PATH", path);
            Environment.SetEnvironmentVariable("PEFT_CLI", cli);
        }
    }

    /// <summary>Issue 16: RunAll's worker processes give the numbers RunAll gives in this process (same trial keys and
    /// seeds; the workers run 1 torch thread where this process runs several, so logits get a float tolerance), every
    /// trial trained once and none here, progress as one line, and the study's manifest gone afterwards. Issue 23: this
    /// host is not the CLI, PEFT_CLI is unset and PATH is empty while the workers run: they are the library's own
    /// program, found beside its assembly.</summary>
    [Fact]
    public void RunAllInWorkerProcessesEqualsRunAllInProcess()
    {
        using var dir = new TempDir();
        var root = StudyRunTests.TinyVtab(dir);
        var lines = new List<string>();
        IReadOnlyList<StudyRun> Go(string name, int workers) => Study.RunAll(new[] { "eurosat" }, new[] { "linear", "bitfit" }, "smoke",
            store: Path.Combine(dir.Path, name), suite: "vtab:" + root, checkpoint: "none", preset: "mini", seed: 5, workers: workers, progress: lines.Add);
        var here = Go("here", 1);
        Assert.DoesNotContain(lines, l => l.Contains("worker(s)"));
        var there = WithoutPathOrPeftCli(() => Go("workers", 2));
        Assert.Contains(lines, l => l.Contains("2 worker(s) x 1 thread(s)"));
        Assert.Contains(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\[\d+/\d+ trials\] \d worker\(s\)"));

        var records = new ResultsStore(Path.Combine(dir.Path, "workers")).Records();
        Assert.Equal(new ResultsStore(Path.Combine(dir.Path, "here")).Records().Count, records.Count);
        Assert.Equal(records.Count, records.Select(r => r.Key).Distinct().Count());
        Assert.DoesNotContain(records, r => r.Pid == Environment.ProcessId);
        Assert.Empty(Directory.GetFiles(Path.Combine(dir.Path, "workers"), "study-*.manifest.json"));

        Assert.Equal(here.Select(r => (r.Method, r.Final.Key, r.Final.Top1Last, r.Selected?.Key)), there.Select(r => (r.Method, r.Final.Key, r.Final.Top1Last, r.Selected?.Key)));
        Assert.Equal(here.SelectMany(r => r.Tuning.Select(t => (t.Key, t.Top1Last))), there.SelectMany(r => r.Tuning.Select(t => (t.Key, t.Top1Last))));
        foreach (var (a, b) in here.Zip(there))
        {
            var (x, y) = (a.Test!.Logits.data<float>().ToArray(), b.Test!.Logits.data<float>().ToArray());
            Assert.Equal(x.Length, y.Length);
            Assert.All(x.Zip(y), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-4 * (1 + Math.Abs(p.First)), $"{a.Method}: {p.First} vs {p.Second}"));
        }
        foreach (var r in here.Concat(there)) r.Dispose();
    }

    /// <summary>Issue 23: an Interrupt during RunAll's worker phase (the workers started, this process watching) ends
    /// RunAll's line once, after the line it stopped at, with nothing trained here; the workers are gone and the study's
    /// manifest with them.</summary>
    [Fact]
    public void AnInterruptDuringTheWorkerPhaseIsSaidOnceOnTheLine()
    {
        using var dir = new TempDir();
        var root = StudyRunTests.TinyVtab(dir);
        var store = Path.Combine(dir.Path, "store");
        var lines = new List<string>();
        using var interrupt = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => Study.RunAll(new[] { "eurosat" }, new[] { "linear", "bitfit" }, "smoke",
            store: store, suite: "vtab:" + root, checkpoint: "none", preset: "mini", seed: 5, workers: 2, cancel: interrupt.Token,
            progress: l => { lines.Add(l); if (l.Contains("trial(s) to run", StringComparison.Ordinal)) interrupt.Cancel(); }));
        Assert.Contains("trial(s) to run: 2 worker(s)", lines[0]);
        Assert.EndsWith(" -- stopped (interrupted): " + StoppableProgress.Kept, lines[^1]);
        Assert.Equal(1, lines.Count(l => l.Contains("stopped", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l.StartsWith("[1/2] eurosat", StringComparison.Ordinal)); // no run of this process's began
        Assert.DoesNotContain(new ResultsStore(store).Records(), r => r.Pid == Environment.ProcessId);
        Assert.Empty(Directory.GetFiles(store, "study-*.manifest.json"));
    }

    /// <summary>Where the library finds itself as a program: its runtimeconfig/deps beside the assembly; in a NuGet
    /// package (PACKAGES/peftworkbench/VERSION/lib/TFM/) the dependencies resolve in PACKAGES; without the runtimeconfig,
    /// null and the path it looked for.</summary>
    [Fact]
    public void OwnProgramIsFoundInAPackageLayoutOrBesideTheAssemblyAndNamesWhatIsMissing()
    {
        using var dir = new TempDir();
        var packages = Path.Combine(dir.Path, "packages");
        var lib = Directory.CreateDirectory(Path.Combine(packages, "peftworkbench", "0.1.0", "lib", "net10.0")).FullName;
        var dll = Path.Combine(lib, "PeftWorkbench.dll");
        File.WriteAllText(dll, "");
        Assert.Null(PeftCommandLine.OwnProgram(dll, out var why));
        Assert.Contains(Path.Combine(lib, "PeftWorkbench.runtimeconfig.json"), why);

        File.WriteAllText(Path.Combine(lib, "PeftWorkbench.runtimeconfig.json"), "{}");
        File.WriteAllText(Path.Combine(lib, "PeftWorkbench.deps.json"), "{}");
        var line = PeftCommandLine.OwnProgram(dll, out _)!;
        Assert.True(File.Exists(line[0]) && Path.GetFileName(line[0]).StartsWith("dotnet"), line[0]);
        Assert.Equal(new[] { "exec", "--runtimeconfig", Path.Combine(lib, "PeftWorkbench.runtimeconfig.json"),
            "--depsfile", Path.Combine(lib, "PeftWorkbench.deps.json"), "--additionalprobingpath", packages, dll }, line.Skip(1));

        // This test's own build output: the library's runtimeconfig beside it, no probing path.
        var built = typeof(WorkerProcess).Assembly.Location;
        var here = PeftCommandLine.OwnProgram(built, out _)!;
        Assert.Equal(built, here[^1]);
        Assert.DoesNotContain("--additionalprobingpath", here);
    }
}
